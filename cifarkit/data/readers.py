"""CIFAR-10 on disk: the formats cifarkit reads, how each is detected, and its reader.

Supported sources (auto-detected from the path):

* ``official-archive``: the official ``cifar-10-python.tar.gz`` (MD5-checked);
* ``official-dir``: its extracted ``cifar-10-batches-py/`` folder (or a folder holding it);
* ``image-folder``: a tree ``train/<class>/*.png|jpg`` and ``test/<class>/...``, directly
  or inside one subfolder;
* ``image-folder-archive``: a ``.tgz``/``.tar.gz``/``.tar`` of such a tree;
* ``keras-download``: no source configured, ``keras.datasets.cifar10.load_data()``.

Archives are never extracted: members are iterated, checked (no absolute or ``..``
paths, no links or devices) and regular files are read with ``extractfile()``. Pickles
go through :mod:`cifarkit.data.safe_pickle`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import lzma
import os
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from cifarkit.core.errors import DataError
from cifarkit.core.hashing import CHUNK
from cifarkit.data import cache
from cifarkit.data.safe_pickle import load_pickle_batch, load_pickle_meta

log = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
OFFICIAL_FILES = (*TRAIN_BATCHES, TEST_BATCH, META_FILE)
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_IMAGE_BYTES = 1 << 20  # a 32x32 image is a few KB; refuse to buffer anything huge
DETECT_MEMBERS = 1000
FORMAT_LABELS = {
    "official-archive": "official archive",
    "official-dir": "official batches directory",
    "image-folder": "image-folder directory",
    "image-folder-archive": "image-folder archive",
    "keras-download": "download",
}
SUPPORTED = (
    "cifar-10-python.tar.gz, its cifar-10-batches-py/ folder, an image-folder tree "
    "(train/<class>/*.png|jpg and test/<class>/...) or a .tgz/.tar of one"
)
_DRIVE = re.compile(r"^[A-Za-z]:")
_ARCHIVE_ERRORS = (
    tarfile.TarError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    lzma.LZMAError,
    OSError,
)


def arrays_of(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: tuple[str, ...],
    source_format: str,
) -> dict[str, Any]:
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "class_names": tuple(class_names),
        "source_format": source_format,
    }


# --------------------------------------------------------------------------- detecting


def detect_format(path: Path) -> str:
    """Which of the supported formats ``path`` holds (cheap: peeks at most a few members)."""
    if path.is_dir():
        return "official-dir" if _official_dir(path) is not None else "image-folder"
    if not path.is_file():
        raise DataError(
            f"data source {path} is neither a file nor a folder; point it at {SUPPORTED}"
        )
    if not (path.name.lower().endswith(ARCHIVE_SUFFIXES) or _is_tar(path)):
        raise DataError(f"unsupported data source {path}; expected {SUPPORTED}")
    return "official-archive" if _archive_is_official(path) else "image-folder-archive"


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except _ARCHIVE_ERRORS:
        return False


def _official_dir(path: Path) -> Path | None:
    if any((path / name).is_file() for name in OFFICIAL_FILES):
        return path
    if (path / OFFICIAL_DIR).is_dir():
        return path / OFFICIAL_DIR
    return None


def _archive_is_official(path: Path) -> bool:
    with _open_archive(path) as tar:
        for count, member in enumerate(tar):
            parts = _member_parts(member, path)
            if OFFICIAL_DIR in parts or (parts and parts[-1] in OFFICIAL_FILES):
                return True
            if set(parts) & set(SPLITS) or count >= DETECT_MEMBERS:
                return False
    return False


# --------------------------------------------------------------------------- archives


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[tarfile.TarFile]:
    """Open a tar for reading; damage anywhere while it is open becomes one DataError."""
    try:
        with tarfile.open(path, "r:*") as tar:
            yield tar
    except _ARCHIVE_ERRORS as exc:
        detail = " ".join(str(exc).split())  # tarfile's ReadError lists one line per method
        raise DataError(
            f"truncated or corrupt archive {path}: {type(exc).__name__}: {detail}; re-download or re-create it"
        ) from None


def _member_parts(member: tarfile.TarInfo, archive: Path) -> tuple[str, ...]:
    """The path components of a safe member; unsafe names and special members raise."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts:
        raise DataError(
            f"unsafe path in archive {archive}: member {name!r} is absolute or contains '..'; "
            "refusing to read the archive"
        )
    if member.issym() or member.islnk():
        raise DataError(
            f"unsafe link in archive {archive}: member {name!r} links to {member.linkname!r}; "
            "a data archive must hold only regular files and folders"
        )
    if not (member.isreg() or member.isdir()):
        raise DataError(
            f"unsafe special file in archive {archive}: member {name!r} is a device, FIFO or other "
            "special member; a data archive must hold only regular files and folders"
        )
    return tuple(p for p in parts if p not in ("", "."))


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:  # pragma: no cover - _member_parts admits only regular files here
        raise DataError(f"cannot read member {member.name!r}")
    with handle:
        return handle.read()


