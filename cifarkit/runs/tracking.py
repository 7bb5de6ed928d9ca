"""MLflow tracking for runs: params, per-epoch metrics, artifacts and a registered model.

The default store is a SQLite file ``artifacts/mlflow.db`` (no server), with artifacts
under ``artifacts/mlflow-artifacts``; ``MLFLOW_TRACKING_URI`` overrides it. A resumed run
continues its MLflow run (the id is kept in the run folder), so an interrupted training
shows up once, with all its epochs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from cifarkit.core.atomic import write_json
from cifarkit.core.config import ExperimentConfig
from cifarkit.core.paths import artifacts_dir

if TYPE_CHECKING:
    from cifarkit.runs.run import Run

log = logging.getLogger(__name__)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{artifacts_dir() / 'mlflow.db'}"


def _client():
    import mlflow
    from mlflow.tracking import MlflowClient

    artifacts_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient(tracking_uri())


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


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class RunTracker:
    """One MLflow run bound to one cifarkit run folder."""

    def __init__(self, client, run_id: str) -> None:
        self.client, self.run_id = client, run_id

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
                log.warning("MLflow run recorded in %s not found in %s; starting a new one", id_file, tracking_uri())
        created = client.create_run(
            _experiment_id(client, cfg.name), run_name=f"{run.path.name}-seed{seed}",
            tags={"cifarkit.run_dir": str(run.path), "cifarkit.seed": str(seed),
                  "cifarkit.profile": cfg.profile, "cifarkit.config_hash": cfg.content_hash()})
        run_id = created.info.run_id
        params = flatten({**cfg.model_dump(mode="json"), "seed": seed})
        from mlflow.entities import Param

        client.log_batch(run_id, params=[Param(k, str(v)[:500]) for k, v in sorted(params.items())])
        write_json(id_file, {"run_id": run_id, "tracking_uri": tracking_uri()})
        return cls(client, run_id)

    def log_epoch(self, epoch: int, row: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch) for k, v in row.items()
                   if k != "epoch" and isinstance(v, int | float)]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, run: Run, metrics: dict[str, Any], register: bool) -> int | None:
        """Log final metrics, artifacts and the model; register a model version; close the run."""
        import mlflow

        # val_* were logged per epoch already; add the test-set figures and timings once.
        finals = {k: float(v) for k, v in flatten(metrics).items()
                  if isinstance(v, int | float) and not k.startswith("val_")}
        with mlflow.start_run(run_id=self.run_id):
            mlflow.log_metrics(finals)
            for name in ("config.yaml", "env.json", "history.csv", "metrics.json"):
                mlflow.log_artifact(str(run.path / name))
        version = None
        if register:
            version = self._register(run)
        self.client.set_terminated(self.run_id, status="FINISHED")
        return version

    def _register(self, run: Run) -> int:
        import keras
        import mlflow

        from cifarkit.models import load_model

        model = load_model(run.model_path)
        experiment = run.status_record().get("experiment") or run.path.name.rsplit("-", 1)[0]
        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.keras.log_model(
                model, name="model", registered_model_name=experiment,
                pip_requirements=[f"keras=={keras.__version__}", "tensorflow"],
            )
        version = getattr(info, "registered_model_version", None)
        log.info("registered %s version %s in MLflow (%s)", experiment, version, tracking_uri())
        return int(version) if version is not None else None

    def fail(self) -> None:
        try:
            self.client.set_terminated(self.run_id, status="FAILED")
        except Exception:  # noqa: BLE001 - never hide the original error behind a tracking one
            log.warning("could not mark MLflow run %s failed", self.run_id)


def model_versions(name: str) -> list[dict[str, Any]]:
    """Registered versions of a model: version, run id, source."""
    client = _client()
    return [{"version": int(v.version), "run_id": v.run_id, "source": v.source}
            for v in client.search_model_versions(f"name='{name}'")]


def run_link(run_id: str) -> str:
    """Where to find a run in the MLflow UI started by ``make mlflow-ui``."""
    return f"http://127.0.0.1:5000/#/runs/{run_id}"

