"""CIFAR-10 sources: where the data is, and loading it (decoded once, then cached).

:func:`load_cifar10` resolves the source (argument, ``data.source`` or ``CIFARKIT_DATA``),
detects its format and decodes it with :mod:`cifarkit.data.readers`; decoded arrays are
cached by the source's content hash (:mod:`cifarkit.data.cache`), so only the first load
of a source decodes it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cifarkit.core.errors import DataError
from cifarkit.data import cache
from cifarkit.data.readers import (  # noqa: F401 - CLASS_NAMES and the format names are public here
    _DRIVE,
    CLASS_NAMES,
    FORMAT_LABELS,
    SUPPORTED,
    arrays_hash,
    decode_image,
    detect_format,
    one_line,
    read_image_folder,
    read_keras_download,
    read_official_archive,
    read_official_dir,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Cifar10:
    """Decoded CIFAR-10: uint8 ``(n, 32, 32, 3)`` images and int64 labels, plus provenance."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    source_format: str
    source_hash: str
    cache_path: Path | None = field(default=None)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (
            f"Cifar10(train={self.x_train.shape[0]}, test={self.x_test.shape[0]}, "
            f"classes={self.num_classes}, source={self.source!r}, hash={self.source_hash[:12]})"
        )


# --------------------------------------------------------------------------- resolving


def resolve_source(config_source: str | None = None) -> str | None:
    """The data path: ``config_source``, else ``$CIFARKIT_DATA``, else None (Keras download).

    Relative paths are resolved against the current directory and returned absolute.
    """
    for origin, value in (
        ("data.source", config_source),
        ("CIFARKIT_DATA", os.environ.get("CIFARKIT_DATA")),
    ):
        if value is None or not str(value).strip():
            continue
        path = Path(os.path.abspath(os.path.expanduser(str(value).strip())))
        if not path.exists():
            raise DataError(
                f"data source {path} (from {origin}) does not exist; set CIFARKIT_DATA or "
                f"data.source to {SUPPORTED}"
            )
        return str(path)
    return None


# --------------------------------------------------------------------------- loading


READERS = {
    "official-archive": read_official_archive,
    "official-dir": read_official_dir,
    "image-folder": read_image_folder,
    "image-folder-archive": read_image_folder,
}


def decode_source(path: Path, source_format: str) -> dict[str, Any]:
    """Decode ``path`` (of a detected format) into the arrays dict, timing it."""
    start = time.perf_counter()
    log.info("decoding %s (%s)", path, FORMAT_LABELS[source_format])
    arrays = READERS[source_format](path)
    log.info(
        "decoded %d train + %d test images from %s in %.1f s",
        len(arrays["y_train"]),
        len(arrays["y_test"]),
        path,
        time.perf_counter() - start,
    )
    return arrays


def _hash_source(path: Path, use_index: bool) -> tuple[str, Any]:
    """``(content hash, remember)``; call ``remember()`` once the source proved readable."""
    try:
        return cache.lookup_source_hash(path, use_index=use_index)
    except OSError as exc:
        raise DataError(
            f"cannot read data source {path} ({one_line(exc)}); check its permissions"
        ) from None


def _decode_cached(
    path: Path, source_format: str, digest: str
) -> tuple[dict[str, Any], Path | None]:
    """Arrays from the cache, or decoded and written to it (one process decodes at a time)."""
    target = cache.cache_file(digest)
    arrays = cache.read_arrays(target)
    if arrays is not None:
        log.info("loaded %s from the cache %s", path, target)
        return arrays, target
    lock_file = Path(f"{target}.lock")
    lock_existed = lock_file.exists()
    try:
        lock = cache.lock_for(target)
        lock.acquire()
    except OSError as exc:
        log.warning("data cache %s is not writable (%s); decoding without it", target.parent, exc)
        return decode_source(path, source_format), None
    try:
        arrays = cache.read_arrays(target)  # another process may have built it while we waited
        if arrays is None:
            try:
                arrays = decode_source(path, source_format)
            except DataError:
                # A broken source leaves the cache folder as it was: drop the lock file we
                # created. (A process waiting on it may then decode at the same time as a
                # newcomer; both fail the same way or write identical arrays atomically.)
                if not lock_existed:
                    lock_file.unlink(missing_ok=True)
                raise
            try:
                cache.write_arrays(target, arrays)
            except OSError as exc:
                log.warning(
                    "could not write the data cache %s (%s); continuing without it", target, exc
                )
                return arrays, None
        return arrays, target
    finally:
        lock.release()


def _build(arrays: dict[str, Any], source: str, digest: str, cache_path: Path | None) -> Cifar10:
    return Cifar10(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        class_names=tuple(arrays["class_names"]),
        source=source,
        source_format=arrays["source_format"],
        source_hash=digest,
        cache_path=cache_path,
    )


def data_source_hash(source: str | os.PathLike[str] | None = None) -> str:
    """The ``source_hash`` that :func:`load_cifar10` would report, without decoding anything.

    For a path this reads the hash index (or hashes the bytes once); for the Keras download
    it has to load the arrays.
    """
    resolved = resolve_source(None if source is None else os.fspath(source))
    if resolved is None:
        return arrays_hash(read_keras_download())
    digest, remember = _hash_source(Path(resolved), use_index=True)
    remember()
    return digest


def load_cifar10(
    source: str | os.PathLike[str] | None = None, *, use_cache: bool = True
) -> Cifar10:
    """Load CIFAR-10 from ``source``, through the decoded-array cache.

    Parameters
    ----------
    source : str or path-like, optional
        The official archive or folder, or an image-folder tree or archive; None means
        :func:`resolve_source` (``CIFARKIT_DATA``, else Keras' download).
    use_cache : bool, default True
        Read and write the decoded arrays under ``artifacts/cache/`` (keyed by content).

    Returns
    -------
    Cifar10
        uint8 ``(n, 32, 32, 3)`` images, int64 labels, the class names and the source's
        content hash.

    Raises
    ------
    DataError
        One line naming the file and the problem (missing, unreadable, wrong format,
        altered archive), with what to do.
    """
    resolved = resolve_source(None if source is None else os.fspath(source))
    if resolved is None:
        arrays = read_keras_download()
        return _build(arrays, "keras.datasets.cifar10 (download)", arrays_hash(arrays), None)
    path = Path(resolved)
    source_format = detect_format(path)
    digest, remember = _hash_source(path, use_index=use_cache)
    if use_cache:
        arrays, cache_path = _decode_cached(path, source_format, digest)
    else:
        arrays, cache_path = decode_source(path, source_format), None
    remember()  # only a source that decoded gets an index entry
    return _build(arrays, f"{path} ({FORMAT_LABELS[arrays['source_format']]})", digest, cache_path)
