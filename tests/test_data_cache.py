"""The decoded-array cache and the source-hash index."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data_fixtures import assert_same_arrays, png_bytes, tar_dir

from cifarkit.core.errors import DataError
from cifarkit.core.paths import cache_dir
from cifarkit.data import cache, load_cifar10, readers, sources

Tree = tuple[Path, dict[str, Any]]


def forbid(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """Make ``module.name`` fail the test if it is called."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} was called")

    monkeypatch.setattr(module, name, fail)


def test_cache_lives_in_the_tmp_cache_dir(image_tree: Tree) -> None:
    root, _ = image_tree
    data = load_cifar10(root)
    assert data.cache_path == cache_dir() / "data" / f"{data.source_hash}.npz"
    assert data.cache_path.is_file()
    assert str(cache_dir()).startswith(os.environ["CIFARKIT_CACHE"])


def test_second_load_uses_the_cache(image_tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    root, expected = image_tree
    first = load_cifar10(root)
    forbid(monkeypatch, readers, "decode_image")
    forbid(monkeypatch, cache, "content_hash")  # the index supplies the hash
    second = load_cifar10(root)
    assert_same_arrays(second, expected)
    assert second.source_hash == first.source_hash
    assert second.source_format == "image-folder" and second.cache_path == first.cache_path


def test_archive_second_load_reads_no_member(
    image_tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, expected = image_tree
    archive = tar_dir(root, tmp_path / "images.tgz")
    load_cifar10(archive)
    forbid(monkeypatch, readers, "_read_member")
    forbid(monkeypatch, cache, "hash_file")
    data = load_cifar10(archive)
    assert_same_arrays(data, expected)
    assert data.source_format == "image-folder-archive"


def test_use_cache_false_neither_reads_nor_writes(image_tree: Tree) -> None:
    root, expected = image_tree
    data = load_cifar10(root, use_cache=False)
    assert_same_arrays(data, expected)
    assert data.cache_path is None
    assert not (cache_dir() / "data").exists()
    assert data.source_hash == load_cifar10(root).source_hash


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong-shape", "bad-labels"])
def test_damaged_cache_file_is_rebuilt(
    image_tree: Tree, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    root, expected = image_tree
    path = load_cifar10(root).cache_path
    assert path is not None
    if damage == "garbage":
        path.write_bytes(b"not a zip")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    else:
        with np.load(path) as npz:
            arrays = dict(npz)
        if damage == "wrong-shape":
            arrays["x_train"] = arrays["x_train"][:, :16]
        else:
            arrays["y_test"] = arrays["y_test"] + 7
        np.savez(path, **arrays)
    with caplog.at_level(logging.WARNING, logger="cifarkit.data.cache"):
        data = load_cifar10(root)
    assert "is damaged" in caplog.text and "rebuilding" in caplog.text
    assert_same_arrays(data, expected)
    assert cache.read_arrays(path) is not None  # rewritten, valid


def test_corrupt_index_is_ignored_and_rewritten(
    image_tree: Tree, caplog: pytest.LogCaptureFixture
) -> None:
    root, expected = image_tree
    load_cifar10(root)
    index = cache_dir() / "data" / "index.json"
    index.write_text("{ not json")
    with caplog.at_level(logging.WARNING, logger="cifarkit.data.cache"):
        assert_same_arrays(load_cifar10(root), expected)
    assert "ignoring unreadable data cache index" in caplog.text
    entries = json.loads(index.read_text())["entries"]
    assert [e["path"] for e in entries.values()] == [str(root)]


def test_changed_file_content_changes_the_source_hash(
    image_tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = image_tree
    before = load_cifar10(root)
    target = root / "train" / "dog" / "002.png"
    stat = target.stat()
    target.write_bytes(png_bytes())
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    after = load_cifar10(root)
    assert after.source_hash != before.source_hash
    assert after.cache_path != before.cache_path
    assert (after.x_train[6] == [10, 20, 30]).all()  # dog is class 1, file 002 -> row 4 + 2


def test_changed_archive_changes_the_source_hash(image_tree: Tree, tmp_path: Path) -> None:
    root, _ = image_tree
    archive = tar_dir(root, tmp_path / "images.tgz")
    before = load_cifar10(archive).source_hash
    (root / "train" / "cat" / "000.png").write_bytes(png_bytes())
    tar_dir(root, archive)
    assert load_cifar10(archive).source_hash != before


def test_directory_hash_covers_names_and_bytes_not_times(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.bin").write_bytes(b"one")
    (folder / "b.bin").write_bytes(b"two")
    first = cache.content_hash(folder)
    os.utime(folder / "b.bin", ns=(1, 1))
    assert cache.content_hash(folder) == first
    (folder / "b.bin").rename(folder / "c.bin")
    assert cache.content_hash(folder) != first


def test_file_hash_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    import hashlib

    blob = os.urandom(3 * cache.CHUNK + 17)
    (tmp_path / "f").write_bytes(blob)
    assert cache.content_hash(tmp_path / "f") == hashlib.sha256(blob).hexdigest()


def test_failed_cache_write_leaves_no_file(
    image_tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = image_tree

    def killed(path: Any, **arrays: Any) -> None:
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt  # like a kill in the middle of the write

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        load_cifar10(root)
    assert [
        p.name for p in (cache_dir() / "data").iterdir() if p.suffix == ".npz" or ".tmp" in p.name
    ] == []


def test_unwritable_cache_still_loads(
    image_tree: Tree, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root, expected = image_tree
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CIFARKIT_CACHE", str(blocker))
    data = load_cifar10(root)
    assert_same_arrays(data, expected)
    assert data.cache_path is None


def test_unreadable_source_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "x.tgz"
    archive.write_bytes(b"")

    def denied(path: Path) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache, "hash_file", denied)
    monkeypatch.setattr(sources, "detect_format", lambda path: "image-folder-archive")
    with pytest.raises(DataError, match=r"cannot read data source .*x.tgz"):
        load_cifar10(archive)
