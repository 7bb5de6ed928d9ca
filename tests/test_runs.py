"""The training engine end to end on a tiny dataset: run store, cache, lock, resume, MLflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import tiny_experiment, tiny_image_tree

from cifarkit.core.config import load_config

pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path, monkeypatch):
    """Isolated artifacts, cache and MLflow store, plus a tiny data tree."""
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CIFARKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    data = tiny_image_tree(tmp_path / "data")
    return tmp_path, data


def test_train_completes_writes_contract_and_caches(store, monkeypatch):
    from cifarkit import runs
    from cifarkit.runs import tracking

    tmp_path, data = store
    cfg = load_config(
        tiny_experiment(tmp_path, data, epochs=2, extra="  snapshot_epochs: [1, 2]\n"), None
    )
    run = runs.get_or_train(cfg, seed=0)
    assert run.complete
    for name in (
        "config.yaml",
        "env.json",
        "history.csv",
        "history.json",
        "model.keras",
        "predictions.npz",
        "metrics.json",
        "status.json",
    ):
        assert (run.path / name).is_file(), name
    assert not (run.path / "checkpoint").exists()
    metrics = run.metrics()
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    logits, labels = run.predictions()
    assert logits.shape == (60, 10) and labels.shape == (60,)
    val_logits, val_labels = run.predictions("val")
    assert val_logits.shape == (40, 10) and val_labels.shape == (40,)
    assert metrics["test_accuracy"] == pytest.approx(float((logits.argmax(1) == labels).mean()))
    history = run.history()
    assert [row["epoch"] for row in history] == [1, 2]
    assert "val_acc_cat" in history[0] and "val_accuracy" in history[0]
    assert "acc_cat" not in history[0]  # per-class figures are the validation's only
    # Where the run's time went: each epoch's steps and validation, the first step's tracing.
    assert all(row["step_seconds"] > 0 and row["val_seconds"] > 0 for row in history)
    assert history[0]["trace_seconds"] > 0 and history[1]["trace_seconds"] == 0
    seconds = run.status_record()["seconds"]
    assert set(seconds) == {"steps", "tracing", "validation", "test", "checkpoints", "mlflow"}
    assert seconds["checkpoints"] > 0 and seconds["mlflow"] > 0
    assert seconds["steps"] == pytest.approx(sum(row["step_seconds"] for row in history), abs=0.01)
    assert 0 < sum(seconds.values()) < run.status_record()["wall_seconds"]
    assert sorted(run.snapshots()) == [1, 2]
    model = run.load_model(snapshot_epoch=1)
    assert model.output_shape == (None, 10)
    # The snapshots and the model file are copies of the checkpoint their epoch wrote: the last
    # epoch's snapshot and model.keras both give the stored test logits, epoch 1's does not.
    from cifarkit.data import splits_from_config
    from cifarkit.models import float32_model, predict_logits

    x_test = splits_from_config(cfg.data).x_test
    for final in (run.load_model(), run.load_model(snapshot_epoch=2)):
        np.testing.assert_allclose(
            predict_logits(float32_model(final), x_test), logits, rtol=0, atol=1e-5
        )
    assert not np.allclose(predict_logits(float32_model(model), x_test), logits, atol=1e-3)
    env = json.loads((run.path / "env.json").read_text())
    assert env["packages"]["tensorflow"] and "python" in env

    # MLflow: the run exists with per-epoch metrics, and a model version is registered.
    record = run.status_record()
    client = tracking._client()
    mlflow_run = client.get_run(record["mlflow_run_id"])
    assert mlflow_run.info.status == "FINISHED"
    assert len(client.get_metric_history(record["mlflow_run_id"], "val_accuracy")) == 2
    assert [v["version"] for v in tracking.model_versions(cfg.name)] == [record["model_version"]]

    # Second call: straight from the cache, no training; a checkpoint a kill left after the
    # run was marked complete is removed.
    monkeypatch.setattr(
        "cifarkit.runs.store._train_into", lambda *a, **k: pytest.fail("trained twice")
    )
    (run.path / "checkpoint" / "epoch-0002").mkdir(parents=True)
    (run.path / "checkpoint" / "epoch-0002" / "state.weights.h5").write_bytes(b"left over")
    assert runs.get_or_train(cfg, seed=0).path == run.path  # _train_into would fail: no training
    assert not (run.path / "checkpoint").exists() and run.complete
    assert [r["status"] for r in runs.list_runs()] == ["complete"]


@pytest.fixture(scope="module")
def one_epoch_runs(tmp_path_factory):
    """The tiny one-epoch config's runs of seeds 0 and 1, trained once in this process (one at a
    time, through the study plan's runner) for the tests that compare other trainings with them."""
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import Run, locate, runs_root
    from cifarkit.studies import plan as study
    from cifarkit.studies.runner import train_plan

    base = tmp_path_factory.mktemp("one-epoch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFARKIT_ARTIFACTS", str(base / "artifacts"))
        mp.setenv("CIFARKIT_CACHE", str(base / "cache"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("CIFARKIT_DATA", raising=False)
        cfg = load_config(tiny_experiment(base, tiny_image_tree(base / "data"), epochs=1), None)
        plan = [
            study.PlannedRun(cfg, seed, locate(cfg, seed, data_hash_for(cfg.data)).path.name, False)
            for seed in (0, 1)
        ]
        trained = train_plan(plan, {}, jobs=1)
        runs = {e.seed: Run(runs_root() / e.folder) for e in plan}
    return cfg, plan, trained, runs


def test_same_seed_twice_gives_identical_results(store, one_epoch_runs):
    from cifarkit import runs

    cfg, _, _, first_store = one_epoch_runs
    first = first_store[0]
    second = runs.get_or_train(cfg, seed=0, register=False)  # this test's own store
    assert first.path != second.path
    np.testing.assert_array_equal(first.predictions()[0], second.predictions()[0])
    other = first_store[1]
    assert not np.array_equal(first.predictions()[0], other.predictions()[0])


def _train_cmd(config: Path, seed: int = 0) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cifarkit.cli",
        "-q",
        "train",
        str(config),
        "--profile",
        "none",
        "--seed",
        str(seed),
        "--no-register",
    ]


def test_sigkill_mid_training_resumes_to_identical_metrics(store, tmp_path):
    """Kill -9 during epoch 3 of 4, run the same command again: same result as uninterrupted."""
    _, data = store
    # Enough images that an epoch takes a few seconds, so the kill lands mid-epoch.
    big = tiny_image_tree(tmp_path / "bigdata", train_per_class=150, test_per_class=10)
    config = tiny_experiment(tmp_path, big, epochs=4)
    env = {**os.environ, "CIFARKIT_ARTIFACTS": str(tmp_path / "killed")}
    # The uninterrupted reference trains beside it (deterministic ops: the same bits under load).
    reference_env = {**os.environ, "CIFARKIT_ARTIFACTS": str(tmp_path / "reference")}
    reference = subprocess.Popen(
        _train_cmd(config), env=reference_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    proc = subprocess.Popen(
        _train_cmd(config), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    runs_dir = tmp_path / "killed" / "runs"
    deadline = time.time() + 240
    while time.time() < deadline:
        pointers = list(runs_dir.glob("*/checkpoint/latest.json"))
        if pointers and json.loads(pointers[0].read_text())["epoch"] >= 2:
            break
        if proc.poll() is not None:
            pytest.fail(f"trainer exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    else:
        pytest.fail("no checkpoint after epoch 2 within the deadline")
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = pointers[0].parent.parent
    assert json.loads((run_dir / "status.json").read_text())["status"] == "running"
    subprocess.run(_train_cmd(config), env=env, check=True, capture_output=True)
    resumed = json.loads((run_dir / "status.json").read_text())
    assert resumed["status"] == "complete" and resumed["resumed_from_epoch"] >= 2

    _, errors = reference.communicate(timeout=600)
    assert reference.returncode == 0, errors.decode()[-2000:]
    reference_dir = tmp_path / "reference" / "runs" / run_dir.name
    assert json.loads((reference_dir / "status.json").read_text())["resumed_from_epoch"] == 0
    with np.load(run_dir / "predictions.npz") as a, np.load(reference_dir / "predictions.npz") as b:
        np.testing.assert_array_equal(a["logits"], b["logits"])
    drop = ("train_seconds",)
    got = {
        k: v for k, v in json.loads((run_dir / "metrics.json").read_text()).items() if k not in drop
    }
    want = {
        k: v
        for k, v in json.loads((reference_dir / "metrics.json").read_text()).items()
        if k not in drop
    }
    assert got == want


def test_runs_trained_two_at_a_time_are_the_runs_trained_one_at_a_time(
    store, monkeypatch, one_epoch_runs
):
    from cifarkit.runs import Run, runs_root
    from cifarkit.studies.runner import train_plan

    tmp_path, _ = store
    cfg, plan, one_at_a_time, runs = one_epoch_runs
    assert sorted(one_at_a_time) == sorted(e.folder for e in plan)
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "jobs2"))
    assert sorted(train_plan(plan, {}, jobs=2)) == sorted(e.folder for e in plan)
    for e in plan:
        two = Run(runs_root() / e.folder).predictions()[0]
        # bitwise: training in a worker process changes nothing
        assert np.array_equal(two, runs[e.seed].predictions()[0])
