"""Builders of tiny CIFAR-10 data sources for the tests (image folders, official batches, archives).

Every builder returns the arrays a correct loader must produce, so tests compare exactly.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cifarkit.data import CLASS_NAMES

SMALL_CLASSES = ("cat", "dog", "frog")


def smooth_images(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct 32x32 RGB images: colour gradients (JPEG keeps them close)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, 32)
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for i in range(n):
        base = rng.uniform(40, 160, size=3)
        slope = rng.uniform(-60, 60, size=(2, 3))
        img = base + ramp[:, None, None] * slope[0] + ramp[None, :, None] * slope[1]
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images


def _encode(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG" if fmt in ("jpg", "jpeg") else "PNG", quality=95)
    return buf.getvalue()


def png_bytes(
    size: tuple[int, int] = (32, 32), colour: tuple[int, int, int] = (10, 20, 30)
) -> bytes:
    """A single-colour PNG of ``size``."""
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def write_image_tree(
    root: Path,
    classes: tuple[str, ...] = SMALL_CLASSES,
    train_per_class: int = 4,
    test_per_class: int = 2,
    fmt: str = "png",
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``root/{train,test}/<class>/NNN.<fmt>``; return the expected arrays."""
    expected: dict[str, Any] = {"class_names": tuple(sorted(classes))}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images = smooth_images(per_class * len(classes), seed=seed + (split == "test"))
        labels = np.repeat(np.arange(len(classes), dtype=np.int64), per_class)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / expected["class_names"][label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i % per_class:03d}.{fmt}").write_bytes(_encode(image, fmt))
        expected[f"x_{split}"], expected[f"y_{split}"] = images, labels
    return expected


def tar_dir(src: Path, out: Path, arcname: str | None = None) -> Path:
    """Pack ``src`` into ``out`` (gzip when the name says so) under ``arcname``."""
    mode = "w:gz" if out.name.endswith(("gz", ".tgz")) else "w"
    with tarfile.open(out, mode) as tar:
        tar.add(src, arcname=arcname if arcname is not None else src.name)
    return out


def tar_members(out: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """A .tgz holding exactly ``members``: ``(name, bytes)`` files or prepared TarInfo entries."""
    with tarfile.open(out, "w:gz") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out


def write_official_batches(
    folder: Path, per_batch: int = 20, protocol: int = 2, seed: int = 0
) -> dict[str, Any]:
    """Write the six batches and ``batches.meta`` in the official layout; return expected arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = [int(v) for v in rng.permutation(np.arange(per_batch) % 10)]
        flat = images.transpose(0, 3, 1, 2).reshape(per_batch, 3072)  # channel-major rows
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": flat,
            b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        xs.append(images)
        ys.append(np.asarray(labels, dtype=np.int64))
    meta = {b"label_names": [n.encode() for n in CLASS_NAMES], b"num_cases_per_batch": per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return {
        "x_train": np.concatenate(xs[:5]),
        "y_train": np.concatenate(ys[:5]),
        "x_test": xs[5],
        "y_test": ys[5],
        "class_names": CLASS_NAMES,
    }


def write_official_archive(out: Path, per_batch: int = 20) -> dict[str, Any]:
    """``cifar-10-python.tar.gz`` look-alike at ``out``; return expected arrays."""
    staging = out.parent / f"{out.name}.staging"
    expected = write_official_batches(staging / "cifar-10-batches-py", per_batch)
    tar_dir(staging / "cifar-10-batches-py", out, arcname="cifar-10-batches-py")
    return expected


class Evil:
    """Unpickling this runs a shell command (what a malicious batch would do)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def malicious_pickle(marker: Path) -> bytes:
    """A batch whose unpickling would create ``marker``."""
    return pickle.dumps({b"data": Evil(f"echo pwned > {marker}"), b"labels": [0]}, protocol=2)


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def assert_same_arrays(data: Any, expected: dict[str, Any]) -> None:
    """``data`` (a Cifar10) holds exactly the expected arrays and class names."""
    for key in ("x_train", "y_train", "x_test", "y_test"):
        actual = getattr(data, key)
        assert actual.dtype == expected[key].dtype, key
        np.testing.assert_array_equal(actual, expected[key], err_msg=key)
    assert data.class_names == tuple(expected["class_names"])
