"""The MLflow registry names what it holds: one registered model per experiment and variant,
versions tagged with config hash, seed, profile and test accuracy, with a signature."""

from __future__ import annotations

import json

import pytest
from train_fixtures import tiny_image_tree, write_model_run

from cifarkit.core.config import load_config
from cifarkit.data import splits_from_config
from cifarkit.runs import tracking


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """A configs/ folder with one tiny experiment and profile, and a private MLflow store."""
    data = tiny_image_tree(tmp_path / "data", train_per_class=6, test_per_class=4)
    root = tmp_path / "configs"
    (root / "profiles").mkdir(parents=True)
    (root / "tinyexp.yaml").write_text(
        f"model: {{name: baseline_cnn, dropout: 0.1}}\ndata: {{source: {data}, val_per_class: 2}}\n"
        "train: {epochs: 2, batch_size: 32}\n"
    )
    (root / "profiles" / "quick.yaml").write_text("train: {epochs: 1}\n")
    monkeypatch.setenv("CIFARKIT_CONFIGS", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return data


def test_registry_names_the_experiment_and_hashes_a_variant(configs):
    base = load_config("tinyexp", "quick")
    assert tracking.registry_name(base) == ("tinyexp", {})
    assert tracking.registry_name(load_config("tinyexp", None))[0] == "tinyexp"  # any profile
    variant = load_config(
        "tinyexp", "quick", overrides={"train.augment.enabled": False, "model.dropout": 0.3}
    )
    name, differs = tracking.registry_name(variant)
    assert differs == {"model.dropout": 0.3, "train.augment.enabled": False}
    assert name.startswith("tinyexp-") and len(name) == len("tinyexp-") + 8
    same = load_config(
        "tinyexp", "quick", overrides={"model.dropout": 0.3, "train.augment.enabled": False}
    )
    assert tracking.registry_name(same)[0] == name
    # Where the data lives does not change what a run computes, so not the name either.
    assert (
        tracking.registry_name(
            load_config("tinyexp", "quick", overrides={"data.source": "/elsewhere"})
        )[0]
        == "tinyexp"
    )


@pytest.mark.slow
def test_a_registered_version_carries_tags_signature_and_an_alias(configs):
    cfg = load_config("tinyexp", "quick", overrides={"model.dropout": 0.3})
    splits = splits_from_config(cfg.data)
    run, _ = write_model_run(cfg, splits, seed=2)
    (run.path / "env.json").write_text("{}")
    (run.path / "history.csv").write_text("epoch\n1\n")
    tracker = tracking.RunTracker.start_or_resume(run, cfg, 2)
    version = tracker.finish(run, {"test_accuracy": 0.25, "train_seconds": 1.0}, register=True)
    name = tracker.registered_name
    assert name == tracking.registry_name(cfg)[0] and name != "tinyexp"

    (entry,) = tracking.model_versions(name)
    assert entry["version"] == version
    assert entry["tags"]["config_hash"] == cfg.content_hash()
    assert entry["tags"]["seed"] == "2" and entry["tags"]["profile"] == "quick"
    assert float(entry["tags"]["test_accuracy"]) == pytest.approx(0.25)
    assert entry["tags"]["run"] == run.path.name

    client = tracking._client()
    registered = client.get_registered_model(name)
    assert json.loads(registered.tags["cifarkit.overrides"]) == {"model.dropout": 0.3}
    assert "model.dropout=0.3" in registered.description

    import mlflow

    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    signature = info.signature.to_dict()
    assert json.loads(signature["inputs"])[0]["tensor-spec"] == {
        "dtype": "float32",
        "shape": [-1, 32, 32, 3],
    }
    assert json.loads(signature["outputs"])[0]["tensor-spec"]["shape"] == [-1, 10]

    status = json.loads(run.status_path.read_text())
    status.update(model_version=version, registered_model=name)
    run.status_path.write_text(json.dumps(status))
    assert tracking.alias_run(run, "headline") == (name, version)
    assert int(client.get_model_version_by_alias(name, "headline").version) == version

    # The reproducibility appendix lists it, with its tags.
    from cifarkit.publish.reproducibility import registered_models

    table = registered_models("quick")
    row = table[table["model"] == name].iloc[0]
    assert row["version"] == version and row["seed"] == "2" and row["test accuracy (%)"] == 25.0
    assert "headline" in row["aliases"] and row["config hash"] == cfg.content_hash()[:12]
    assert registered_models("other").empty


_OPEN_STORE_AT_ONCE = """
import sys, time
from pathlib import Path
import mlflow.store.tracking.sqlalchemy_store  # the slow imports happen before the start
from cifarkit.runs import tracking
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
tracking.prepare_store()
"""


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    """Several processes creating a new SQLite store together (the first runs of a parallel
    build) all succeed: the tables are made once, under a lock that leaves no file behind."""
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "CIFARKIT_ARTIFACTS": str(tmp_path / "artifacts")}
    env.pop("MLFLOW_TRACKING_URI", None)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_STORE_AT_ONCE, str(tmp_path / f"ready{i}"), str(go)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)  # every process has imported MLflow and waits for the start
    go.touch()
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, "\n".join(errors)[-3000:]
    assert [p.name for p in (tmp_path / "artifacts").iterdir()] == [
        "mlflow.db"
    ]  # no lock file left