# --------------------------------------------------------------------------- official


def _check_md5(path: Path) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != OFFICIAL_MD5:
        raise DataError(
            f"{path}: MD5 {actual} does not match the official cifar-10-python.tar.gz MD5 "
            f"{OFFICIAL_MD5}; the file is corrupt or altered, re-download it from {OFFICIAL_URL}"
        )


def _assemble_official(parsed: dict[str, Any], label: str) -> dict[str, Any]:
    missing = [name for name in OFFICIAL_FILES if name not in parsed]
    if missing:
        raise DataError(
            f"{label}: missing {', '.join(missing)}; expected {OFFICIAL_DIR}/ with "
            f"{', '.join(OFFICIAL_FILES)}; re-download {OFFICIAL_URL}"
        )
    class_names = parsed[META_FILE]
    x_train = np.concatenate([parsed[name][0] for name in TRAIN_BATCHES])
    y_train = np.concatenate([parsed[name][1] for name in TRAIN_BATCHES])
    x_test, y_test = parsed[TEST_BATCH]
    for split, y in (("train", y_train), ("test", y_test)):
        if y.size and y.max() >= len(class_names):
            raise DataError(
                f"{label}: {split} label {y.max()} has no name in {META_FILE} "
                f"({len(class_names)} classes); re-download the data"
            )
    return arrays_of(x_train, y_train, x_test, y_test, class_names, "official-archive")


def _parse_official(fileobj: Any, filename: str, display: str) -> Any:
    if filename == META_FILE:
        return load_pickle_meta(fileobj, display)
    return load_pickle_batch(fileobj, display, num_classes=None)


def read_official_archive(path: Path) -> dict[str, Any]:
    """Decode ``cifar-10-python.tar.gz`` after checking its MD5, without extracting it."""
    _check_md5(path)
    parsed: dict[str, Any] = {}
    with _open_archive(path) as tar:
        for member in tar:
            parts = _member_parts(member, path)
            if member.isreg() and parts and parts[-1] in OFFICIAL_FILES:
                if parts[-1] in parsed:
                    raise DataError(f"{path}: holds {parts[-1]} twice; re-download {OFFICIAL_URL}")
                display = f"{path}:{member.name}"
                parsed[parts[-1]] = _parse_official(
                    io.BytesIO(_read_member(tar, member)), parts[-1], display
                )
    return _assemble_official(parsed, str(path))


def read_official_dir(path: Path) -> dict[str, Any]:
    """Decode an extracted ``cifar-10-batches-py/`` folder (or a folder holding it)."""
    folder = _official_dir(path) or path
    parsed: dict[str, Any] = {}
    for name in OFFICIAL_FILES:
        file = folder / name
        if file.is_file():
            with open(file, "rb") as fh:
                parsed[name] = _parse_official(fh, name, str(file))
    arrays = _assemble_official(parsed, str(folder))
    arrays["source_format"] = "official-dir"
    return arrays


# --------------------------------------------------------------------------- image folders


@dataclass
class _Tree:
    """A file tree read from a folder or an archive, addressed by path components."""

    label: str
    in_archive: bool
    files: dict[tuple[str, ...], bytes | Path | None] = field(default_factory=dict)
    dirs: set[tuple[str, ...]] = field(default_factory=set)

    def name(self, parts: tuple[str, ...]) -> str:
        """How to show ``parts`` in a message."""
        if not parts:
            return self.label
        return (
            f"{self.label}:{'/'.join(parts)}" if self.in_archive else str(Path(self.label, *parts))
        )

    def children(self) -> tuple[dict[tuple[str, ...], set[str]], dict[tuple[str, ...], list[str]]]:
        """Sub-folder names and file names of every folder."""
        sub: dict[tuple[str, ...], set[str]] = {}
        files: dict[tuple[str, ...], list[str]] = {}
        for parts in self.dirs:
            sub.setdefault(parts[:-1], set()).add(parts[-1])
        for parts in self.files:
            files.setdefault(parts[:-1], []).append(parts[-1])
        return sub, files


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _is_image(name: str) -> bool:
    return not _hidden(name) and name.lower().endswith(IMAGE_SUFFIXES)


