"""Seeded, stratified train/validation split of the training images, and the test subset.

For class ``c`` the images of that class (in file order) are permuted by
``np.random.default_rng([seed, c])``; the first ``val_per_class`` go to validation, the
next ``train_per_class`` (default: all the rest) to training. Each class has its own
generator, so the split of one class never depends on another, the validation set does
not change when ``train_per_class`` does, and smaller training subsets are nested in
larger ones. The result depends only on the labels and the seed: the same in every process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cifarkit.core.errors import DataError
from cifarkit.data.sources import CLASS_NAMES, Cifar10, load_cifar10, resolve_source

if TYPE_CHECKING:
    from cifarkit.core.config import DataConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Splits:
    """Train/val/test arrays plus the indices they were taken at."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_idx: np.ndarray  # into Cifar10.x_train, ascending
    val_idx: np.ndarray  # into Cifar10.x_train, ascending
    test_idx: np.ndarray  # into Cifar10.x_test, ascending
    class_names: tuple[str, ...]
    source_hash: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def counts(self) -> dict[str, np.ndarray]:
        """Images per class in each split: ``{"train": ..., "val": ..., "test": ...}``."""
        k = self.num_classes
        return {
            "train": np.bincount(self.y_train, minlength=k),
            "val": np.bincount(self.y_val, minlength=k),
            "test": np.bincount(self.y_test, minlength=k),
        }

    def __repr__(self) -> str:
        return (
            f"Splits(train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)}, "
            f"classes={self.num_classes}, source_hash={self.source_hash[:12]})"
        )


def _check_args(
    val_per_class: int,
    seed: int,
    train_per_class: int | None,
    test_limit: int | None,
    num_classes: int,
) -> None:
    if val_per_class < 0:
        raise DataError(f"val_per_class={val_per_class} must be >= 0")
    if seed < 0:
        raise DataError(f"split seed={seed} must be >= 0")
    if train_per_class is not None and train_per_class < 1:
        raise DataError(f"train_per_class={train_per_class} must be >= 1 (or None for all)")
    if test_limit is not None and test_limit < num_classes:
        raise DataError(
            f"test_limit={test_limit} is smaller than the number of classes ({num_classes}); "
            f"use at least {num_classes} or None for the whole test set"
        )


