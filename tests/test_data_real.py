"""The real CIFAR-10 (``CIFARKIT_DATA``): sizes, classes, the default split, the warm cache.

Skipped when ``CIFARKIT_DATA`` is unset, unless ``CIFARKIT_REQUIRE_DATA=1`` (CI), which
turns the missing variable into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

from cifarkit.data import CLASS_NAMES, Cifar10, load_cifar10, make_splits

pytestmark = pytest.mark.data


def _require_source() -> str:
    source = os.environ.get("CIFARKIT_DATA", "").strip()
    if source:
        return source
    if os.environ.get("CIFARKIT_REQUIRE_DATA") == "1":
        pytest.fail(
            "CIFARKIT_REQUIRE_DATA=1 but CIFARKIT_DATA is not set: point CIFARKIT_DATA at "
            "cifar10-jpeg.tgz or cifar-10-python.tar.gz"
        )
    pytest.skip("CIFARKIT_DATA is not set (set it to run the real-data tests)")


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One tmp cache for the module, so the real data is decoded once, not per test."""
    with pytest.MonkeyPatch.context() as mp:
        folder = str(tmp_path_factory.mktemp("real-cache"))
        mp.setenv("CIFARKIT_CACHE", folder)
        yield folder


@pytest.fixture(scope="module")
def real(cache_home: str) -> Cifar10:
    """Loaded once (module fixtures are set up before the per-test tmp-dir fixture)."""
    return load_cifar10(_require_source())


def test_sizes_and_types(real: Cifar10) -> None:
    assert real.x_train.shape == (50_000, 32, 32, 3) and real.x_train.dtype == np.uint8
    assert real.x_test.shape == (10_000, 32, 32, 3) and real.x_test.dtype == np.uint8
    assert real.y_train.shape == (50_000,) and real.y_train.dtype == np.int64
    assert real.y_test.shape == (10_000,) and real.y_test.dtype == np.int64
    assert real.class_names == CLASS_NAMES
    assert np.bincount(real.y_train).tolist() == [5000] * 10
    assert np.bincount(real.y_test).tolist() == [1000] * 10
    assert len(real.source_hash) == 64 and real.cache_path is not None


def test_images_are_not_blank(real: Cifar10) -> None:
    means = real.x_train[::500].reshape(100, -1).mean(axis=1)
    assert 20 < means.mean() < 235 and means.std() > 5


def test_default_split(real: Cifar10) -> None:
    splits = make_splits(real)
    counts = splits.counts()
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (40_000, 10_000, 10_000)
    assert counts["train"].tolist() == [4000] * 10
    assert counts["val"].tolist() == [1000] * 10
    assert counts["test"].tolist() == [1000] * 10
    assert not set(splits.train_idx.tolist()) & set(splits.val_idx.tolist())


def test_warm_load_comes_from_the_cache_and_is_identical(
    real: Cifar10, cache_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cifarkit.data import sources

    monkeypatch.setenv("CIFARKIT_CACHE", cache_home)
    # A warm load reads the cached arrays: decoding the 60,000 images again would fail here.
    monkeypatch.setattr(sources, "decode_source", lambda *a, **k: pytest.fail("decoded again"))
    warm = load_cifar10(_require_source())
    assert warm.cache_path == real.cache_path and warm.source_hash == real.source_hash
    np.testing.assert_array_equal(warm.x_test, real.x_test)
