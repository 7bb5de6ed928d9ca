"""Format detection, loaders and their refusals (tiny fixtures, no network, no real data)."""

from __future__ import annotations

import io
import logging
import pickle
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data_fixtures import (
    assert_same_arrays,
    malicious_pickle,
    md5_of,
    png_bytes,
    tar_dir,
    tar_members,
    write_image_tree,
    write_official_archive,
    write_official_batches,
)
from PIL import Image

from cifarkit.core.errors import DataError
from cifarkit.data import CLASS_NAMES, load_cifar10, readers, resolve_source
from cifarkit.data.safe_pickle import load_pickle_batch

Tree = tuple[Path, dict[str, Any]]


# --------------------------------------------------------------------------- resolve_source


def test_resolve_source_prefers_config_then_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path, env_path = tmp_path / "a", tmp_path / "b"
    config_path.mkdir()
    env_path.mkdir()
    monkeypatch.setenv("CIFARKIT_DATA", str(env_path))
    assert resolve_source(str(config_path)) == str(config_path)
    assert resolve_source(None) == str(env_path)


def test_resolve_source_none_without_config_or_env(no_data_env: None) -> None:
    assert resolve_source(None) is None
    assert resolve_source("") is None


def test_resolve_source_makes_relative_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_data_env: None
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_source("data") == str(tmp_path / "data")


def test_resolve_source_missing_path_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.tgz"
    with pytest.raises(DataError, match="nope.tgz") as info:
        resolve_source(str(missing))
    assert "CIFARKIT_DATA" in str(info.value) and "data.source" in str(info.value)
    monkeypatch.setenv("CIFARKIT_DATA", str(missing))
    with pytest.raises(DataError, match="CIFARKIT_DATA"):
        resolve_source(None)


# --------------------------------------------------------------------------- image folders


def test_image_folder_dir(image_tree: Tree) -> None:
    root, expected = image_tree
    data = load_cifar10(root)
    assert_same_arrays(data, expected)
    assert data.source_format == "image-folder"
    assert data.source == f"{root} (image-folder directory)"
    assert len(data.source_hash) == 64


def test_image_folder_dir_one_level_up(tmp_path: Path) -> None:
    expected = write_image_tree(tmp_path / "outer" / "cifar10-png")
    assert_same_arrays(load_cifar10(tmp_path / "outer"), expected)


@pytest.mark.parametrize("name", ["images.tgz", "images.tar.gz", "images.tar"])
def test_image_folder_archive(image_tree: Tree, tmp_path: Path, name: str) -> None:
    root, expected = image_tree
    archive = tar_dir(root, tmp_path / name, arcname="cifar10-png")
    data = load_cifar10(archive)
    assert_same_arrays(data, expected)
    assert data.source_format == "image-folder-archive"
    assert data.source == f"{archive} (image-folder archive)"


def test_image_folder_archive_without_top_folder(image_tree: Tree, tmp_path: Path) -> None:
    root, expected = image_tree
    archive = tmp_path / "flat.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "train", arcname="train")
        tar.add(root / "test", arcname="test")
    assert_same_arrays(load_cifar10(archive), expected)


def test_jpeg_tree_decodes_close_to_originals(tmp_path: Path) -> None:
    expected = write_image_tree(
        tmp_path / "jpeg",
        fmt="jpg",
        classes=tuple(CLASS_NAMES),
        train_per_class=3,
        test_per_class=1,
    )
    data = load_cifar10(tar_dir(tmp_path / "jpeg", tmp_path / "jpeg.tgz"))
    assert data.class_names == CLASS_NAMES
    assert data.x_train.shape == (30, 32, 32, 3) and data.x_test.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(data.y_train, expected["y_train"])
    diff = np.abs(data.x_train.astype(int) - expected["x_train"].astype(int))
    assert diff.mean() < 3


