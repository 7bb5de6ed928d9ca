"""Attention over training on a tiny trained run with epoch snapshots (slow: trains a run)."""

from __future__ import annotations

import numpy as np
import pytest
from train_fixtures import tiny_experiment, tiny_image_tree

from cifarkit.core.config import load_config
from cifarkit.core.errors import CifarkitError

pytestmark = pytest.mark.slow


def test_attention_over_training_per_snapshot(tmp_path, monkeypatch):
    from cifarkit import runs
    from cifarkit.data import splits_from_config
    from cifarkit.interpret import snapshots

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    data = tiny_image_tree(tmp_path / "data", train_per_class=8, test_per_class=2)
    cfg = load_config(
        tiny_experiment(tmp_path, data, epochs=2, extra="  snapshot_epochs: [1]\n"), None
    )
    run = runs.get_or_train(cfg, seed=0, register=False)
    splits = splits_from_config(cfg.data)
    images, labels = splits.x_test[:6].astype(np.float32), splits.y_test[:6]
    result = snapshots.attention_over_training(run, images, labels, steps=4)
    assert result.epochs == [1, 2]
    assert all(m.shape == (6, 32, 32) for m in result.maps.values())
    assert not np.array_equal(result.maps[1], result.maps[2])
    table = result.faithfulness
    assert set(table["epoch"]) == {1, 2}
    assert set(table["method"]) == {"gradcam", "random", "blurred random"}

    plain = runs.get_or_train(
        load_config(tiny_experiment(tmp_path, data, epochs=1), None), seed=0, register=False
    )
    with pytest.raises(CifarkitError, match="no epoch snapshots"):
        snapshots.attention_over_training(plain, images, labels)
