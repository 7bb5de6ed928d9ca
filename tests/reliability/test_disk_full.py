"""Disk full during a checkpoint write.

``OSError(ENOSPC)`` is injected at the moment of writing, after one good checkpoint exists:
in :meth:`CheckpointManager.save` directly (at each of its writes), and through a real tiny
training where, from the second epoch on, every atomic write under the artifacts folder
fails as on a full disk. The user gets one line naming the full disk and the folder, the
previous checkpoint stays byte-identical and is what a restart resumes from, no partial
folder is ever taken for a checkpoint, and after "freeing space" the same command resumes
and completes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import tiny_experiment, tiny_image_tree

from cifarkit.core.errors import CifarkitError
from cifarkit.core.precision import POLICIES

pytestmark = pytest.mark.slow


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _full(path: object = None) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path) if path is not None else None)


def _tiny_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")], name="tiny")
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.fit(np.ones((8, 4), np.float32), np.zeros((8, 3), np.float32), epochs=1, verbose=0)
    return model


# --------------------------------------------------------------------------- CheckpointManager


@pytest.mark.parametrize("where", ["model.keras", "state.json", "latest.json", "mkdir"])
def test_save_on_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch, where):
    import keras

    from cifarkit.training import checkpoint
    from cifarkit.training.checkpoint import CheckpointManager

    folder = tmp_path / "run" / "checkpoint"
    manager = CheckpointManager(folder)
    model = _tiny_model()
    manager.save(model, 1, {"history": [{"epoch": 1}], "train_seconds": 1.0})
    intact = _hashes(folder)
    weights = [w.copy() for w in model.get_weights()]  # as saved at epoch 1

    model.fit(np.ones((8, 4), np.float32), np.ones((8, 3), np.float32), epochs=1, verbose=0)
    real_write_json = checkpoint.write_json
    if where == "model.keras":

        def failing_save(self, *args, **kwargs):
            raise _full(args[0] if args else None)

        monkeypatch.setattr(keras.Model, "save", failing_save)
    elif where == "mkdir":
        real_mkdir = Path.mkdir

        def failing_mkdir(self, *args, **kwargs):
            if self.name.endswith(".partial"):
                raise _full(self)
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", failing_mkdir)
    else:

        def failing_write_json(path, obj):
            if Path(path).name == where:
                raise _full(path)
            return real_write_json(path, obj)

        monkeypatch.setattr(checkpoint, "write_json", failing_write_json)

    with pytest.raises(CifarkitError) as info:
        manager.save(model, 2, {"history": [{"epoch": 1}, {"epoch": 2}], "train_seconds": 2.0})
    message = str(info.value)
    assert "disk full" in message and str(folder) in message and "\n" not in message
    assert "epoch 1 checkpoint is intact" in message
    monkeypatch.undo()  # space is free again

    # The previous checkpoint is untouched and is the one latest() names; nothing partial is left.
    assert _hashes(folder) == intact
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-001", "latest.json"]
    assert manager.latest()["epoch"] == 1
    fresh = _tiny_model()
    fresh.set_weights([np.zeros_like(w) for w in fresh.get_weights()])
    assert manager.restore(fresh)["epoch"] == 1
    for restored, saved in zip(fresh.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(restored, saved)

    # With space again the same save goes through and replaces the old checkpoint.
    manager.save(model, 2, {"history": [{"epoch": 1}, {"epoch": 2}], "train_seconds": 2.0})
    assert manager.latest()["epoch"] == 2
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-002", "latest.json"]


def test_first_checkpoint_on_a_full_disk_says_the_run_restarts(tmp_path, monkeypatch):
    import keras

    from cifarkit.training.checkpoint import CheckpointManager

    model = _tiny_model()

    def failing_save(self, path, **kwargs):
        raise _full(path)

    monkeypatch.setattr(keras.Model, "save", failing_save)
    manager = CheckpointManager(tmp_path / "checkpoint")
    with pytest.raises(
        CifarkitError, match=r"disk full while writing the epoch 1 checkpoint .*restart the run"
    ):
        manager.save(model, 1, {"history": [], "train_seconds": 0.0})
    assert manager.latest() is None
    assert list((tmp_path / "checkpoint").iterdir()) == []


def test_other_write_errors_are_not_called_disk_full(tmp_path, monkeypatch):
    import keras

    from cifarkit.training.checkpoint import CheckpointManager

    model = _tiny_model()

    def denied(self, path, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(keras.Model, "save", denied)
    with pytest.raises(PermissionError):
        CheckpointManager(tmp_path / "checkpoint").save(
            model, 1, {"history": [], "train_seconds": 0.0}
        )


def test_partial_folders_are_never_taken_for_a_checkpoint(tmp_path):
    from cifarkit.training.checkpoint import CheckpointManager

    folder = tmp_path / "checkpoint"
    manager = CheckpointManager(folder)
    model = _tiny_model()
    manager.save(model, 1, {"history": [{"epoch": 1}], "train_seconds": 1.0})
    # What a crash or a full disk in the middle of epoch 2's save could leave behind.
    (folder / ".epoch-002.partial").mkdir()
    (folder / ".epoch-002.partial" / "model.keras").write_bytes(b"PK\x03\x04 half")
    (folder / "epoch-002").mkdir()
    (folder / "epoch-002" / "state.json").write_text('{"epoch": 2, "history": []}')
    assert manager.latest()["epoch"] == 1
    assert manager.restore(_tiny_model())["epoch"] == 1
    manager.save(model, 2, {"history": [{"epoch": 1}, {"epoch": 2}], "train_seconds": 2.0})
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-002", "latest.json"]


# --------------------------------------------------------------------------- a real training


@contextlib.contextmanager
def disk_fills_after_first_checkpoint(
    monkeypatch: pytest.MonkeyPatch, artifacts: Path
) -> Iterator[dict]:
    """From the moment epoch 1's checkpoint is on disk, every atomic write under ``artifacts``
    fails with ENOSPC (checkpoint model and JSON files, status, history, predictions...)."""
    from cifarkit.core import atomic
    from cifarkit.training import checkpoint
    from cifarkit.training.checkpoint import CheckpointManager

    state = {"full": False, "refused": [], "intact": None}
    real_atomic_path = atomic.atomic_path
    real_save = CheckpointManager.save

    @contextlib.contextmanager
    def atomic_path(path, suffix=""):
        if state["full"] and Path(path).resolve().is_relative_to(artifacts.resolve()):
            state["refused"].append(Path(path).name)
            raise _full(path)
        with real_atomic_path(path, suffix=suffix) as tmp:
            yield tmp

    def save(self, model, epoch, info, copies=()):
        target = real_save(self, model, epoch, info, copies)
        if epoch == 1:
            state["full"] = True
            state["intact"] = _hashes(self.folder)
        return target

    with monkeypatch.context() as mp:
        mp.setattr(atomic, "atomic_path", atomic_path)
        mp.setattr(checkpoint, "atomic_path", atomic_path)
        mp.setattr("cifarkit.runs.store.atomic_path", atomic_path)
        mp.setattr(CheckpointManager, "save", save)
        yield state


def test_training_on_a_full_disk_fails_clearly_and_resumes(tmp_path, monkeypatch, capsys):
    from cifarkit import runs
    from cifarkit.cli import main
    from cifarkit.core.config import load_config
    from cifarkit.data.identity import data_hash_for

    artifacts = tmp_path / "artifacts"
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(artifacts))
    monkeypatch.setenv(
        "CIFARKIT_CACHE", str(tmp_path / "cache")
    )  # the data cache is not on the full disk
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    data = tiny_image_tree(tmp_path / "data", train_per_class=12, test_per_class=2)
    config = tiny_experiment(tmp_path, data, epochs=3)
    cfg = load_config(config, None)
    run = runs.locate(cfg, 0, data_hash_for(cfg.data))
    ckpt = run.path / "checkpoint"

    # The user's command, in-process, on a disk that fills up after epoch 1's checkpoint.
    with disk_fills_after_first_checkpoint(monkeypatch, artifacts) as disk:
        capsys.readouterr()
        code = main(
            ["-q", "train", str(config), "--profile", "none", "--seed", "0", "--no-register"]
        )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("cifarkit: error:")]
    assert len(errors) == 1, err
    assert "disk full while writing the epoch 2 checkpoint in " + str(ckpt) in errors[0]
    assert "epoch 1 checkpoint is intact" in errors[0] and "run the same command again" in errors[0]
    assert disk["refused"][0] == "model.keras"  # the epoch-2 checkpoint write was the first refused

    # The epoch-1 checkpoint is byte-identical; no partial folder is left; the run is not complete.
    assert _hashes(ckpt) == disk["intact"]
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch-001", "latest.json"]
    assert json.loads((ckpt / "latest.json").read_text()) == {
        "epoch": 1,
        "folder": "epoch-001",
        "policy": POLICIES[cfg.train.precision],
    }
    assert not run.complete

    # Space freed: the same call resumes after epoch 1 and completes.
    resumed = runs.get_or_train(cfg, 0, register=False)
    assert resumed.path == run.path and resumed.complete
    record = resumed.status_record()
    assert record["resumed_from_epoch"] == 1
    assert [row["epoch"] for row in resumed.history()] == [1, 2, 3]
    assert not ckpt.exists()


def test_full_disk_elsewhere_in_training_is_one_clear_error(tmp_path, monkeypatch):
    """ENOSPC outside the checkpoint (here: predictions.npz at the end) is a CifarkitError too,
    even though writing the 'failed' status hits the full disk as well."""
    from cifarkit import runs
    from cifarkit.core import atomic
    from cifarkit.core.config import load_config

    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CIFARKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = tiny_image_tree(tmp_path / "data", train_per_class=12, test_per_class=2)
    cfg = load_config(tiny_experiment(tmp_path, data, epochs=1), None)

    real = atomic.atomic_path
    full = {"on": False}

    @contextlib.contextmanager
    def atomic_path(path, suffix=""):
        if Path(path).name == "predictions.npz":
            full["on"] = True
        if full["on"]:
            raise _full(path)
        with real(path, suffix=suffix) as tmp:
            yield tmp

    monkeypatch.setattr(atomic, "atomic_path", atomic_path)
    monkeypatch.setattr("cifarkit.runs.store.atomic_path", atomic_path)
    with pytest.raises(CifarkitError) as info:
        runs.get_or_train(cfg, 0, register=False)
    message = str(info.value)
    assert "disk full while training" in message and "predictions.npz" in message
    assert "run the same command again" in message and "\n" not in message