def _tree_from_dir(root: Path) -> _Tree:
    tree = _Tree(label=str(root), in_archive=False)
    for folder, subdirs, names in os.walk(root):
        rel = Path(folder).relative_to(root).parts
        tree.dirs.update(rel + (d,) for d in subdirs)
        tree.files.update({rel + (n,): Path(folder, n) for n in names})
    return tree


def _tree_from_archive(path: Path) -> _Tree:
    tree = _Tree(label=str(path), in_archive=True)
    with (
        _open_archive(path) as tar,
        tqdm(desc="reading archive", unit=" files", disable=None) as bar,
    ):
        for count, member in enumerate(tar, start=1):
            parts = _member_parts(member, path)
            if not parts:
                continue
            _add_parents(tree.dirs, parts)
            if member.isdir():
                tree.dirs.add(parts)
            elif _is_image(parts[-1]):
                if member.size > MAX_IMAGE_BYTES:
                    raise DataError(
                        f"{tree.name(parts)}: {member.size} bytes is far too large for a 32x32 image; "
                        "remove it or re-create the archive"
                    )
                tree.files[parts] = _read_member(tar, member)
            else:
                tree.files[parts] = None  # never decoded; only counted as skipped
            if count % 1000 == 0:
                bar.update(1000)
    return tree


def _add_parents(dirs: set[tuple[str, ...]], parts: tuple[str, ...]) -> None:
    """Record the folders above ``parts`` (archives need not list them as members)."""
    parent = parts[:-1]
    while parent and parent not in dirs:
        dirs.add(parent)
        parent = parent[:-1]


def _find_root(tree: _Tree, sub: dict[tuple[str, ...], set[str]]) -> tuple[str, ...]:
    top = {d for d in sub.get((), set()) if not _hidden(d)}
    if top & set(SPLITS):
        return ()
    if len(top) == 1:
        only = next(iter(top))
        if sub.get((only,), set()) & set(SPLITS):
            return (only,)
    raise DataError(
        f"{tree.label}: no train/ and test/ split folders found (top-level folders: "
        f"{', '.join(sorted(top)) or 'none'}); expected {SUPPORTED}"
    )


def _split_classes(
    tree: _Tree,
    split_parts: tuple[str, ...],
    sub: dict[tuple[str, ...], set[str]],
    files: dict[tuple[str, ...], list[str]],
) -> dict[str, list[str]]:
    """Class name -> sorted image file names of one split folder; no class folder and no
    image file in it empty."""
    classes = sorted(d for d in sub.get(split_parts, set()) if not _hidden(d))
    if not classes:
        raise DataError(
            f"{tree.name(split_parts)}: no class folders found; expected {split_parts[-1]}/<class>/<image>"
        )
    found: dict[str, list[str]] = {}
    for cls in classes:
        names = files.get(split_parts + (cls,), [])
        images = sorted(n for n in names if _is_image(n))
        if not images:
            raise DataError(
                f"empty class folder {tree.name(split_parts + (cls,))}: no .png/.jpg/.jpeg images "
                f"(found {len(names)} other file(s)); add images or remove the folder"
            )
        for name in images:
            # Checked before the counts: an empty file would count as an image and show up
            # only as one class holding more images than the others.
            if _is_empty(tree.files[split_parts + (cls, name)]):
                raise DataError(_empty_message(tree.name(split_parts + (cls, name))))
        found[cls] = images
    return found


def _check_same_classes(
    tree: _Tree, root: tuple[str, ...], per_split: dict[str, dict[str, list[str]]]
) -> None:
    """Both splits hold the same class folders; a stray one is named as such."""
    train, test = set(per_split["train"]), set(per_split["test"])
    if train == test:
        return
    shared = sorted(train & test)
    # A folder in one split only whose name is no CIFAR-10 class (train/unicorn/) is a stray
    # folder; a CIFAR-10 name is more likely a folder missing from the other split.
    stray = [
        root + (split, cls)
        for split, other in (("train", test), ("test", train))
        for cls in sorted(set(per_split[split]) - other)
        if cls not in CLASS_NAMES
    ]
    if stray and shared:
        if len(stray) == 1:
            split, cls = stray[0][-2:]
            other = "test" if split == "train" else "train"
            where, fix = (
                f"{other}/ has no {cls}/",
                f"remove it, or add {other}/{cls}/ if it is a class",
            )
        else:
            where, fix = (
                "each in one split only",
                "remove them, or give each a folder in both train/ and test/",
            )
        raise DataError(
            _unexpected_message(
                tree, stray, where, shared, "the classes train/ and test/ share", fix
            )
        )
    raise DataError(
        f"{tree.name(root)}: train/ and test/ hold different classes (only in train: "
        f"{sorted(train - test) or 'none'}; only in test: "
        f"{sorted(test - train) or 'none'}); both need the same class folders"
    )


