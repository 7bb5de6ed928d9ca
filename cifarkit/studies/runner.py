"""Train the study plan: its missing runs, priced (:mod:`cifarkit.studies.pricing`), handed to
the local runner (:mod:`cifarkit.runs.local`) or the Ray runner (:mod:`cifarkit.runs.cluster`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cifarkit.core.errors import CifarkitError
from cifarkit.studies.plan import PlannedRun
from cifarkit.studies.pricing import Speed, SpeedKey, priced_jobs

RUNNERS = ("local", "ray")


def check_runner(runner: str, *, address: str | None = None, jobs: int | None = None) -> None:
    """Refuse, before anything slow starts (speed probes, training), what cannot train: an
    unknown runner, fewer than one run at a time, or a Ray cluster nothing answers at.

    Raises
    ------
    CifarkitError
        One line saying which.
    """
    if runner not in RUNNERS:
        raise CifarkitError(f"runner={runner!r} is not a runner; choose from {', '.join(RUNNERS)}")
    if jobs is not None and jobs < 1:
        raise CifarkitError(f"jobs={jobs}: the runs trained at once are at least 1")
    if runner == "ray":
        from cifarkit.runs.cluster import require_reachable

        require_reachable(address or "auto")


def train_plan(
    plan: Sequence[PlannedRun],
    speeds: Mapping[SpeedKey, Speed | str],
    *,
    runner: str = "local",
    address: str | None = None,
    remote_url: str | None = None,
    jobs: int | None = None,
) -> dict[str, float]:
    """Train the plan's missing runs, with one progress line per run; resumable, since every
    run is.

    Parameters
    ----------
    plan : sequence of PlannedRun
        The study plan (:func:`cifarkit.studies.plan.study_plan`).
    speeds : mapping
        Its measured speeds (:func:`cifarkit.studies.pricing.measured_speeds`), for the ETA
        and for how many runs train at once here.
    runner : {"local", "ray"}, default "local"
        ``local`` trains on this machine (:func:`cifarkit.runs.local.train_here`); ``ray``
        fans the runs out as tasks on the Ray cluster at ``address``
        (:func:`cifarkit.runs.cluster.train_on_ray`; through ``remote_url`` when given).
    address, remote_url : str, optional
        The Ray cluster (default ``auto``) and the remote run store its nodes share.
    jobs : int, optional
        Runs at a time with the local runner (default: :func:`cifarkit.runs.local.local_jobs`
        decides).

    Returns
    -------
    dict
        Each trained run folder's actual wall minutes.

    Raises
    ------
    CifarkitError
        What :func:`check_runner` refuses, before anything trains.
    """
    check_runner(runner, address=address, jobs=jobs)
    missing = priced_jobs(plan, speeds)
    if runner == "ray":
        from cifarkit.runs.cluster import train_on_ray

        if not missing:
            return {}
        outcomes = train_on_ray(missing, address or "auto", remote_url=remote_url)
        return {folder: outcome.minutes for folder, outcome in outcomes.items()}
    from cifarkit.runs.local import train_here

    return train_here(missing, at_once=jobs)