def _class_split(
    members: np.ndarray,
    cls: int,
    name: str,
    val_per_class: int,
    seed: int,
    train_per_class: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of one class whose images are at ``members``."""
    available = len(members)
    wanted_train = available - val_per_class if train_per_class is None else train_per_class
    if val_per_class + max(wanted_train, 1) > available:
        train_text = (
            f" + train_per_class={train_per_class}"
            if train_per_class is not None
            else " + at least 1 train image"
        )
        raise DataError(
            f"val_per_class={val_per_class}{train_text} exceeds the {available} training images of "
            f"class {cls} ({name}); lower data.val_per_class or data.train_per_class"
        )
    # Not scikit-learn's StratifiedShuffleSplit: one generator for all classes, and test images
    # taken after the training ones, so a smaller train_per_class or another set of classes
    # would move validation images. A generator per (seed, class), validation first, does not.
    order = members[np.random.default_rng([seed, cls]).permutation(available)]
    val = order[:val_per_class]
    train = order[val_per_class : val_per_class + wanted_train]
    return train, val


def _test_indices(
    y_test: np.ndarray,
    class_names: tuple[str, ...],
    test_limit: int | None,
    selected: list[int] | None = None,
) -> np.ndarray:
    selected = list(range(len(class_names))) if selected is None else selected
    if test_limit is None:
        return np.flatnonzero(np.isin(y_test, selected))
    per_class = test_limit // len(selected)
    chosen = []
    for cls in selected:
        name = class_names[cls]
        members = np.flatnonzero(y_test == cls)
        if len(members) < per_class:
            raise DataError(
                f"test_limit={test_limit} needs {per_class} test images per class but class {cls} "
                f"({name}) has {len(members)}; lower data.test_limit"
            )
        chosen.append(members[:per_class])
    return np.sort(np.concatenate(chosen))


def _class_indices(all_names: tuple[str, ...], classes: Sequence[str] | None) -> list[int]:
    """Indices of ``classes`` among ``all_names`` (all of them for None)."""
    if classes is None:
        return list(range(len(all_names)))
    unknown = [name for name in classes if name not in all_names]
    if unknown:
        raise DataError(
            f"data.classes names unknown class(es) {', '.join(map(repr, unknown))}; "
            f"choose from: {', '.join(all_names)}"
        )
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise DataError(f"data.classes {list(classes)} must name at least 2 distinct classes")
    return [all_names.index(name) for name in classes]


NEAR_MISS = 2  # class folders missing plus extra for a tree to count as a damaged CIFAR-10


def check_almost_cifar10(data: Cifar10) -> None:
    """Refuse an image-folder tree that is CIFAR-10 with a class folder missing or extra.

    Such a tree loads (its classes are whatever folders it has), but a run on it would be a
    9- or 11-class study that reports itself as CIFAR-10. A tree that shares fewer than
    ``10 - NEAR_MISS`` of CIFAR-10's class names is a data set of its own and passes.

    Parameters
    ----------
    data : Cifar10
        Decoded data; only image-folder sources are checked (the official batches name
        their classes in ``batches.meta``).

    Raises
    ------
    DataError
        Naming the missing and extra class folders (an extra one close to a missing name is
        said to be a likely misspelling) and the two fixes.
    """
    import difflib

    if data.source_format not in ("image-folder", "image-folder-archive"):
        return
    names, expected = set(data.class_names), set(CLASS_NAMES)
    missing, extra = sorted(expected - names), sorted(names - expected)
    if not (missing or extra) or len(missing) + len(extra) > NEAR_MISS:
        return
    parts = []
    if missing:
        parts.append(
            f"missing class folder{'s' if len(missing) > 1 else ''} "
            f"{', '.join(f'{m}/' for m in missing)}"
        )
    for name in extra:
        close = difflib.get_close_matches(name, missing, n=1, cutoff=0.6)
        parts.append(
            f"extra class folder {name}/" + (f" (a misspelt {close[0]}/?)" if close else "")
        )
    raise DataError(
        f"{data.source}: looks like CIFAR-10 but its train/ and test/ have {len(names)} classes: "
        f"{'; '.join(parts)}; add or rename the folders, or set data.classes to the classes you mean to "
        f"use ({', '.join(sorted(names))})"
    )


def make_splits(
    data: Cifar10,
    *,
    val_per_class: int = 1000,
    seed: int = 0,
    train_per_class: int | None = None,
    test_limit: int | None = None,
    classes: Sequence[str] | None = None,
) -> Splits:
    """Stratified, seeded train/val split of ``data.x_train``; optionally a stratified test subset.

    ``classes`` keeps only those classes, relabelled 0..k-1 in the given order. Each kept
    class is split exactly as in the full split (its generator is seeded by its original
    index), so a class has the same validation images in every subset that holds it.
    Without ``classes``, an image-folder tree that is CIFAR-10 with a class folder missing or
    extra is refused (:func:`check_almost_cifar10`) rather than split as a 9- or 11-class set.
    """
    all_names = tuple(data.class_names)
    if classes is None:
        check_almost_cifar10(data)
    selected = _class_indices(all_names, classes)
    class_names = tuple(all_names[c] for c in selected)
    _check_args(val_per_class, seed, train_per_class, test_limit, len(class_names))
    train_parts, val_parts = [], []
    for cls in selected:
        members = np.flatnonzero(data.y_train == cls)
        train, val = _class_split(
            members, cls, all_names[cls], val_per_class, seed, train_per_class
        )
        train_parts.append(train)
        val_parts.append(val)
    train_idx = np.sort(np.concatenate(train_parts)).astype(np.int64)
    val_idx = np.sort(np.concatenate(val_parts)).astype(np.int64)
    test_idx = _test_indices(data.y_test, all_names, test_limit, selected).astype(np.int64)
    relabel = np.full(len(all_names), -1, dtype=data.y_train.dtype)
    relabel[selected] = np.arange(len(selected))
    log.info(
        "split %s: %d train, %d val, %d test",
        data.source,
        len(train_idx),
        len(val_idx),
        len(test_idx),
    )
    return Splits(
        x_train=data.x_train[train_idx],
        y_train=relabel[data.y_train[train_idx]],
        x_val=data.x_train[val_idx],
        y_val=relabel[data.y_train[val_idx]],
        x_test=data.x_test[test_idx],
        y_test=relabel[data.y_test[test_idx]],
        train_idx=train_idx,
        val_idx=val_idx,
        test_idx=test_idx,
        class_names=class_names,
        source_hash=data.source_hash,
    )


def splits_from_config(data_cfg: DataConfig) -> Splits:
    """Load (cached) and split the data a config's ``data`` section describes.

    Parameters
    ----------
    data_cfg : DataConfig
        ``cfg.data`` of an experiment config: source, split seed, validation size, subsets.

    Returns
    -------
    Splits
        Train, validation and test arrays with their indices into the source.

    Raises
    ------
    DataError
        When the source cannot be loaded (see :func:`cifarkit.data.load_cifar10`).
    """
    data = load_cifar10(resolve_source(data_cfg.source))
    return make_splits(
        data,
        val_per_class=data_cfg.val_per_class,
        seed=data_cfg.split_seed,
        train_per_class=data_cfg.train_per_class,
        test_limit=data_cfg.test_limit,
        classes=data_cfg.classes,
    )
