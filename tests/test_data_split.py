"""Seeded stratified splits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cifarkit.core.config import DataConfig
from cifarkit.core.errors import DataError
from cifarkit.data import (
    CLASS_NAMES,
    Cifar10,
    data_source_hash,
    load_cifar10,
    make_splits,
    splits_from_config,
)

TRAIN_PER_CLASS = 30
TEST_PER_CLASS = 8


def synthetic(seed: int = 0) -> Cifar10:
    """10 classes x 30 train / 8 test images, labels shuffled, image i filled with i % 256."""
    rng = np.random.default_rng(seed)
    y_train = rng.permutation(np.repeat(np.arange(10), TRAIN_PER_CLASS)).astype(np.int64)
    y_test = rng.permutation(np.repeat(np.arange(10), TEST_PER_CLASS)).astype(np.int64)
    x_train = np.broadcast_to(
        (np.arange(len(y_train)) % 256).astype(np.uint8)[:, None, None, None],
        (len(y_train), 32, 32, 3),
    ).copy()
    x_test = np.zeros((len(y_test), 32, 32, 3), np.uint8)
    return Cifar10(
        x_train, y_train, x_test, y_test, CLASS_NAMES, "synthetic", "image-folder", "f" * 64, None
    )


@pytest.fixture(scope="module")
def data() -> Cifar10:
    return synthetic()


def test_stratified_counts(data: Cifar10) -> None:
    splits = make_splits(data, val_per_class=5)
    counts = splits.counts()
    assert set(counts) == {"train", "val", "test"}
    assert counts["train"].tolist() == [TRAIN_PER_CLASS - 5] * 10
    assert counts["val"].tolist() == [5] * 10
    assert counts["test"].tolist() == [TEST_PER_CLASS] * 10
    assert splits.class_names == CLASS_NAMES and splits.source_hash == data.source_hash


def test_train_and_val_are_disjoint_and_cover_everything(data: Cifar10) -> None:
    splits = make_splits(data, val_per_class=7, seed=3)
    assert not set(splits.train_idx) & set(splits.val_idx)
    assert sorted([*splits.train_idx, *splits.val_idx]) == list(range(len(data.y_train)))
    for idx in (splits.train_idx, splits.val_idx, splits.test_idx):
        assert idx.dtype == np.int64 and (np.diff(idx) > 0).all()


def test_arrays_are_taken_at_the_indices(data: Cifar10) -> None:
    splits = make_splits(data, val_per_class=5, train_per_class=10, test_limit=20)
    np.testing.assert_array_equal(splits.x_train, data.x_train[splits.train_idx])
    np.testing.assert_array_equal(splits.y_val, data.y_train[splits.val_idx])
    np.testing.assert_array_equal(splits.x_test, data.x_test[splits.test_idx])
    np.testing.assert_array_equal(splits.y_test, data.y_test[splits.test_idx])


def test_deterministic_and_seed_dependent(data: Cifar10) -> None:
    a, b = make_splits(data, val_per_class=5, seed=1), make_splits(data, val_per_class=5, seed=1)
    np.testing.assert_array_equal(a.val_idx, b.val_idx)
    np.testing.assert_array_equal(a.train_idx, b.train_idx)
    assert not np.array_equal(a.val_idx, make_splits(data, val_per_class=5, seed=2).val_idx)


def test_deterministic_across_processes(data: Cifar10) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from test_data_split import synthetic;"
        "from cifarkit.data import make_splits;"
        "s = make_splits(synthetic(), val_per_class=5, seed=11, train_per_class=9);"
        "print(s.val_idx.tolist(), s.train_idx.tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = make_splits(data, val_per_class=5, seed=11, train_per_class=9)
    assert out == f"{here.val_idx.tolist()} {here.train_idx.tolist()}"


def test_val_does_not_depend_on_train_per_class(data: Cifar10) -> None:
    full = make_splits(data, val_per_class=5)
    small = make_splits(data, val_per_class=5, train_per_class=4)
    larger = make_splits(data, val_per_class=5, train_per_class=12)
    np.testing.assert_array_equal(full.val_idx, small.val_idx)
    np.testing.assert_array_equal(full.val_idx, larger.val_idx)
    assert small.counts()["train"].tolist() == [4] * 10
    assert set(small.train_idx) <= set(larger.train_idx) <= set(full.train_idx)


def test_val_per_class_zero_trains_on_everything(data: Cifar10) -> None:
    splits = make_splits(data, val_per_class=0)
    assert len(splits.val_idx) == 0 and len(splits.train_idx) == len(data.y_train)


def test_test_limit_is_stratified_in_test_order(data: Cifar10) -> None:
    splits = make_splits(data, val_per_class=5, test_limit=35)  # 3 per class
    assert splits.counts()["test"].tolist() == [3] * 10
    for cls in range(10):
        first = np.flatnonzero(data.y_test == cls)[:3]
        assert set(first) <= set(splits.test_idx)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"val_per_class": 25, "train_per_class": 6},
            r"val_per_class=25 \+ train_per_class=6 exceeds the 30",
        ),
        ({"val_per_class": 30}, r"val_per_class=30 \+ at least 1 train image exceeds the 30"),
        (
            {"val_per_class": 5, "test_limit": 9},
            r"test_limit=9 is smaller than the number of classes \(10\)",
        ),
        ({"val_per_class": 5, "test_limit": 90}, r"test_limit=90 needs 9 test images per class"),
        ({"val_per_class": 5, "seed": -1}, "seed=-1"),
    ],
)
def test_impossible_splits_are_data_errors(
    data: Cifar10, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        make_splits(data, **kwargs)


def test_splits_from_config(image_tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = image_tree
    cfg = DataConfig(
        source=str(root), val_per_class=1, split_seed=4, train_per_class=2, test_limit=None
    )
    splits = splits_from_config(cfg)
    assert splits.counts()["train"].tolist() == [2, 2, 2]
    assert splits.counts()["val"].tolist() == [1, 1, 1]
    assert splits.source_hash == load_cifar10(root).source_hash == data_source_hash(root)
    same = make_splits(load_cifar10(root), val_per_class=1, seed=4, train_per_class=2)
    np.testing.assert_array_equal(splits.val_idx, same.val_idx)
