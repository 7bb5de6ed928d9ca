"""What a book build cost: the study plan's estimates against the measured minutes, and the
build history they are estimated from.

Every finished build is appended to :func:`builds_file` (when, on which machine, how long,
per chapter; the README's measured costs are generated from these records by
:mod:`cifarkit.publish.readme`). The next build on the same machine estimates each
chapter's execution from it (:func:`execution_estimates`), and its last lines compare
the estimates with what the build took (:meth:`PlanCost.report`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cifarkit.core.atomic import write_json
from cifarkit.core.paths import artifacts_dir

#: Builds kept per profile in :func:`builds_file`.
HISTORY_LENGTH = 50


@dataclasses.dataclass
class ChapterResult:
    """One chapter's row of the build summary."""

    name: str
    status: str  # cached | executed | failed | not run | kept (stale) | not executed
    seconds: float = 0.0
    reason: str = ""


def _versus(estimated: float, actual: float) -> str:
    """``estimated E, took A (+P%)``: the percentage only when there is an estimate."""
    text = f"estimated {estimated:.1f}, took {actual:.1f}"
    if estimated > 0:
        text += f" ({100 * (actual / estimated - 1):+.0f}%)"
    return text


@dataclasses.dataclass
class PlanCost:
    """The study plan's cost in minutes per chapter, estimated before and measured after."""

    trained: dict[str, int]  # chapter -> runs trained (a shared run counts for its first)
    estimated: dict[str, float]  # chapter -> estimated training minutes
    actual: dict[str, float]  # chapter -> actual training minutes
    execute_estimated: dict[str, float]  # chapter -> execution minutes of the last build here
    probe_minutes: float = 0.0  # measuring this machine's speeds (once per host)
    train_wall_minutes: float | None = None  # the training phase's wall time (runs may overlap)

    def _chapter_line(self, name: str, executed: float) -> str:
        est = self.execute_estimated.get(name)
        execute_est = "-" if est is None else f"{est:.1f}"
        return (
            f"{name:<18} {self.trained.get(name, 0):>4} {self.estimated.get(name, 0.0):>10.1f} "
            f"{self.actual.get(name, 0.0):>7.1f} {execute_est:>12} {executed:>8.1f}"
        )

    def report(self, results: Sequence[ChapterResult], total_minutes: float) -> str:
        """The build's last lines: per chapter and in total, estimated against actual minutes.

        Parameters
        ----------
        results : sequence of ChapterResult
            The build's chapters, as its summary lists them.
        total_minutes : float
            The whole build's wall time.

        Returns
        -------
        str
            A table (chapter, runs, estimated and actual training and execution minutes),
            then the training, the chapters and the whole build compared with the estimates.
        """
        executed = {r.name: r.seconds / 60 for r in results}
        names = [r.name for r in results]
        header = (
            f"{'chapter':<18} {'runs':>4} {'train est.':>10} {'train':>7} "
            f"{'execute est.':>12} {'execute':>8}"
        )
        lines = ["estimated against actual minutes:", header, "-" * len(header)]
        lines += [self._chapter_line(name, executed.get(name, 0.0)) for name in names]
        cached = {r.name for r in results if r.status == "cached"}  # found fresh: they cost nothing
        train_est, run_minutes = sum(self.estimated.values()), sum(self.actual.values())
        train_actual = run_minutes if self.train_wall_minutes is None else self.train_wall_minutes
        execute_est = sum(self.execute_estimated.get(n, 0.0) for n in names if n not in cached)
        execute_actual = sum(executed.values())
        unknown = [n for n in names if n not in self.execute_estimated and executed.get(n, 0.0) > 0]
        # The plan's figure is priced after the probes ran, so the comparison starts there.
        after_probes = total_minutes - self.probe_minutes
        rest = max(0.0, after_probes - train_actual - execute_actual)

        overlap = ""
        if run_minutes > train_actual + 0.05:
            overlap = f" (runs at once; their own minutes add up to {run_minutes:.1f})"
        if unknown:
            chapters = f"took {execute_actual:.1f} min (not yet timed on this machine: no estimate)"
        else:
            chapters = f"{_versus(execute_est, execute_actual)} min"
        lines.append(
            f"training: {_versus(train_est, train_actual)} min{overlap}; chapters: {chapters}"
        )
        lines.append(
            f"whole build: took {total_minutes:.1f} min (speed probes {self.probe_minutes:.1f}, "
            f"training {train_actual:.1f}, chapters {execute_actual:.1f}, "
            f"site and the rest {rest:.1f}); "
            f"from the plan on, {_versus(train_est + execute_est, after_probes)} min"
        )
        if unknown:
            lines.append(
                f"(no execution estimate yet for {', '.join(unknown)}: the next build here has one)"
            )
        return "\n".join(lines)

    def as_record(self) -> dict[str, Any]:
        """The figures as the build history keeps them (minutes rounded to 0.01)."""
        wall = None if self.train_wall_minutes is None else round(self.train_wall_minutes, 2)
        return {
            "estimated": {k: round(v, 2) for k, v in self.estimated.items()},
            "actual": {k: round(v, 2) for k, v in self.actual.items()},
            "execute_estimated": {k: round(v, 2) for k, v in self.execute_estimated.items()},
            "trained": self.trained,
            "probe_minutes": round(self.probe_minutes, 2),
            "train_wall_minutes": wall,
        }


