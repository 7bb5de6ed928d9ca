"""The run store: :func:`get_or_train` is the one way every command, chapter and the demo
gets a run.

A run is trained into its folder (:mod:`cifarkit.runs.run`) under an ``fcntl`` lock
(released by the kernel if the holder dies, so two processes never train the same run),
every file is written atomically, and ``status.json`` saying ``complete`` is written last.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from cifarkit.core.atomic import atomic_path, write_json, write_text
from cifarkit.core.config import ExperimentConfig
from cifarkit.core.errors import CifarkitError
from cifarkit.runs import tracking
from cifarkit.runs.run import COMPLETE, FAILED, MISSING, RUNNING, Run, locate, run_hash, runs_root

log = logging.getLogger(__name__)

# Set by `cifarkit book build --no-train` for the chapters' kernels: a missing run is an error
# naming its command, never a training run inside a notebook.
NO_TRAIN_ENV = "CIFARKIT_NO_TRAIN"


def _history_csv(history: list[dict[str, float]]) -> str:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def _set_status(run: Run, status: str, **extra: Any) -> None:
    record = {k: v for k, v in run.status_record().items() if k not in ("status", "error")}
    record.update(status=status, updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra)
    write_json(run.status_path, record)


def get_or_train(
    cfg: ExperimentConfig,
    seed: int,
    *,
    wait: bool = True,
    register: bool = True,
    label: str = "",
    epoch_hooks: Sequence[Callable[[int, dict], None]] = (),
) -> Run:
    """Return the complete run for (cfg, seed), training (or resuming) it first if needed.

    Parameters
    ----------
    cfg : ExperimentConfig
        The resolved config (:func:`cifarkit.core.config.load_config`).
    seed : int
        The run's seed; with the config and the data's content hash it names the folder.
    wait : bool, default True
        When another process is training the same run: wait for it (True) or raise.
    register : bool, default True
        Register the finished model as a version in MLflow's model registry.
    label : str, default ""
        A prefix for the log lines (e.g. ``"[run 2/6] "``).
    epoch_hooks : sequence of callables, optional
        Called as ``hook(epoch, row)`` after each epoch's checkpoint is on disk (e.g. to copy
        it to the remote store, as the Ray runner does).

    Returns
    -------
    Run
        The complete run folder: its metrics, history, logits and model.

    Raises
    ------
    CifarkitError
        With ``wait=False`` while another process holds the run's lock; when the disk fills
        (the message says how to resume); for unreadable data or checkpoints.

    Examples
    --------
    >>> from cifarkit.core.config import load_config
    >>> from cifarkit.runs import get_or_train
    >>> run = get_or_train(load_config("resnet20", "smoke"), seed=0)  # doctest: +SKIP
    >>> run.metrics()["test_accuracy"]  # doctest: +SKIP
    """
    from cifarkit.core import precision
    from cifarkit.data import splits_from_config
    from cifarkit.data.identity import data_hash_for

    run = locate(cfg, seed, data_hash_for(cfg.data))
    if run.complete:
        log.info("%scached: %s (seed %d)", label, run.path.name, seed)
        # A kill after the run was marked complete can leave its checkpoint behind; a
        # complete run never reads it, so it is only wasted disk.
        _remove_checkpoints(run)
        return run
    if os.environ.get(NO_TRAIN_ENV) == "1":
        from cifarkit.core.config import train_command

        raise CifarkitError(
            f"run {run.path.name} ({cfg.name}, seed {seed}) is {run.status} and this build "
            f"trains nothing ({NO_TRAIN_ENV}=1): make it with "
            f"`{train_command(cfg.name, cfg.profile, [seed], cfg)}`, or pull it from the "
            "remote store"
        )
    # float16 on a machine without a usable GPU stops here, before the data is loaded or a
    # folder exists, so such a run can never be stored (or pushed) under a float16 key.
    precision.require_device(cfg.train.precision)
    runs_root().mkdir(parents=True, exist_ok=True)
    lock = FileLock(run.lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise CifarkitError(
                f"another process is training {run.path.name} (lock {run.lock_path}); "
                "wait for it to finish or stop it"
            ) from None
        log.info("%swaiting for another process that is training %s", label, run.path.name)
        lock.acquire()
    try:
        if run.complete:  # the other process finished it while we waited
            log.info("%scached: %s (finished by another process)", label, run.path.name)
            return run
        splits = splits_from_config(cfg.data)
        _train_into(run, cfg, seed, splits, register=register, label=label, epoch_hooks=epoch_hooks)
        return run
    finally:
        lock.release()


def stored_run(cfg: ExperimentConfig, seed: int, *, label: str | None = None) -> Run:
    """The complete run of (cfg, seed) from the run store; never trains, never waits.

    What reads runs without making them (the book's chapters, comparisons over stored runs)
    calls this instead of :func:`get_or_train`.

    Parameters
    ----------
    cfg : ExperimentConfig
        The resolved config.
    seed : int
        The run's seed.
    label : str, optional
        How the error names the run (default: the experiment's name), e.g. a variant's label.

    Returns
    -------
    Run
        The complete run folder.

    Raises
    ------
    CifarkitError
        The run is missing, running or failed: one line with the command that makes it.
    """
    from cifarkit.core.config import train_command
    from cifarkit.data.identity import data_hash_for

    run = locate(cfg, seed, data_hash_for(cfg.data))
    if run.complete:
        return run
    raise CifarkitError(
        f"run {run.path.name} ({label or cfg.name}, seed {seed}) is {run.status} and is only "
        f"read here, never trained; make it with: {train_command(cfg.name, cfg.profile, [seed], cfg)} "
        "(or pull it from the remote store)"
    )


def _train_into(
    run: Run,
    cfg: ExperimentConfig,
    seed: int,
    splits,
    *,
    register: bool,
    label: str,
    epoch_hooks: Sequence[Callable[[int, dict], None]] = (),
) -> None:
    from cifarkit.core import precision
    from cifarkit.core.repro import environment_record
    from cifarkit.training.checkpoint import CheckpointManager, disk_full
    from cifarkit.training.fit import train_run

    started = (
        time.perf_counter()
    )  # the run's whole cost (set-up, training, test, saving), for the plan's estimates
    # An unreadable or truncated checkpoint, or one of another precision, fails here, before anything is written.
    CheckpointManager(run.path / "checkpoint").latest(
        policy=precision.POLICIES[cfg.train.precision]
    )
    run.path.mkdir(parents=True, exist_ok=True)
    resuming = (run.path / "checkpoint" / "latest.json").exists()
    log.info(
        "%s%s %s (seed %d) -> %s",
        label,
        "resuming" if resuming else "training",
        cfg.name,
        seed,
        run.path,
    )
    write_text(run.config_path, cfg.to_yaml())
    # Where it ran and in what precision, beside the packages: the run's key holds the precision.
    write_json(
        run.path / "env.json",
        {
            **environment_record(),
            "precision": cfg.train.precision,
            "dtype_policy": precision.POLICIES[cfg.train.precision],
            **precision.environment(),
        },
    )
    tracked = time.perf_counter()
    tracker = tracking.RunTracker.start_or_resume(run, cfg, seed)
    mlflow_seconds = time.perf_counter() - tracked
    _set_status(
        run,
        RUNNING,
        experiment=cfg.name,
        profile=cfg.profile,
        seed=seed,
        run_hash=run_hash(cfg, seed, splits.source_hash),
        data_hash=splits.source_hash,
        config_hash=cfg.content_hash(),
        pid=os.getpid(),
        mlflow_run_id=tracker.run_id,
    )
    try:
        source = (
            source_model_path(cfg.transfer.source_run)
            if cfg.transfer and cfg.transfer.source_run
            else None
        )
        outcome = train_run(
            cfg,
            seed,
            run.path,
            splits,
            epoch_hooks=[tracker.log_epoch, *epoch_hooks],
            source_model=source,
        )
        history = outcome.history
        _log_missing_epochs(tracker, history)
        write_json(run.history_json_path, history)
        write_text(run.path / "history.csv", _history_csv(history))
        with atomic_path(run.predictions_path, suffix=".npz") as tmp:
            np.savez(
                tmp,
                logits=outcome.test_logits,
                labels=outcome.test_labels.astype(np.int64),
                val_logits=outcome.val_logits,
                val_labels=outcome.val_labels.astype(np.int64),
            )
        with atomic_path(run.model_path, suffix=".keras") as tmp:
            if outcome.model_file is not None:  # the same model, already serialised
                shutil.copyfile(outcome.model_file, tmp)
            else:
                outcome.model.save(tmp)
        write_json(run.metrics_path, outcome.metrics)
        tracked = time.perf_counter()
        version = tracker.finish(run, outcome.metrics, register=register, model=outcome.model)
        seconds = {
            **outcome.seconds,
            "mlflow": round(mlflow_seconds + time.perf_counter() - tracked, 2),
        }
        _set_status(
            run,
            COMPLETE,
            test_accuracy=outcome.metrics["test_accuracy"],
            class_names=list(splits.class_names),
            train_seconds=outcome.metrics["train_seconds"],
            model_version=version,
            registered_model=tracker.registered_name,
            resumed_from_epoch=outcome.resumed_from_epoch,
            wall_seconds=(wall := round(time.perf_counter() - started, 2)),
            seconds=seconds,
        )
    except BaseException as exc:
        try:
            _set_status(run, FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
        except OSError as status_exc:  # e.g. the disk is full: keep the original error
            log.warning("could not mark %s failed (%s)", run.path.name, status_exc)
        tracker.fail()
        full = (
            disk_full(exc)
            if isinstance(exc, Exception) and not isinstance(exc, CifarkitError)
            else None
        )
        if full is not None:
            where = f" ({full.filename})" if full.filename else ""
            raise CifarkitError(
                f"disk full while training {run.path.name}{where}: {full.strerror or full}; free space "
                f"under {run.path.parent} and run the same command again to resume from the last "
                "finished epoch"
            ) from exc
        raise
    _remove_checkpoints(run)
    log.info(
        "%sdone: %s  test accuracy %.4f  (%.0f s: training steps %.0f, tracing %.1f, "
        "validation %.1f, test %.1f, checkpoints %.1f, MLflow %.1f, the rest %.1f)",
        label,
        run.path.name,
        outcome.metrics["test_accuracy"],
        wall,
        seconds["steps"],
        seconds["tracing"],
        seconds["validation"],
        seconds["test"],
        seconds["checkpoints"],
        seconds["mlflow"],
        wall - sum(seconds.values()),
    )


def _log_missing_epochs(tracker: tracking.RunTracker, history: list[dict[str, float]]) -> None:
    """Log the epochs MLflow lacks: a kill between an epoch's checkpoint and its metric upload
    leaves that epoch in the checkpoint's history only, and the resumed run starts after it."""
    logged = {m.step for m in tracker.client.get_metric_history(tracker.run_id, "loss")}
    for number, row in enumerate(history, start=1):
        epoch = int(row.get("epoch", number))
        if epoch not in logged:
            tracker.log_epoch(epoch, row)


def _remove_checkpoints(run: Run) -> None:
    shutil.rmtree(run.path / "checkpoint", ignore_errors=True)


def list_runs() -> list[dict[str, Any]]:
    """One row per run folder: experiment, hash, seed, status, test accuracy, wall time, MLflow run id,
    config hash and registered model version (all from status.json)."""
    rows: list[dict[str, Any]] = []
    if not runs_root().exists():
        return rows
    for folder in sorted(
        p for p in runs_root().iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        record = Run(folder).status_record()
        rows.append(
            {
                "run": folder.name,
                "experiment": record.get("experiment", folder.name.rsplit("-", 1)[0]),
                "profile": record.get("profile"),
                "hash": folder.name.rsplit("-", 1)[-1],
                "seed": record.get("seed"),
                "status": record.get("status", MISSING),
                "test_accuracy": record.get("test_accuracy"),
                "train_seconds": record.get("train_seconds"),
                "wall_seconds": record.get("wall_seconds"),
                "resumed_from_epoch": record.get("resumed_from_epoch"),
                "mlflow_run_id": record.get("mlflow_run_id"),
                "config_hash": record.get("config_hash"),
                "model_version": record.get("model_version"),
            }
        )
    return rows


def source_model_path(source_run: str) -> Path:
    """``model.keras`` of a complete run in the run store, or a one-line error saying what to do."""
    run = Run(runs_root() / source_run)
    if not run.complete:
        raise CifarkitError(
            f"transfer.source_run {source_run} is {run.status} in {runs_root()}; train the "
            "source run first (cifarkit.studies.transfer does so) or fix the folder name"
        )
    return run.model_path


def resolve_run(
    spec: str | Path,
    *,
    seed: int | None = None,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Run:
    """The complete run a command names, without training anything.

    Parameters
    ----------
    spec : str or Path
        A run folder path, a run folder name under ``artifacts/runs``, or an experiment
        (name under ``configs/`` or YAML path) resolved with ``seed`` and ``profile``.
    seed : int, optional
        Seed of the experiment's run (default 0); only for an experiment ``spec``.
    profile : str, optional
        Profile of the experiment's run (default ``cpu``); only for an experiment ``spec``.
    overrides : dict, optional
        Dotted config overrides of the experiment's run (``--set``).

    Returns
    -------
    Run
        A complete run.

    Raises
    ------
    CifarkitError
        If nothing matches ``spec``, or the run it names is not complete (the message names
        the command that trains it).
    """
    from cifarkit.core.config import load_config
    from cifarkit.core.errors import ConfigError
    from cifarkit.data.identity import data_hash_for

    text = str(spec)
    folder = Path(text).expanduser()
    by_folder = None
    if folder.is_dir():
        by_folder = Run(folder.resolve())
    elif "/" not in text and (runs_root() / text).is_dir():
        by_folder = Run(runs_root() / text)
    if by_folder is not None:
        if seed is not None or overrides:
            raise CifarkitError(
                f"{text} is a run folder; --seed and --set only apply to an experiment name"
            )
        if not by_folder.complete:
            raise CifarkitError(
                f"run {by_folder.path} is {by_folder.status}, not complete; train it (or "
                f"resume it) with `cifarkit train` first"
            )
        return by_folder
    try:
        cfg = load_config(text, profile or "cpu", overrides=overrides)
    except ConfigError as exc:
        raise CifarkitError(
            f"{text} is neither a run folder nor a run under {runs_root()} nor a usable "
            f"experiment ({exc}); pass a run folder or an experiment name"
        ) from None
    seed = 0 if seed is None else seed
    run = locate(cfg, seed, data_hash_for(cfg.data))
    if not run.complete:
        sets = "".join(f" --set {k}={v}" for k, v in (overrides or {}).items())
        raise CifarkitError(
            f"no complete run of {cfg.name} (profile {cfg.profile}, seed {seed}) in "
            f"{runs_root()} ({run.path.name} is {run.status}); train it with `cifarkit train "
            f"{text} --profile {cfg.profile} --seed {seed}{sets}`"
        )
    return run