def _unexpected_message(
    tree: _Tree,
    folders: list[tuple[str, ...]],
    where: str,
    expected: list[str],
    which: str,
    fix: str,
) -> str:
    return (
        f"unexpected class folder{'s' if len(folders) > 1 else ''} "
        f"{', '.join(tree.name(parts) for parts in folders)} ({where}); expected one of "
        f"{', '.join(expected)} ({which}); {fix}"
    )


def _check_counts(
    tree: _Tree,
    split_parts: tuple[str, ...],
    found: dict[str, list[str]],
    files: dict[tuple[str, ...], list[str]],
) -> None:
    counts = {cls: len(images) for cls, images in found.items()}
    if len(set(counts.values())) <= 1:
        return
    extra = sorted(set(found) - set(CLASS_NAMES))
    if extra and set(CLASS_NAMES) <= set(found):
        # CIFAR-10's ten folders and a stray one beside them: the stray folder is the problem,
        # not the count it happens to hold.
        raise DataError(
            _unexpected_message(
                tree,
                [split_parts + (cls,) for cls in extra],
                "beside the ten CIFAR-10 classes",
                list(CLASS_NAMES),
                "CIFAR-10's classes",
                "remove it" if len(extra) == 1 else "remove them",
            )
        )
    listing = ", ".join(f"{cls}={n}" for cls, n in counts.items())
    raise DataError(
        f"unequal per-class counts in {tree.name(split_parts)}: {listing}"
        f"{_why_short(tree, split_parts, counts, files)}; every class of a split needs the same "
        "number of images"
    )


