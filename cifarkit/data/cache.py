"""Content hashes of data sources and the decoded-array cache.

* The *source hash* is the SHA-256 of a file's bytes, or for a directory the SHA-256 over
  the sorted ``(relative posix path, sha256 of bytes)`` of all its regular files.
* Hashing 170 MB on every start is slow, so ``cache_dir()/data/index.json`` maps a cheap
  stat fingerprint (absolute path; for every file its relative path, size, mtime_ns,
  ctime_ns and inode) to the content hash. A hit skips reading the bytes; any change to
  a file's size or times makes a miss and a re-hash. A corrupt index is ignored and rewritten.
* Decoded arrays live in ``cache_dir()/data/<source_hash>.npz`` (uncompressed ``np.savez``,
  written atomically, read with ``allow_pickle=False``). A file that fails to load or has
  wrong shapes/dtypes is logged, deleted and rebuilt by the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from cifarkit.core.atomic import atomic_path, write_json
from cifarkit.core.hashing import CHUNK, hash_file  # noqa: F401 - CHUNK is public here too
from cifarkit.core.paths import cache_dir

log = logging.getLogger(__name__)

INDEX_VERSION = 1
INDEX_MAX_ENTRIES = 64
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "class_names", "source_format")


def data_cache_dir() -> Path:
    """``cache_dir()/data``: the index and the decoded ``.npz`` files."""
    return cache_dir() / "data"


def cache_file(source_hash: str) -> Path:
    return data_cache_dir() / f"{source_hash}.npz"


def lock_for(path: Path) -> FileLock:
    """An flock on ``<path>.lock``; the kernel releases it if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock")


# --------------------------------------------------------------------------- hashing


def iter_files(root: Path) -> Iterator[tuple[str, Path]]:
    """``(relative posix path, path)`` of every regular file under ``root``, sorted."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            path = Path(folder, name)
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return iter(sorted(found))


def content_hash(path: Path) -> str:
    """The source hash of a file or directory (see the module docstring)."""
    if path.is_dir():
        digest = hashlib.sha256()
        for rel, file in iter_files(path):
            digest.update(f"{rel}\0{hash_file(file)}\n".encode())
        return digest.hexdigest()
    return hash_file(path)


def _stat_entry(rel: str, path: Path) -> list[Any]:
    st = path.stat()
    return [rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def fingerprint(path: Path) -> str:
    """A cheap digest of ``path``'s metadata: changes whenever a file's size or times change."""
    path = path.resolve()
    if path.is_dir():
        entries = [_stat_entry(rel, file) for rel, file in iter_files(path)]
    else:
        entries = [_stat_entry("", path)]
    payload = json.dumps([str(path), entries], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _index_path() -> Path:
    return data_cache_dir() / "index.json"


def _read_index() -> dict[str, Any]:
    path = _index_path()
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable data cache index %s (%s); it will be rewritten", path, exc)
        return {}
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION:
        entries = None
    else:
        entries = index.get("entries")
    if not isinstance(entries, dict):
        log.warning(
            "ignoring data cache index %s with an unexpected layout; it will be rewritten", path
        )
        return {}
    return entries


def _remember(key: str, path: Path, digest: str) -> None:
    """Add ``key -> digest`` to the index (atomically; keeps the newest entries)."""
    index_path = _index_path()
    try:
        with lock_for(index_path):
            entries = _read_index()
            entries.pop(key, None)
            entries[key] = {"path": str(path), "sha256": digest}
            kept = dict(list(entries.items())[-INDEX_MAX_ENTRIES:])
            write_json(index_path, {"version": INDEX_VERSION, "entries": kept})
    except OSError as exc:  # a read-only cache only costs a re-hash next time
        log.warning("could not update the data cache index %s: %s", index_path, exc)


def _nothing_to_remember() -> None:
    return None


def lookup_source_hash(path: Path, *, use_index: bool = True) -> tuple[str, Callable[[], None]]:
    """``(content hash, remember)``: the hash of ``path`` and a callable that records it in
    the index (a no-op when it came from the index or ``use_index`` is False).

    Callers that go on to decode the source call ``remember()`` only once it decoded, so a
    source that turns out to be broken leaves the cache folder exactly as it was.
    """
    path = path.resolve()
    if not use_index:
        return content_hash(path), _nothing_to_remember
    key = fingerprint(path)
    entry = _read_index().get(key)
    if (
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and len(entry["sha256"]) == 64
    ):
        log.debug("source hash of %s from the index", path)
        return entry["sha256"], _nothing_to_remember
    log.info("hashing %s", path)
    digest = content_hash(path)
    return digest, lambda: _remember(key, path, digest)


def source_hash(path: Path, *, use_index: bool = True) -> str:
    """The content hash of ``path``, reused from the index when its fingerprint is unchanged."""
    digest, remember = lookup_source_hash(path, use_index=use_index)
    remember()
    return digest


# --------------------------------------------------------------------------- arrays


def write_arrays(path: Path, arrays: dict[str, Any]) -> None:
    """Store the decoded arrays as an uncompressed ``.npz``, atomically."""
    payload: dict[str, np.ndarray] = {
        "x_train": np.ascontiguousarray(arrays["x_train"], dtype=np.uint8),
        "y_train": np.ascontiguousarray(arrays["y_train"], dtype=np.int64),
        "x_test": np.ascontiguousarray(arrays["x_test"], dtype=np.uint8),
        "y_test": np.ascontiguousarray(arrays["y_test"], dtype=np.int64),
        "class_names": np.asarray(list(arrays["class_names"]), dtype=np.str_),
        "source_format": np.asarray(str(arrays["source_format"]), dtype=np.str_),
    }
    with atomic_path(path, suffix=".npz") as tmp:
        # numpy's stub lets **kwds reach the allow_pickle flag; every value here is an array.
        np.savez(tmp, **payload)  # type: ignore[arg-type]
    log.info("cached decoded arrays in %s", path)


def problem_with(arrays: dict[str, Any]) -> str | None:
    """What is wrong with a set of decoded arrays, or None if they are consistent."""
    names = arrays["class_names"]
    if len(names) < 2:
        return f"{len(names)} class names"
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            return f"x_{split} is {x.dtype} {x.shape}, expected uint8 (n, 32, 32, 3)"
        if y.dtype != np.int64 or y.shape != (x.shape[0],):
            return f"y_{split} is {y.dtype} {y.shape}, expected int64 ({x.shape[0]},)"
        if y.size and (y.min() < 0 or y.max() >= len(names)):
            return f"y_{split} has labels outside 0..{len(names) - 1}"
    return None


def _load_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as npz:
        missing = set(ARRAY_KEYS) - set(npz.files)
        if missing:
            raise ValueError(f"missing entries {sorted(missing)}")
        arrays: dict[str, Any] = {key: npz[key] for key in ARRAY_KEYS}
    arrays["class_names"] = tuple(str(n) for n in arrays["class_names"].tolist())
    arrays["source_format"] = str(arrays["source_format"])
    return arrays


def read_arrays(path: Path) -> dict[str, Any] | None:
    """The cached arrays at ``path``; None if absent or damaged (a damaged file is deleted)."""
    if not path.is_file():
        return None
    try:
        arrays = _load_npz(path)
        problem = problem_with(arrays)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is None:
        return arrays
    log.warning("data cache file %s is damaged (%s); deleting and rebuilding it", path, problem)
    path.unlink(missing_ok=True)
    return None
