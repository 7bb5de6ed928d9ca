"""Train runs on this machine: one at a time in this process, or a few at once in worker
processes (the local counterpart of the Ray runner, :mod:`cifarkit.runs.cluster`).

Every run goes through :func:`cifarkit.runs.get_or_train`, so each is resumable and its
result is the same whichever way it trains.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import Future

from cifarkit.core.config import ExperimentConfig
from cifarkit.runs.schedule import Eta, Job, Queue

log = logging.getLogger(__name__)


def local_jobs(jobs: Sequence[Job], cores: int | None = None) -> tuple[int, str]:
    """How many of ``jobs`` train at once on this machine, and why.

    A run's fixed cost (building the model, tracing its step functions, saving it) is Python
    work on one core, while its training steps use every core. When the fixed cost is most of
    the jobs' estimated time (tiny runs, as in the smoke book), two runs at a time keep both
    cores busy; otherwise one at a time. Each run's result is the same either way (same
    seeds, deterministic ops, its own process's thread pools as configured).

    Parameters
    ----------
    jobs : sequence of Job
        The runs to train; those without an estimate count as runs but not in the shares.
    cores : int, optional
        CPU cores to plan for (default: this machine's).

    Returns
    -------
    tuple of (int, str)
        Runs at a time, and the reason in words for the log line.
    """
    cores = cores or os.cpu_count() or 1
    fixed = total = 0.0
    for job in jobs:
        if job.minutes is not None and job.fixed_minutes is not None:
            fixed += job.fixed_minutes
            total += job.minutes
    share = fixed / total if total else 0.0
    if cores >= 2 and len(jobs) >= 2 and share >= 0.5:
        return (
            2,
            "two at a time: their fixed cost (tracing, saving; one core) is "
            f"{share:.0%} of their time",
        )
    return 1, "one at a time" + (
        f": their training steps ({1 - share:.0%} of their time) use every core" if total else ""
    )


def train_here(jobs: Sequence[Job], at_once: int | None = None) -> dict[str, float]:
    """Train ``jobs`` on this machine with one progress line per run (run i of N, elapsed,
    ETA from the estimates, corrected by how the finished runs went).

    Parameters
    ----------
    jobs : sequence of Job
        The runs to train, in order; a transfer run starts after its source run.
    at_once : int, optional
        Runs at a time (at least 1; default: :func:`local_jobs` decides). More than one trains
        each run in a spawned worker process.

    Returns
    -------
    dict
        Each trained run folder's wall minutes.
    """
    from cifarkit.runs.store import get_or_train

    if at_once is None:
        at_once, why = local_jobs(jobs)
        if jobs:
            log.info("training the %d missing run(s) %s", len(jobs), why)
    if at_once > 1 and len(jobs) > 1:
        return _train_at_once(jobs, at_once)
    eta = Eta([job.minutes or 0.0 for job in jobs])
    trained: dict[str, float] = {}
    for i, job in enumerate(jobs):
        log.info(
            "[plan: run %d of %d, %.1f min elapsed, about %.0f min left] %s seed %d (%s)",
            i + 1,
            len(jobs),
            eta.elapsed(),
            eta.left(range(i, len(jobs))),
            job.config.name,
            job.seed,
            job.note,
        )
        run_started = time.perf_counter()
        get_or_train(job.config, job.seed, label=f"[plan {i + 1}/{len(jobs)}] ")
        trained[job.folder] = (time.perf_counter() - run_started) / 60
        eta.finish(i)
    return trained


def _train_in_worker(config_yaml: str, seed: int, label: str, level: int) -> float:
    """One run in a worker process of the local runner; its wall minutes."""
    import yaml

    from cifarkit.core.tfquiet import setup_logging
    from cifarkit.runs.store import get_or_train

    setup_logging(level)  # a spawned process starts with no logging configured
    started = time.perf_counter()
    get_or_train(ExperimentConfig.model_validate(yaml.safe_load(config_yaml)), seed, label=label)
    return (time.perf_counter() - started) / 60


def _train_at_once(jobs: Sequence[Job], at_once: int) -> dict[str, float]:
    """The local runner with ``at_once`` worker processes (spawned: no TensorFlow state shared)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from cifarkit.core.startup import start
    from cifarkit.runs import tracking

    tracking.prepare_store()
    queue = Queue(jobs, capacity=at_once)
    eta = Eta([job.minutes or 0.0 for job in jobs], at_once=at_once)
    trained: dict[str, float] = {}
    level = logging.getLogger("cifarkit").getEffectiveLevel()
    # Each worker starts as the cifarkit command does, before anything imports TensorFlow.
    with ProcessPoolExecutor(
        max_workers=at_once, mp_context=multiprocessing.get_context("spawn"), initializer=start
    ) as pool:
        running: dict[Future[float], int] = {}

        def submit_ready() -> None:
            for i in queue.ready(len(running)):
                job = jobs[i]
                label = f"[plan {i + 1}/{len(jobs)}] "
                log.info("%sstarting %s seed %d (%s)", label, job.config.name, job.seed, job.note)
                running[
                    pool.submit(_train_in_worker, job.config.to_yaml(), job.seed, label, level)
                ] = i

        submit_ready()
        while running:
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                trained[jobs[i].folder] = future.result()  # a failed run raises here, by name
                queue.finish(i)
                eta.finish(i)
                log.info(
                    "[plan: %d of %d done, %.1f min elapsed, about %.0f min left] %s",
                    len(trained),
                    len(jobs),
                    eta.elapsed(),
                    eta.left([*running.values(), *queue.waiting]),
                    jobs[i].folder,
                )
            submit_ready()
    return trained
