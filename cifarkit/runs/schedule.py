"""What the runners share: the job, the order runs start in, and the time left.

The local runner (:mod:`cifarkit.runs.local`) and the Ray runner (:mod:`cifarkit.runs.cluster`)
take the same list of :class:`Job`, start them through one :class:`Queue` (a transfer run
after its source run when the same list trains it, then as many as the capacity allows, in
list order) and report the time left with one :class:`Eta`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cifarkit.core.config import ExperimentConfig


@dataclass(frozen=True)
class Job:
    """One run to train, with what its progress lines need.

    ``minutes`` is the run's estimated wall time and ``fixed_minutes`` the part of it that
    does not depend on the images (building, tracing and saving the model); None when the
    run has no estimate. ``note`` says what the config changes from its experiment.
    """

    config: ExperimentConfig
    seed: int
    folder: str
    minutes: float | None = None
    fixed_minutes: float | None = None
    note: str = "as configured"


class Queue:
    """The jobs not started yet, released in list order: a transfer run only once its source
    run is finished (when the list trains the source too), then up to ``capacity`` running
    (None: no limit; the Ray scheduler places the tasks)."""

    def __init__(self, jobs: Sequence[Job], capacity: int | None = None) -> None:
        self.jobs, self.capacity = jobs, capacity
        self.waiting = list(range(len(jobs)))
        self.finished: set[str] = set()
        self._planned = {job.folder for job in jobs}

    def ready(self, running: int) -> list[int]:
        """Indexes of the jobs to start now, with ``running`` jobs running; removed from
        :attr:`waiting`."""
        out: list[int] = []
        for i in list(self.waiting):
            cfg = self.jobs[i].config
            source = cfg.transfer.source_run if cfg.transfer else None
            if source in self._planned and source not in self.finished:
                continue
            if self.capacity is not None and running + len(out) >= self.capacity:
                break
            self.waiting.remove(i)
            out.append(i)
        return out

    def finish(self, i: int) -> None:
        """Job ``i`` is finished: the runs that transfer from it may start."""
        self.finished.add(self.jobs[i].folder)


class Eta:
    """Wall minutes left of a list of runs, from their estimates.

    Until ``settle`` runs are finished, the estimates are taken as they are (divided by
    ``at_once``, the runs that train at the same time); after that they are scaled by the
    finished runs' pace (elapsed wall minutes per estimated minute), so the line corrects
    itself for this machine and this load.
    """

    def __init__(self, estimates: Sequence[float], *, at_once: int = 1, settle: int = 3) -> None:
        self.estimates, self.at_once, self.settle = list(estimates), at_once, settle
        self.started = time.perf_counter()
        self.finished: list[int] = []

    def elapsed(self) -> float:
        """Wall minutes since the first run started."""
        return (time.perf_counter() - self.started) / 60

    def finish(self, i: int) -> None:
        """Run ``i`` is finished."""
        self.finished.append(i)

    def left(self, pending: Iterable[int]) -> float:
        """Wall minutes left for the runs ``pending`` (not finished: running or waiting)."""
        done = sum(self.estimates[j] for j in self.finished)
        if done > 0 and len(self.finished) >= self.settle:
            pace = self.elapsed() / done
        else:
            pace = 1.0 / self.at_once
        return pace * sum(self.estimates[j] for j in pending)
