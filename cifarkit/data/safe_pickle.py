"""Restricted unpickling of the official CIFAR-10 batches.

The official release ships Python-2 pickles. ``pickle.load`` on an untrusted file runs
arbitrary code, so :class:`CifarUnpickler` resolves only the few globals a CIFAR batch
references (NumPy's array reconstruction: ``_reconstruct``, or ``_frombuffer`` at protocol 5;
and ``_codecs.encode`` restricted to latin-1, which Python 3 writes for ``bytes`` at
protocol 2). Everything else is refused with a
:class:`~cifarkit.core.errors.DataError` *before* it can be called.
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from cifarkit.core.errors import DataError

IMAGE_SIDE = 32
FLAT_SIZE = 3 * IMAGE_SIDE * IMAGE_SIDE  # 3072 bytes per image, channel-major


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, and nothing else."""
    if (
        not isinstance(text, str)
        or codecs.lookup(encoding).name != "iso8859-1"
        or errors != "strict"
    ):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}/{errors!r} is not allowed")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    from numpy._core.multiarray import _reconstruct

    # NumPy's pickles name it; its stubs do not declare this private helper.
    from numpy._core.numeric import _frombuffer  # type: ignore[attr-defined]

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _reconstruct
    # Protocol-5 pickles rebuild arrays with _frombuffer (frombuffer + reshape, nothing more).
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = _frombuffer
    return allowed


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    **_numpy_globals(),
    ("_codecs", "encode"): _latin1_encode,
}


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only NumPy arrays, dtypes and plain containers."""

    def __init__(self, file: IO[bytes], name: str) -> None:
        super().__init__(file, encoding="bytes")
        self.name = name

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to unpickle {module}.{name} from {self.name}: CIFAR batches contain "
                "only arrays; the file is corrupt or malicious"
            ) from None


def safe_load(fileobj: IO[bytes], name: str) -> Any:
    """Unpickle ``fileobj`` with :class:`CifarUnpickler`; any failure is a DataError."""
    try:
        return CifarUnpickler(fileobj, name).load()
    except DataError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, ... from a damaged file
        raise DataError(
            f"{name}: not a readable CIFAR pickle ({type(exc).__name__}: {exc}); re-download the data"
        ) from None


def _get(mapping: dict[Any, Any], key: str, name: str) -> Any:
    """Look up ``key`` as bytes (Python-2 pickles) or as str."""
    for candidate in (key.encode(), key):
        if candidate in mapping:
            return mapping[candidate]
    found = ", ".join(sorted(repr(k) for k in mapping)) or "(none)"
    raise DataError(
        f"{name}: CIFAR batch has no {key!r} entry (keys: {found}); re-download the data"
    )


def _as_dict(obj: Any, name: str) -> dict[Any, Any]:
    if not isinstance(obj, dict):
        raise DataError(
            f"{name}: expected a pickled dict, got {type(obj).__name__}; re-download the data"
        )
    return obj


def _labels(raw: Any, n: int, name: str, num_classes: int | None) -> np.ndarray:
    labels = np.asarray(raw)
    if (
        labels.ndim != 1
        or labels.shape[0] != n
        or (n and not np.issubdtype(labels.dtype, np.integer))
    ):
        raise DataError(
            f"{name}: expected {n} integer labels, got shape {labels.shape} of {labels.dtype}; "
            "re-download the data"
        )
    labels = labels.astype(np.int64)
    upper = num_classes if num_classes is not None else np.iinfo(np.int64).max
    if n and (labels.min() < 0 or labels.max() >= upper):
        raise DataError(
            f"{name}: labels range {labels.min()}..{labels.max()} is outside 0..{upper - 1}; "
            "re-download the data"
        )
    return labels


def load_pickle_batch(
    fileobj: IO[bytes], name: str, *, num_classes: int | None = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Read one ``data_batch_*``/``test_batch``: images ``(n, 32, 32, 3)`` uint8, labels int64.

    ``num_classes=None`` checks only that labels are non-negative (the caller checks the
    upper bound once ``batches.meta`` is known).
    """
    batch = _as_dict(safe_load(fileobj, name), name)
    data = _get(batch, "data", name)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != FLAT_SIZE
    ):
        got = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DataError(
            f"{name}: 'data' must be a uint8 array of shape (n, {FLAT_SIZE}), got {got}; re-download the data"
        )
    labels = _labels(_get(batch, "labels", name), data.shape[0], name, num_classes)
    images = data.reshape(-1, 3, IMAGE_SIDE, IMAGE_SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_pickle_meta(fileobj: IO[bytes], name: str) -> tuple[str, ...]:
    """Read ``batches.meta``: the class names in label order."""
    meta = _as_dict(safe_load(fileobj, name), name)
    raw = _get(meta, "label_names", name)
    if not isinstance(raw, list | tuple) or not raw:
        raise DataError(f"{name}: 'label_names' must be a non-empty list; re-download the data")
    try:
        names = tuple(n.decode("ascii") if isinstance(n, bytes) else str(n) for n in raw)
    except UnicodeDecodeError:
        raise DataError(f"{name}: 'label_names' are not ASCII; re-download the data") from None
    return names