def builds_file(profile: str) -> Path:
    """``artifacts/book/builds-<profile>.json``: every finished build's wall time, newest last."""
    return artifacts_dir() / "book" / f"builds-{profile}.json"


def _history(profile: str) -> list[dict[str, Any]]:
    try:
        return list(json.loads(builds_file(profile).read_text()))
    except (OSError, ValueError):
        return []


def _this_machine() -> dict[str, Any]:
    from cifarkit.core.repro import environment_record

    env = environment_record()
    return {k: env[k] for k in ("cpu", "cpu_isa", "cpu_count")}


def execution_estimates(profile: str, names: Sequence[str]) -> dict[str, float]:
    """Minutes each chapter took to execute in the newest build of ``profile`` on this machine
    that executed it (a chapter's execution reads runs only, so it costs the same each time)."""
    history = _history(profile)
    if not history:
        return {}
    machine = _this_machine()
    out: dict[str, float] = {}
    for record in reversed(history):
        if record.get("machine") != machine:
            continue
        for chapter in record.get("chapters", []):
            if (
                chapter.get("status") == "executed"
                and chapter["name"] in names
                and chapter["name"] not in out
            ):
                out[chapter["name"]] = float(chapter["seconds"]) / 60
    return out


def record_build(
    profile: str,
    chapter: str | None,
    results: Sequence[ChapterResult],
    seconds: float,
    cost: PlanCost | None = None,
) -> None:
    """Append a finished build to :func:`builds_file`: when, on which machine, how long, by chapter.

    Parameters
    ----------
    profile : str
        The build's profile.
    chapter : str or None
        The chapter a ``--chapter`` build executed (None: the whole book).
    results : sequence of ChapterResult
        Its chapters.
    seconds : float
        Its wall time.
    cost : PlanCost, optional
        The study plan's estimated and actual minutes, when the build trained the plan.
    """
    from cifarkit.core.repro import environment_record

    history = _history(profile)
    env = environment_record()
    plan_minutes = (
        None
        if cost is None
        else {
            "estimated": round(sum(cost.estimated.values()), 1),
            "actual": round(sum(cost.actual.values()), 1),
            "per_chapter": cost.as_record(),
        }
    )
    history.append(
        {
            "finished_at": env["recorded_at"],
            "profile": profile,
            "chapter": chapter,
            "seconds": round(seconds, 1),
            "executed": sum(r.status == "executed" for r in results),
            "cached": sum(r.status == "cached" for r in results),
            "chapters": [dataclasses.asdict(r) for r in results],
            "plan_minutes": plan_minutes,
            "machine": {k: env[k] for k in ("cpu", "cpu_isa", "cpu_count")},
        }
    )
    write_json(builds_file(profile), history[-HISTORY_LENGTH:])