def test_non_image_files_are_skipped_with_a_warning(
    image_tree: Tree, caplog: pytest.LogCaptureFixture
) -> None:
    root, expected = image_tree
    (root / "README.txt").write_text("about")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0")
    (root / "train" / "cat" / "notes.csv").write_text("a,b")
    (root / "test" / ".hidden").mkdir()
    with caplog.at_level(logging.WARNING, logger="cifarkit.data"):
        data = load_cifar10(root)
    assert_same_arrays(data, expected)
    assert "skipped 3 non-image" in caplog.text


def test_missing_split_folder(image_tree: Tree) -> None:
    root, _ = image_tree
    shutil.rmtree(root / "test")
    with pytest.raises(
        DataError, match=r"missing split folder test/ in .*images.*found folders: train"
    ):
        load_cifar10(root)


def test_no_split_folders_at_all(tmp_path: Path) -> None:
    (tmp_path / "stuff" / "a").mkdir(parents=True)
    (tmp_path / "stuff" / "b").mkdir(parents=True)
    with pytest.raises(DataError, match="no train/ and test/ split folders found"):
        load_cifar10(tmp_path / "stuff")


def test_empty_class_folder(image_tree: Tree) -> None:
    root, _ = image_tree
    (root / "train" / "zebra").mkdir()
    with pytest.raises(DataError, match=r"empty class folder .*train/zebra"):
        load_cifar10(root)


def test_empty_class_folder_in_archive(image_tree: Tree, tmp_path: Path) -> None:
    root, _ = image_tree
    (root / "test" / "zebra").mkdir()
    with pytest.raises(DataError, match=r"empty class folder .*images.tgz:images/test/zebra"):
        load_cifar10(tar_dir(root, tmp_path / "images.tgz"))


def test_class_in_train_but_not_in_test(image_tree: Tree) -> None:
    root, _ = image_tree
    shutil.rmtree(root / "test" / "frog")
    with pytest.raises(DataError, match=r"different classes \(only in train: \['frog'\]"):
        load_cifar10(root)


def test_unequal_counts_within_a_split(image_tree: Tree) -> None:
    root, _ = image_tree
    (root / "train" / "dog" / "000.png").unlink()
    with pytest.raises(
        DataError, match=r"unequal per-class counts in .*train: cat=4, dog=3, frog=4"
    ):
        load_cifar10(root)


def test_image_that_is_not_32x32(image_tree: Tree) -> None:
    root, _ = image_tree
    (root / "train" / "cat" / "001.png").write_bytes(png_bytes((40, 30)))
    with pytest.raises(DataError, match=r"train/cat/001.png: image is 40x30, expected 32x32"):
        load_cifar10(root)


@pytest.mark.parametrize("payload", [b"this is not an image", png_bytes()[:60]])
def test_undecodable_image(image_tree: Tree, payload: bytes) -> None:
    root, _ = image_tree
    (root / "test" / "dog" / "001.png").write_bytes(payload)
    with pytest.raises(DataError, match=r"test/dog/001.png: cannot decode image"):
        load_cifar10(root)


def test_grayscale_and_rgba_images_become_rgb(image_tree: Tree) -> None:
    root, _ = image_tree
    Image.new("L", (32, 32), 77).save(root / "train" / "cat" / "000.png")
    Image.new("RGBA", (32, 32), (1, 2, 3, 4)).save(root / "train" / "cat" / "001.png")
    data = load_cifar10(root)
    assert (data.x_train[0] == 77).all()
    assert (data.x_train[1] == [1, 2, 3]).all()


# --------------------------------------------------------------------------- unsafe archives


