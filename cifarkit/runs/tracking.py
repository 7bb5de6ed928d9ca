"""MLflow tracking for runs: params, per-epoch metrics, artifacts and a registered model.

Every run is registered as a version of a model named after what it computes
(:func:`registry_name`): the experiment's name for the experiment's own config, the name and
a short hash of the overrides for a variant. Each version carries the model's input/output
signature and is tagged with config hash, seed, profile and test accuracy;
:func:`alias_run` points an alias such as ``headline`` at one of them.

The default store is a SQLite file ``artifacts/mlflow.db`` (no server), with artifacts
under ``artifacts/mlflow-artifacts``; ``MLFLOW_TRACKING_URI`` overrides it. A resumed run
continues its MLflow run (the id is kept in the run folder), so an interrupted training
shows up once, with all its epochs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cifarkit.core.atomic import write_json
from cifarkit.core.config import ExperimentConfig, flatten
from cifarkit.core.paths import artifacts_dir

if TYPE_CHECKING:
    from cifarkit.runs.run import Run

log = logging.getLogger(__name__)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{artifacts_dir() / 'mlflow.db'}"


_PREPARED: set[str] = set()  # tracking URIs whose store this process has opened once


def _client():
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    artifacts_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    if uri in _PREPARED or not uri.startswith("sqlite:///"):
        return MlflowClient(uri)
    # Two processes opening a new SQLite store at once both run MLflow's schema creation and
    # one fails ("table ... already exists", "duplicate column"); a file lock beside the
    # store makes the second wait and then find the tables made. A server makes its own.
    from filelock import FileLock

    lock = Path(uri.removeprefix("sqlite:///") + ".lock")
    with FileLock(lock):
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
        # The tables exist now, so whoever locks later has nothing to create: the file goes
        # (while held, so a waiter still gets this lock) and the artifacts keep the store only.
        lock.unlink(missing_ok=True)
    _PREPARED.add(uri)
    return client


def prepare_store() -> None:
    """Create the tracking store (its tables) now, before several processes use it at once."""
    _client()


def _device() -> str:
    from cifarkit.core.precision import machine

    return machine().device


def _experiment_id(client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (artifacts_dir() / "mlflow-artifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it first
        return client.get_experiment_by_name(name).experiment_id


class RunTracker:
    """One MLflow run bound to one cifarkit run folder."""

    def __init__(self, client, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self.registered_name: str | None = None  # set by a registration

    @classmethod
    def start_or_resume(cls, run: Run, cfg: ExperimentConfig, seed: int) -> RunTracker:
        client = _client()
        id_file = run.path / "mlflow.json"
        if id_file.exists():
            try:
                run_id = json.loads(id_file.read_text())["run_id"]
                client.get_run(run_id)
                client.update_run(run_id, status="RUNNING")
                return cls(client, run_id)
            except Exception:  # noqa: BLE001 - store was reset or moved: start a fresh MLflow run
                log.warning(
                    "MLflow run recorded in %s not found in %s; starting a new one",
                    id_file,
                    tracking_uri(),
                )
        created = client.create_run(
            _experiment_id(client, cfg.name),
            run_name=f"{run.path.name}-seed{seed}",
            tags={
                "cifarkit.run_dir": str(run.path),
                "cifarkit.seed": str(seed),
                "cifarkit.profile": cfg.profile,
                "cifarkit.config_hash": cfg.content_hash(),
                "cifarkit.precision": cfg.train.precision,
                "cifarkit.device": _device(),
            },
        )
        run_id = created.info.run_id
        params = flatten({**cfg.model_dump(mode="json"), "seed": seed})
        from mlflow.entities import Param

        client.log_batch(run_id, params=[Param(k, str(v)[:500]) for k, v in sorted(params.items())])
        write_json(id_file, {"run_id": run_id, "tracking_uri": tracking_uri()})
        return cls(client, run_id)

    def log_epoch(self, epoch: int, row: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, epoch)
            for k, v in row.items()
            if k != "epoch" and isinstance(v, int | float)
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(
        self, run: Run, metrics: dict[str, Any], register: bool, model: Any = None
    ) -> int | None:
        """Log final metrics, artifacts and the model; register a model version; close the run.

        ``model`` is the trained model still in memory (the one just saved as ``model.keras``);
        without it the saved file is loaded.
        """
        import mlflow

        # val_* were logged per epoch already; add the test-set figures and timings once.
        finals = {
            k: float(v)
            for k, v in flatten(metrics).items()
            if isinstance(v, int | float) and not k.startswith("val_")
        }
        with mlflow.start_run(run_id=self.run_id):
            mlflow.log_metrics(finals)
            for name in ("config.yaml", "env.json", "history.csv", "metrics.json"):
                mlflow.log_artifact(str(run.path / name))
        version = None
        if register:
            version = self._register(run, metrics, model)
        self.client.set_terminated(self.run_id, status="FINISHED")
        return version

    def _register(
        self, run: Run, metrics: dict[str, Any] | None = None, model: Any = None
    ) -> int | None:
        """Log the model with its signature as a version of the model :func:`registry_name` names,
        tagged with what tells one version from another."""
        import keras
        import mlflow
        import numpy as np
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        from cifarkit.models import load_model

        # The model in memory already has its forward pass traced: loading the file again and
        # tracing it again would cost every run seconds, for the same weights.
        model = model if model is not None else load_model(run.model_path)
        cfg = run.config()
        name, differs = registry_name(cfg)
        # float32 images in, float32 logits out, the batch dimension free (-1): written from the
        # model's shapes, as MLflow's infer_signature finds them by running the model (which
        # can mean tracing a forward pass for it: 0.5 s for ResNet20).
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *model.input.shape[1:]))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, model.output.shape[-1]))]),
        )
        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.keras.log_model(
                model,
                name="model",
                registered_model_name=name,
                signature=signature,
                pip_requirements=[f"keras=={keras.__version__}", "tensorflow"],
            )
        version = getattr(info, "registered_model_version", None)
        if version is None:
            return None
        record = run.status_record()
        seed = record.get("seed")
        accuracy = (metrics or {}).get("test_accuracy")
        tags = {
            "cifarkit.experiment": cfg.name,
            "cifarkit.config_hash": cfg.content_hash(),
            "cifarkit.seed": seed,
            "cifarkit.profile": cfg.profile,
            "cifarkit.test_accuracy": f"{accuracy:.6f}" if accuracy is not None else None,
            "cifarkit.run": run.path.name,
            "cifarkit.run_dir": str(run.path),
            "cifarkit.data_hash": record.get("data_hash"),
            "cifarkit.input": "float32 (N, 32, 32, 3) raw pixels 0..255; output logits",
        }
        for key, value in tags.items():
            if value is not None:
                self.client.set_model_version_tag(name, str(version), key, str(value))
        self.client.set_registered_model_tag(name, "cifarkit.experiment", cfg.name)
        self.client.set_registered_model_tag(
            name, "cifarkit.overrides", json.dumps(differs, sort_keys=True)
        )
        self.client.update_registered_model(name, description=_describe_variant(cfg.name, differs))
        self.registered_name = name
        log.info("registered %s version %s in MLflow (%s)", name, version, tracking_uri())
        return int(version)

    def fail(self) -> None:
        try:
            self.client.set_terminated(self.run_id, status="FAILED")
        except Exception:  # noqa: BLE001 - never hide the original error behind a tracking one
            log.warning("could not mark MLflow run %s failed", self.run_id)


def variant_overrides(cfg: ExperimentConfig) -> dict[str, Any]:
    """What sets ``cfg`` apart from its experiment's own config under the same profile.

    Parameters
    ----------
    cfg : ExperimentConfig
        A resolved config, e.g. a study's ablation arm.

    Returns
    -------
    dict
        Dotted keys of the fields that change what a run computes (the content hash's
        fields) and ``cfg``'s values for them; empty for the experiment itself, and for a
        config whose experiment or profile is not a file under ``configs/`` (nothing to
        compare it with).
    """
    from cifarkit.core.config import load_config
    from cifarkit.core.errors import CifarkitError

    try:
        base = load_config(cfg.name, cfg.profile)
    except CifarkitError:
        return {}
    ours, theirs = flatten(cfg.identity()), flatten(base.identity())
    values = flatten(cfg.model_dump(mode="json"))
    # A field left out of the identity is at its default (core.schema._HASH_OMIT_AT_DEFAULT).
    return {
        key: ours.get(key, values.get(key))
        for key in sorted(set(ours) | set(theirs))
        if ours.get(key) != theirs.get(key)
    }


def registry_name(cfg: ExperimentConfig) -> tuple[str, dict[str, Any]]:
    """The registered model a run of ``cfg`` is a version of, and the overrides behind the name.

    The experiment's own config (under any profile) registers as the experiment's name,
    e.g. ``resnet20``; a variant (an ablation arm, a ``--set``) as that name plus the first
    8 hex digits of the SHA-256 of its :func:`variant_overrides`, e.g. ``resnet20-3f9a0c1e``,
    so the versions of one name are seeds and profiles of one recipe.

    Parameters
    ----------
    cfg : ExperimentConfig
        The run's resolved config.

    Returns
    -------
    tuple of (str, dict)
        The registered model name and the overrides (empty for the experiment itself).
    """
    differs = variant_overrides(cfg)
    if not differs:
        return cfg.name, {}
    digest = hashlib.sha256(
        json.dumps(differs, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return f"{cfg.name}-{digest[:8]}", differs


def _describe_variant(experiment: str, differs: dict[str, Any]) -> str:
    if not differs:
        return f"cifarkit experiment {experiment} as configured in configs/{experiment}.yaml (any profile)"
    changes = ", ".join(f"{k}={json.dumps(v)}" for k, v in differs.items())
    return f"cifarkit experiment {experiment} with {changes}"


def alias_run(run: Run, alias: str) -> tuple[str, int]:
    """Point ``alias`` (e.g. ``headline``) of the run's registered model at the run's version.

    Parameters
    ----------
    run : Run
        A complete run that was registered (``status.json`` holds its model version).
    alias : str
        The alias to set; it moves from any other version of the same model.

    Returns
    -------
    tuple of (str, int)
        The registered model name and version.

    Raises
    ------
    CifarkitError
        If the run was never registered.
    """
    from cifarkit.core.errors import CifarkitError

    record = run.status_record()
    version = record.get("model_version")
    if version is None:
        raise CifarkitError(
            f"run {run.path.name} has no registered model version (trained with "
            "--no-register); train it again with registration to alias it"
        )
    name = record.get("registered_model") or registry_name(run.config())[0]
    _client().set_registered_model_alias(name, alias, str(version))
    return name, int(version)


def registered_model_names() -> list[str]:
    """Names of every registered model in the store, sorted."""
    return sorted(m.name for m in _client().search_registered_models())


def model_versions(name: str) -> list[dict[str, Any]]:
    """Registered versions of a model: version, run id, source, aliases and cifarkit's tags
    (without their ``cifarkit.`` prefix)."""
    client = _client()
    # search_model_versions leaves the aliases out (SQL store); get_model_version has them.
    found = [
        client.get_model_version(name, v.version)
        for v in client.search_model_versions(f"name='{name}'")
    ]
    return [
        {
            "version": int(v.version),
            "run_id": v.run_id,
            "source": v.source,
            "aliases": list(getattr(v, "aliases", []) or []),
            "tags": {
                k.removeprefix("cifarkit."): val
                for k, val in (v.tags or {}).items()
                if k.startswith("cifarkit.")
            },
        }
        for v in found
    ]
