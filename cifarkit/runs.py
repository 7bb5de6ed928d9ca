"""The run store: one content-addressed folder per (resolved config, seed, data, version).

``artifacts/runs/<experiment>-<hash12>/`` holds ``config.yaml``, ``env.json``,
``history.csv``/``history.json``, ``model.keras``, ``predictions.npz`` (``logits`` and
``labels`` in test-set order, ``val_logits``/``val_labels`` in validation-split order),
``metrics.json`` and ``status.json``. A run is complete only when ``status.json`` says so, and that file is written last; anything else is a cache miss
that resumes from the run's checkpoint. :func:`get_or_train` is the one way every command,
chapter and the demo gets a run. An ``fcntl`` lock (released by the kernel if the holder
dies) stops two processes from training the same run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import time
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

import cifarkit
from cifarkit.atomic import atomic_path, write_json, write_text
from cifarkit.config import ExperimentConfig
from cifarkit.errors import CifarkitError
from cifarkit.paths import artifacts_dir

log = logging.getLogger(__name__)

COMPLETE, RUNNING, FAILED, MISSING = "complete", "running", "failed", "missing"


def runs_root() -> Path:
    return artifacts_dir() / "runs"


def run_hash(cfg: ExperimentConfig, seed: int, data_hash: str) -> str:
    """SHA-256 of the run's identity: resolved config, seed, data content and package version."""
    identity = {"config": cfg.identity(), "seed": seed, "data": data_hash, "cifarkit": cifarkit.__version__}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Run:
    """A handle on one run folder; reading methods fail clearly if the run is not complete."""

    path: Path

    # ----------------------------------------------------------------- file names
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def predictions_path(self) -> Path:
        return self.path / "predictions.npz"

    @property
    def history_json_path(self) -> Path:
        return self.path / "history.json"

    @property
    def snapshots_dir(self) -> Path:
        return self.path / "snapshots"

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    # ----------------------------------------------------------------- reading
    def status_record(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return {"status": MISSING}
        except (OSError, ValueError):
            return {"status": FAILED, "error": "unreadable status.json"}

    @property
    def status(self) -> str:
        return self.status_record().get("status", MISSING)

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    def _require_complete(self) -> None:
        if not self.complete:
            raise CifarkitError(f"run {self.path.name} is {self.status}, not complete; train it with "
                                f"`cifarkit train` first")

    @cached_property
    def summary(self) -> dict[str, Any]:
        """status.json content: experiment, seed, hash, timings, MLflow ids."""
        return self.status_record()

    def metrics(self) -> dict[str, Any]:
        self._require_complete()
        return json.loads(self.metrics_path.read_text())

    def history(self) -> list[dict[str, float]]:
        self._require_complete()
        return json.loads(self.history_json_path.read_text())

    def predictions(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """``(logits, labels)`` of the test set (test-set order) or, with ``split="val"``, the
        validation set (split order; for calibration fitted on validation only)."""
        self._require_complete()
        prefix = {"test": "", "val": "val_"}[split]
        try:
            with np.load(self.predictions_path, allow_pickle=False) as stored:
                if f"{prefix}logits" not in stored:
                    raise CifarkitError(f"{self.predictions_path} has no {split} logits (written by an older "
                                        f"cifarkit); delete {self.path} and train it again")
                return stored[f"{prefix}logits"], stored[f"{prefix}labels"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            # allow_pickle=False: a pickled (object) array is refused here, never unpickled.
            raise CifarkitError(f"{self.predictions_path} is unreadable ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]}); delete {self.path} and train it "
                                "again") from exc

    def load_model(self, snapshot_epoch: int | None = None):
        """The final model (or an epoch snapshot), loaded with ``safe_mode=True``."""
        import keras

        import cifarkit.models  # noqa: F401 - registers cifarkit's serializable layers

        self._require_complete()
        path = self.model_path if snapshot_epoch is None else self.snapshots_dir / f"epoch-{snapshot_epoch:03d}.keras"
        if not path.exists():
            raise CifarkitError(f"{path} does not exist; available snapshots: {sorted(self.snapshots())}")
        try:
            return keras.models.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # noqa: BLE001 - a file that does not load is not one cifarkit wrote
            detail = " ".join(str(exc).split())
            if "safe_mode" in detail or "unsafe_deserialization" in detail:
                problem = ("holds Python code (e.g. a Lambda layer) that cifarkit never writes and "
                           "refuses to deserialise (safe_mode=True)")
            else:
                problem = f"cannot be loaded ({type(exc).__name__}: {detail[:200]})"
            raise CifarkitError(f"{path} {problem}; delete {self.path} and train the run again") from exc

    def snapshots(self) -> dict[int, Path]:
        return {int(p.stem.split("-")[1]): p for p in sorted(self.snapshots_dir.glob("epoch-*.keras"))}

    def config(self) -> ExperimentConfig:
        import yaml

        return ExperimentConfig.model_validate(yaml.safe_load(self.config_path.read_text()))


def locate(cfg: ExperimentConfig, seed: int, data_hash: str) -> Run:
    return Run(runs_root() / f"{cfg.name}-{run_hash(cfg, seed, data_hash)[:12]}")


# --------------------------------------------------------------------------- training


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


def get_or_train(cfg: ExperimentConfig, seed: int, *, wait: bool = True, register: bool = True,
                 label: str = "") -> Run:
    """Return the complete run for (cfg, seed), training (or resuming) it first if needed."""
    from cifarkit.data import splits_from_config
    from cifarkit.data.identity import data_hash_for

    run = locate(cfg, seed, data_hash_for(cfg.data))
    if run.complete:
        log.info("%scached: %s (seed %d)", label, run.path.name, seed)
        # A kill after the run was marked complete can leave its checkpoint behind; a
        # complete run never reads it, so it is only wasted disk.
        _remove_checkpoints(run)
        return run
    runs_root().mkdir(parents=True, exist_ok=True)
    lock = FileLock(run.lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise CifarkitError(f"another process is training {run.path.name} (lock {run.lock_path}); "
                                "wait for it to finish or stop it") from None
        log.info("%swaiting for another process that is training %s", label, run.path.name)
        lock.acquire()
    try:
        if run.complete:  # the other process finished it while we waited
            log.info("%scached: %s (finished by another process)", label, run.path.name)
            return run
        splits = splits_from_config(cfg.data)
        _train_into(run, cfg, seed, splits, register=register, label=label)
        return run
    finally:
        lock.release()


def _train_into(run: Run, cfg: ExperimentConfig, seed: int, splits, *, register: bool, label: str) -> None:
    from cifarkit import tracking
    from cifarkit.checkpoint import CheckpointManager, disk_full
    from cifarkit.repro import environment_record
    from cifarkit.train import train_run

    # An unreadable or truncated checkpoint fails here, before anything is written.
    CheckpointManager(run.path / "checkpoint").latest()
    run.path.mkdir(parents=True, exist_ok=True)
    resuming = (run.path / "checkpoint" / "latest.json").exists()
    log.info("%s%s %s (seed %d) -> %s", label, "resuming" if resuming else "training", cfg.name, seed, run.path)
    write_text(run.config_path, cfg.to_yaml())
    write_json(run.path / "env.json", environment_record())
    tracker = tracking.RunTracker.start_or_resume(run, cfg, seed)
    _set_status(run, RUNNING, experiment=cfg.name, profile=cfg.profile, seed=seed,
                run_hash=run_hash(cfg, seed, splits.source_hash), data_hash=splits.source_hash,
                config_hash=cfg.content_hash(), pid=os.getpid(), mlflow_run_id=tracker.run_id)
    try:
        outcome = train_run(cfg, seed, run.path, splits, epoch_hooks=[tracker.log_epoch])
        history = outcome.history
        write_json(run.history_json_path, history)
        write_text(run.path / "history.csv", _history_csv(history))
        with atomic_path(run.predictions_path, suffix=".npz") as tmp:
            np.savez(tmp, logits=outcome.test_logits, labels=outcome.test_labels.astype(np.int64),
                     val_logits=outcome.val_logits, val_labels=outcome.val_labels.astype(np.int64))
        with atomic_path(run.model_path, suffix=".keras") as tmp:
            outcome.model.save(tmp)
        write_json(run.metrics_path, outcome.metrics)
        version = tracker.finish(run, outcome.metrics, register=register)
        _set_status(run, COMPLETE, test_accuracy=outcome.metrics["test_accuracy"],
                    train_seconds=outcome.metrics["train_seconds"], model_version=version,
                    resumed_from_epoch=outcome.resumed_from_epoch)
    except BaseException as exc:
        try:
            _set_status(run, FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
        except OSError as status_exc:  # e.g. the disk is full: keep the original error
            log.warning("could not mark %s failed (%s)", run.path.name, status_exc)
        tracker.fail()
        full = disk_full(exc) if isinstance(exc, Exception) and not isinstance(exc, CifarkitError) else None
        if full is not None:
            where = f" ({full.filename})" if full.filename else ""
            raise CifarkitError(
                f"disk full while training {run.path.name}{where}: {full.strerror or full}; free space "
                f"under {run.path.parent} and run the same command again to resume from the last "
                "finished epoch"
            ) from exc
        raise
    _remove_checkpoints(run)
    log.info("%sdone: %s  test accuracy %.4f  (%.0f s training)", label, run.path.name,
             outcome.metrics["test_accuracy"], outcome.metrics["train_seconds"])


def _remove_checkpoints(run: Run) -> None:
    import shutil

    shutil.rmtree(run.path / "checkpoint", ignore_errors=True)


def list_runs() -> list[dict[str, Any]]:
    """One row per run folder: experiment, hash, seed, status, test accuracy, wall time, MLflow run id,
    config hash and registered model version (all from status.json)."""
    rows = []
    if not runs_root().exists():
        return rows
    for folder in sorted(p for p in runs_root().iterdir() if p.is_dir()):
        record = Run(folder).status_record()
        rows.append({
            "run": folder.name,
            "experiment": record.get("experiment", folder.name.rsplit("-", 1)[0]),
            "profile": record.get("profile"),
            "hash": folder.name.rsplit("-", 1)[-1],
            "seed": record.get("seed"),
            "status": record.get("status", MISSING),
            "test_accuracy": record.get("test_accuracy"),
            "train_seconds": record.get("train_seconds"),
            "mlflow_run_id": record.get("mlflow_run_id"),
            "config_hash": record.get("config_hash"),
            "model_version": record.get("model_version"),
        })
    return rows