def _symlink(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize("evil_name", ["cifar/../../evil", "cifar/train/../../../evil"])
def test_archive_with_parent_path_member_is_refused(tmp_path: Path, evil_name: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    archive = tar_members(
        work / "evil.tgz", [("cifar/train/cat/000.png", png_bytes()), (evil_name, b"pwned")]
    )
    with pytest.raises(
        DataError, match=r"unsafe path in archive .*evil.tgz.*'cifar/(train/)?\.\./"
    ):
        load_cifar10(archive)
    assert not (tmp_path / "evil").exists() and not (work.parent.parent / "evil").exists()


def test_archive_with_absolute_member_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "evil"
    archive = tar_members(
        tmp_path / "abs.tgz", [("cifar/train/cat/000.png", png_bytes()), (str(outside), b"x")]
    )
    assert str(outside).startswith("/")
    with pytest.raises(DataError, match=rf"unsafe path in archive .*abs.tgz.*{outside}"):
        load_cifar10(archive)
    assert not outside.exists() and not outside.parent.exists()


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_symlink("cifar/train/cat/001.png", "/etc/passwd"), "unsafe link"),
        (
            _symlink("cifar/train/cat/001.png", "cifar/train/cat/000.png", tarfile.LNKTYPE),
            "unsafe link",
        ),
        (_symlink("cifar/train/cat/dev", "", tarfile.CHRTYPE), "unsafe special file"),
        (_symlink("cifar/train/cat/fifo", "", tarfile.FIFOTYPE), "unsafe special file"),
    ],
)
def test_archive_with_link_or_device_is_refused(
    tmp_path: Path, member: tarfile.TarInfo, message: str
) -> None:
    archive = tar_members(
        tmp_path / "links.tgz", [("cifar/train/cat/000.png", png_bytes()), member]
    )
    with pytest.raises(
        DataError, match=rf"{message} in archive .*links.tgz: member '{member.name}'"
    ):
        load_cifar10(archive)


def test_truncated_archive(image_tree: Tree, tmp_path: Path) -> None:
    root, _ = image_tree
    archive = tar_dir(root, tmp_path / "images.tgz")
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(
        DataError, match=r"truncated or corrupt archive .*images.tgz: .*re-download or re-create it"
    ):
        load_cifar10(archive)


def test_garbage_named_like_an_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tgz"
    bogus.write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    with pytest.raises(DataError, match="truncated or corrupt archive"):
        load_cifar10(bogus)


def test_unsupported_file(tmp_path: Path) -> None:
    other = tmp_path / "data.csv"
    other.write_text("1,2,3\n")
    with pytest.raises(DataError, match=r"unsupported data source .*data.csv"):
        load_cifar10(other)


# --------------------------------------------------------------------------- official format


@pytest.mark.parametrize("point_at", ["batches", "parent"])
def test_official_dir(official_dir: Tree, point_at: str) -> None:
    folder, expected = official_dir
    data = load_cifar10(folder if point_at == "batches" else folder.parent)
    assert_same_arrays(data, expected)
    assert data.class_names == CLASS_NAMES
    assert data.source_format == "official-dir"


def test_official_archive_with_matching_md5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    expected = write_official_archive(archive)
    monkeypatch.setattr(readers, "OFFICIAL_MD5", md5_of(archive))
    data = load_cifar10(archive)
    assert_same_arrays(data, expected)
    assert data.source_format == "official-archive"
    assert data.source == f"{archive} (official archive)"