def _why_short(
    tree: _Tree,
    split_parts: tuple[str, ...],
    counts: dict[str, int],
    files: dict[tuple[str, ...], list[str]],
) -> str:
    """The files a short class skipped (a .webp, a .png.part...) are the likely reason it is
    short: name them, so the fix is one file rather than a hunt through a count."""
    most = max(counts.values())
    reasons = []
    for cls, n in counts.items():
        if n == most:
            continue
        skipped = sorted(
            name
            for name in files.get(split_parts + (cls,), [])
            if not _hidden(name) and not _is_image(name)
        )
        shown = ", ".join(tree.name(split_parts + (cls, name)) for name in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        reasons.append(
            f"{cls} has {most - n} fewer"
            + (f" and skipped {shown}{more} (not .png/.jpg/.jpeg)" if skipped else "")
        )
    return f" ({'; '.join(reasons)})"


def _layout(tree: _Tree) -> tuple[tuple[str, ...], dict[str, list[tuple[int, tuple[str, ...]]]]]:
    """Class names and, per split, the ordered ``(label, file parts)`` to decode."""
    sub, files = tree.children()
    root = _find_root(tree, sub)
    present = sub.get(root, set())
    for split in SPLITS:
        if split not in present:
            raise DataError(
                f"missing split folder {split}/ in {tree.name(root)} (found folders: "
                f"{', '.join(sorted(present)) or 'none'}); it needs both train/ and test/"
            )
    per_split = {split: _split_classes(tree, root + (split,), sub, files) for split in SPLITS}
    _check_same_classes(tree, root, per_split)
    for split in SPLITS:
        _check_counts(tree, root + (split,), per_split[split], files)
    class_names = tuple(sorted(per_split["train"]))
    items = {
        split: [
            (label, root + (split, cls, name))
            for label, cls in enumerate(class_names)
            for name in per_split[split][cls]
        ]
        for split in SPLITS
    }
    _warn_skipped(tree, {parts for split_items in items.values() for _, parts in split_items})
    return class_names, items


def _warn_skipped(tree: _Tree, used: set[tuple[str, ...]]) -> None:
    skipped = [parts for parts in tree.files if parts not in used]
    if skipped:
        example = tree.name(sorted(skipped)[0])
        log.warning(
            "skipped %d non-image or misplaced file(s) in %s (e.g. %s)",
            len(skipped),
            tree.label,
            example,
        )


def decode_image(data: bytes | Path, name: str) -> np.ndarray:
    """Decode one 32x32 PNG/JPEG to a ``(32, 32, 3)`` uint8 RGB array.

    Raises
    ------
    DataError
        Naming the file and why: empty, not 32x32, or not decodable as PNG/JPEG.
    """
    if _is_empty(data):
        raise DataError(_empty_message(name))
    try:
        with Image.open(
            io.BytesIO(data) if isinstance(data, bytes) else data, formats=("PNG", "JPEG")
        ) as img:
            if img.size != (32, 32):
                raise DataError(
                    f"{name}: image is {img.size[0]}x{img.size[1]}, expected 32x32; resize or remove it"
                )
            return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    except DataError:
        raise
    except Image.UnidentifiedImageError:
        raise DataError(
            f"{name}: cannot decode image: not a PNG or JPEG file despite its name; replace or "
            "remove it"
        ) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(
            f"{name}: cannot decode image, truncated or corrupt ({type(exc).__name__}: {detail}); "
            "replace or remove it"
        ) from None


def _is_empty(data: bytes | Path | None) -> bool:
    """True for a 0-byte image file (read bytes, or a path on disk)."""
    if data is None:
        return False
    return (len(data) if isinstance(data, bytes) else _size(data)) == 0


def _empty_message(name: str) -> str:
    return f"{name} is empty (0 bytes); replace it with the image or remove it"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None  # let the decoder name the problem


def _decode_split(
    tree: _Tree, items: list[tuple[int, tuple[str, ...]]], split: str
) -> tuple[np.ndarray, np.ndarray]:
    x = np.empty((len(items), 32, 32, 3), dtype=np.uint8)
    y = np.empty(len(items), dtype=np.int64)
    for i, (label, parts) in enumerate(
        tqdm(items, desc=f"decoding {split}", unit=" img", disable=None)
    ):
        data = tree.files[parts]
        assert data is not None  # only images are decoded, and their bytes were read
        x[i] = decode_image(data, tree.name(parts))
        y[i] = label
    return x, y


def read_image_folder(path: Path) -> dict[str, Any]:
    """Decode an image-folder tree from a folder or a tar archive."""
    archive = not path.is_dir()
    tree = _tree_from_archive(path) if archive else _tree_from_dir(path)
    class_names, items = _layout(tree)
    x_train, y_train = _decode_split(tree, items["train"], "train")
    x_test, y_test = _decode_split(tree, items["test"], "test")
    fmt = "image-folder-archive" if archive else "image-folder"
    return arrays_of(x_train, y_train, x_test, y_test, class_names, fmt)


# --------------------------------------------------------------------------- keras


def _keras_load_data() -> Any:
    """``keras.datasets.cifar10.load_data()`` (separate so tests can stub the download)."""
    import keras

    return keras.datasets.cifar10.load_data()


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def read_keras_download() -> dict[str, Any]:
    """Download (or reuse Keras' own copy of) the official data with Keras."""
    log.info("no data source configured; loading CIFAR-10 with keras.datasets.cifar10")
    try:
        (x_train, y_train), (x_test, y_test) = _keras_load_data()
    except Exception as exc:  # the download raises bare Exceptions on network failure
        raise DataError(
            f"no data source is configured and the CIFAR-10 download failed ({one_line(exc)}); "
            "set CIFARKIT_DATA (or data.source) to a local copy such as cifar-10-python.tar.gz"
        ) from None
    arrays = arrays_of(
        np.asarray(x_train, dtype=np.uint8),
        np.asarray(y_train).reshape(-1).astype(np.int64),
        np.asarray(x_test, dtype=np.uint8),
        np.asarray(y_test).reshape(-1).astype(np.int64),
        CLASS_NAMES,
        "keras-download",
    )
    problem = cache.problem_with(arrays)
    if problem:
        raise DataError(
            f"keras.datasets.cifar10 returned unexpected arrays ({problem}); set CIFARKIT_DATA"
        )
    return arrays


def arrays_hash(arrays: dict[str, Any]) -> str:
    """SHA-256 over the bytes of x_train, y_train, x_test, y_test (in that order)."""
    digest = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        digest.update(np.ascontiguousarray(arrays[key]).data)
    return digest.hexdigest()
