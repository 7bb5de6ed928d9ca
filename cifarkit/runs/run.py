"""A run folder and its key: one content-addressed folder per (resolved config, seed, data, version).

``artifacts/runs/<experiment>-<hash12>/`` holds ``config.yaml``, ``env.json``,
``history.csv``/``history.json``, ``model.keras``, ``predictions.npz`` (``logits`` and
``labels`` in test-set order, ``val_logits``/``val_labels`` in validation-split order),
``metrics.json`` and ``status.json``. A run is complete only when ``status.json`` says so, and that file is written last; anything else is a cache miss
that resumes from the run's checkpoint. :func:`cifarkit.runs.store.get_or_train`
fills a folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

import cifarkit
from cifarkit.core.config import ExperimentConfig
from cifarkit.core.errors import CifarkitError
from cifarkit.core.paths import artifacts_dir

log = logging.getLogger(__name__)

COMPLETE, RUNNING, FAILED, MISSING = "complete", "running", "failed", "missing"


def runs_root() -> Path:
    return artifacts_dir() / "runs"


def run_hash(cfg: ExperimentConfig, seed: int, data_hash: str) -> str:
    """SHA-256 of the run's identity: resolved config, seed, data content and package version."""
    identity = {
        "config": cfg.identity(),
        "seed": seed,
        "data": data_hash,
        "cifarkit": cifarkit.__version__,
    }
    return hashlib.sha256(
        json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


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
            raise CifarkitError(
                f"run {self.path.name} is {self.status}, not complete; train it with "
                f"`cifarkit train` first"
            )

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
                    raise CifarkitError(
                        f"{self.predictions_path} has no {split} logits (written by an older "
                        f"cifarkit); delete {self.path} and train it again"
                    )
                return stored[f"{prefix}logits"], stored[f"{prefix}labels"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            # allow_pickle=False: a pickled (object) array is refused here, never unpickled.
            raise CifarkitError(
                f"{self.predictions_path} is unreadable ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]}); delete {self.path} and train it "
                "again"
            ) from exc

    def load_model(self, snapshot_epoch: int | None = None):
        """The final model (or an epoch snapshot), loaded with ``safe_mode=True``."""
        from cifarkit.models import load_model

        self._require_complete()
        path = (
            self.model_path
            if snapshot_epoch is None
            else self.snapshots_dir / f"epoch-{snapshot_epoch:03d}.keras"
        )
        if not path.exists():
            raise CifarkitError(
                f"{path} does not exist; available snapshots: {sorted(self.snapshots())}"
            )
        try:
            return load_model(path)
        except Exception as exc:  # noqa: BLE001 - a file that does not load is not one cifarkit wrote
            detail = " ".join(str(exc).split())
            if "safe_mode" in detail or "unsafe_deserialization" in detail:
                problem = (
                    "holds Python code (e.g. a Lambda layer) that cifarkit never writes and "
                    "refuses to deserialise (safe_mode=True)"
                )
            else:
                problem = f"cannot be loaded ({type(exc).__name__}: {detail[:200]})"
            raise CifarkitError(
                f"{path} {problem}; delete {self.path} and train the run again"
            ) from exc

    def snapshots(self) -> dict[int, Path]:
        return {
            int(p.stem.split("-")[1]): p for p in sorted(self.snapshots_dir.glob("epoch-*.keras"))
        }

    def class_names(self) -> tuple[str, ...]:
        """The run's class names in logit order, without decoding the data where possible.

        From ``status.json`` (runs record them when they complete), else the config's
        ``data.classes``, else the decoded-data cache of the run's data, else the data itself.

        Raises
        ------
        CifarkitError
            If the run is not complete, or its data can no longer be found.
        """
        self._require_complete()
        record = self.status_record()
        if record.get("class_names"):
            return tuple(record["class_names"])
        cfg = self.config()
        if cfg.data.classes:
            return tuple(cfg.data.classes)
        from cifarkit.data import cache, splits_from_config

        cached = cache.cache_file(record.get("data_hash") or "-")
        try:
            with np.load(cached, allow_pickle=False) as arrays:  # reads only the member asked for
                return tuple(str(name) for name in arrays["class_names"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return tuple(splits_from_config(cfg.data).class_names)

    def config(self) -> ExperimentConfig:
        import yaml

        return ExperimentConfig.model_validate(yaml.safe_load(self.config_path.read_text()))


def locate(cfg: ExperimentConfig, seed: int, data_hash: str) -> Run:
    return Run(runs_root() / f"{cfg.name}-{run_hash(cfg, seed, data_hash)[:12]}")