def test_official_archive_md5_mismatch(tmp_path: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_official_archive(archive)
    actual = md5_of(archive)
    with pytest.raises(DataError) as info:
        load_cifar10(archive)
    message = str(info.value)
    assert str(archive) in message and actual in message and readers.OFFICIAL_MD5 in message
    assert "re-download" in message


def test_official_dir_missing_batch(official_dir: Tree) -> None:
    folder, _ = official_dir
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3"):
        load_cifar10(folder)


def test_malicious_pickle_is_refused_and_not_run(official_dir: Tree, tmp_path: Path) -> None:
    folder, _ = official_dir
    marker = tmp_path / "pwned.txt"
    (folder / "data_batch_2").write_bytes(malicious_pickle(marker))
    with pytest.raises(
        DataError,
        match=r"refusing to unpickle posix.system from .*data_batch_2: CIFAR batches contain only arrays",
    ):
        load_cifar10(folder)
    assert not marker.exists()


def test_malicious_pickle_in_archive_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned.txt"
    archive = tar_members(
        tmp_path / "cifar-10-python.tar.gz",
        [("cifar-10-batches-py/data_batch_1", malicious_pickle(marker))],
    )
    monkeypatch.setattr(readers, "OFFICIAL_MD5", md5_of(archive))
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_cifar10(archive)
    assert not marker.exists()


def test_batch_with_str_keys_and_protocol_4(tmp_path: Path) -> None:
    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    blob = pickle.dumps({"data": images, "labels": [3, 9]}, protocol=4)
    x, y = load_pickle_batch(io.BytesIO(blob), "batch")
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [3, 9] and y.dtype == np.int64
    np.testing.assert_array_equal(x[1, :, :, 0].ravel(), images[1, :1024])


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "must be a uint8 array"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "must be a uint8 array"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "outside 0..9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "expected 2 integer labels"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "no 'labels' entry"),
        ([1, 2, 3], "expected a pickled dict"),
    ],
)
def test_bad_batches_are_refused(batch: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_pickle_batch(io.BytesIO(pickle.dumps(batch, protocol=2)), "batch")


def test_corrupt_pickle(official_dir: Tree) -> None:
    folder, _ = official_dir
    blob = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"test_batch: not a readable CIFAR pickle"):
        load_cifar10(folder)


def test_official_fixture_has_the_canonical_layout(tmp_path: Path) -> None:
    expected = write_official_batches(tmp_path / "b", per_batch=10)
    raw = pickle.loads((tmp_path / "b" / "data_batch_1").read_bytes())
    assert raw[b"data"].shape == (10, 3072) and raw[b"data"].dtype == np.uint8
    # the first 1024 bytes of a row are the red plane, row-major
    np.testing.assert_array_equal(raw[b"data"][0, :32], expected["x_train"][0, 0, :, 0])


# --------------------------------------------------------------------------- keras download


def test_keras_download_is_used_without_a_source(
    monkeypatch: pytest.MonkeyPatch, no_data_env: None
) -> None:
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    y_train = (np.arange(20) % 10).astype(np.uint8).reshape(-1, 1)
    y_test = (np.arange(10) % 10).astype(np.uint8).reshape(-1, 1)
    monkeypatch.setattr(readers, "_keras_load_data", lambda: ((x_train, y_train), (x_test, y_test)))
    data = load_cifar10()
    assert data.source_format == "keras-download"
    assert data.source == "keras.datasets.cifar10 (download)"
    assert data.y_train.shape == (20,) and data.y_train.dtype == np.int64
    assert data.class_names == CLASS_NAMES and data.cache_path is None
    assert data.source_hash == load_cifar10().source_hash


def test_failed_download_says_how_to_fix(no_data_env: None) -> None:
    with pytest.raises(
        DataError,
        match=r"no data source is configured and the CIFAR-10 download failed.*CIFARKIT_DATA",
    ):
        load_cifar10()


# --------------------------------------------------------------------------- almost CIFAR-10


def _cifar_tree(root: Path, classes: tuple[str, ...]) -> Path:
    write_image_tree(root, classes=classes, train_per_class=2, test_per_class=1)
    return root


@pytest.mark.parametrize(
    "classes, message",
    [
        (
            tuple(c for c in CLASS_NAMES if c != "truck"),
            r"looks like CIFAR-10 but its train/ and test/ have 9 classes: missing class folder truck/; add or "
            r"rename the folders, or set data.classes",
        ),
        ((*CLASS_NAMES, "unicorn"), r"have 11 classes: extra class folder unicorn/;"),
        (
            tuple("trucks" if c == "truck" else c for c in CLASS_NAMES),
            r"10 classes: missing class folder truck/; extra class folder trucks/ \(a misspelt truck/\?\)",
        ),
    ],
)
def test_a_class_folder_missing_or_extra_is_named(
    tmp_path: Path, classes: tuple[str, ...], message: str
) -> None:
    from cifarkit.data import make_splits

    data = load_cifar10(_cifar_tree(tmp_path / "near", classes))
    with pytest.raises(DataError, match=message):
        make_splits(data, val_per_class=1)
    chosen = [c for c in classes if c in CLASS_NAMES][:9]
    assert make_splits(data, val_per_class=1, classes=chosen).class_names == tuple(
        chosen
    )  # data.classes set


