"""The run store's rules that need no training: the training lock, and a store that only reads."""

from __future__ import annotations

import json

import pytest
from filelock import FileLock
from train_fixtures import tiny_experiment, tiny_image_tree

from cifarkit.core.config import load_config
from cifarkit.core.errors import CifarkitError


@pytest.fixture
def store(tmp_path, monkeypatch):
    """Isolated artifacts, cache and MLflow store, plus a tiny data tree."""
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CIFARKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    data = tiny_image_tree(tmp_path / "data")
    return tmp_path, data


def test_lock_contention_exits_cleanly(store, tmp_path):
    from cifarkit import runs
    from cifarkit.data.identity import data_hash_for

    _, data = store
    cfg = load_config(tiny_experiment(tmp_path, data, epochs=1), None)
    run = runs.locate(cfg, 0, data_hash_for(cfg.data))
    run.path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(run.lock_path), pytest.raises(CifarkitError, match="another process is training"):
        runs.get_or_train(cfg, seed=0, wait=False)
    assert not run.complete


def test_a_no_train_build_fails_on_a_missing_run_with_its_command(monkeypatch):
    from cifarkit.core.config import load_config
    from cifarkit.core.errors import CifarkitError
    from cifarkit.runs import get_or_train
    from cifarkit.runs.store import NO_TRAIN_ENV

    monkeypatch.setenv(NO_TRAIN_ENV, "1")
    monkeypatch.setattr("cifarkit.runs.store._train_into", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr("cifarkit.data.identity.data_hash_for", lambda data: "0" * 64)
    cfg = load_config("resnet20", "smoke", {"train.epochs": 4})
    with pytest.raises(CifarkitError) as err:
        get_or_train(cfg, seed=1)
    message = str(err.value)
    assert "trains nothing (CIFARKIT_NO_TRAIN=1)" in message and "\n" not in message
    assert "`cifarkit train resnet20 --profile smoke --set train.epochs=4 --seed 1`" in message


def test_reading_a_stored_run_never_trains_and_names_the_command_that_makes_it(
    tmp_path, monkeypatch
):
    from cifarkit.runs import COMPLETE, locate, stored_run

    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path))
    monkeypatch.delenv("CIFARKIT_NO_TRAIN", raising=False)  # it never trains, switch or not
    monkeypatch.setattr("cifarkit.runs.store._train_into", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr("cifarkit.data.identity.data_hash_for", lambda data: "0" * 64)
    cfg = load_config("resnet20", "smoke", {"train.epochs": 4})
    with pytest.raises(CifarkitError) as err:
        stored_run(cfg, 1, label="ResNet20, 4 epochs")
    message = str(err.value)
    assert (
        message.startswith("run resnet20-") and "(ResNet20, 4 epochs, seed 1) is missing" in message
    )
    assert "never trained" in message and "\n" not in message
    assert (
        "make it with: cifarkit train resnet20 --profile smoke --set train.epochs=4 --seed 1"
        in message
    )
    run = locate(cfg, 1, "0" * 64)
    run.path.mkdir(parents=True)
    (run.path / "status.json").write_text(json.dumps({"status": COMPLETE}))
    assert stored_run(cfg, 1).path == run.path