def test_a_data_set_of_its_own_is_not_a_near_miss(image_tree: Tree) -> None:
    from cifarkit.data import make_splits

    root, _ = image_tree  # cat, dog, frog: 3 of CIFAR-10's names
    assert make_splits(load_cifar10(root), val_per_class=1).class_names == ("cat", "dog", "frog")


def test_an_empty_image_file_is_named_with_its_reason(image_tree: Tree) -> None:
    root, _ = image_tree
    (root / "train" / "dog" / "002.png").write_bytes(b"")
    with pytest.raises(
        DataError,
        match=r"train/dog/002.png is empty \(0 bytes\); replace it with the image or "
        r"remove it",
    ):
        load_cifar10(root)


def test_an_extra_empty_image_file_is_named_not_counted(image_tree: Tree, tmp_path: Path) -> None:
    root, _ = image_tree
    (root / "train" / "dog" / "004.png").write_bytes(b"")  # dog would count 5 images, the others 4
    with pytest.raises(DataError, match=r"^\S*train/dog/004.png is empty \(0 bytes\);") as info:
        load_cifar10(root)
    assert "unequal" not in str(info.value)
    with pytest.raises(
        DataError, match=r"images.tgz:images/train/dog/004.png is empty \(0 bytes\);"
    ):
        load_cifar10(tar_dir(root, tmp_path / "images.tgz"))


def test_a_stray_class_folder_in_one_split_is_named(image_tree: Tree) -> None:
    root, _ = image_tree
    stray = root / "train" / "unicorn"
    stray.mkdir()
    for name in ("000.png", "001.png"):  # fewer images than the real classes hold
        shutil.copy(root / "train" / "cat" / name, stray / name)
    with pytest.raises(
        DataError,
        match=r"^unexpected class folder \S*train/unicorn \(test/ has no unicorn/\); "
        r"expected one of cat, dog, frog \(the classes train/ and test/ share\); "
        r"remove it, or add test/unicorn/ if it is a class$",
    ):
        load_cifar10(root)


def test_a_stray_folder_beside_the_ten_cifar_classes_is_named_not_counted(tmp_path: Path) -> None:
    root = tmp_path / "near"
    write_image_tree(root, classes=(*CLASS_NAMES, "unicorn"), train_per_class=2, test_per_class=1)
    (root / "train" / "unicorn" / "000.png").unlink()
    with pytest.raises(
        DataError,
        match=r"^unexpected class folder \S*train/unicorn \(beside the ten CIFAR-10 "
        r"classes\); expected one of airplane, automobile, .*, truck",
    ):
        load_cifar10(root)


def test_a_non_image_named_like_one_says_so(image_tree: Tree) -> None:
    root, _ = image_tree
    (root / "test" / "cat" / "001.png").write_bytes(b"GIF89a not a png")
    with pytest.raises(
        DataError, match=r"test/cat/001.png: cannot decode image: not a PNG or JPEG file"
    ):
        load_cifar10(root)


def test_a_short_class_names_the_files_it_skipped(image_tree: Tree) -> None:
    root, _ = image_tree
    png = root / "train" / "dog" / "000.png"
    png.rename(png.with_suffix(".webp"))
    with pytest.raises(
        DataError,
        match=r"unequal per-class counts in .*train: cat=4, dog=3, frog=4 \(dog has 1 "
        r"fewer and skipped .*train/dog/000.webp \(not .png/.jpg/.jpeg\)\)",
    ):
        load_cifar10(root)
