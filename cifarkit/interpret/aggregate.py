"""Maps summarised over many images: class means and per-class attention statistics.

* :func:`class_mean_maps` — mean map per true class, split into correctly and wrongly
  classified images;
* :func:`attention_statistics` — per image: normalised entropy of the map as a
  distribution over pixels, share of its mass in the central region, peak location;
* :func:`class_attention_table` — those per class, with the spread of the peak locations;
* :func:`group_comparison` / :func:`describe_group_comparison` — vehicle vs animal classes,
  difference of means with an independent-samples bootstrap interval, in one sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cifarkit.core.errors import CifarkitError
from cifarkit.evaluation.stats import CONFIDENCE, bootstrap_mean_ci

VEHICLES: tuple[str, ...] = ("airplane", "automobile", "ship", "truck")
CENTRE_FRACTION = 0.5  # the central square spans half the side: a quarter of the area


def _check(maps: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps = np.asarray(maps, np.float64)
    labels = np.asarray(labels, np.int64)
    if maps.ndim != 3 or labels.shape != maps.shape[:1]:
        raise CifarkitError(
            f"need maps (N, H, W) and labels (N,), got {maps.shape} and {labels.shape}"
        )
    if (maps < 0).any():
        raise CifarkitError("maps must be non-negative (normalised to [0, 1]); recompute them")
    return maps, labels


# --------------------------------------------------------------------------- class means


@dataclass(frozen=True)
class ClassMeans:
    """``means[k, 0]`` mean map of class ``k``'s correctly classified images, ``[k, 1]`` of its mistakes."""

    means: np.ndarray  # (classes, 2, H, W), NaN where a cell has no image
    counts: np.ndarray  # (classes, 2)
    class_names: tuple[str, ...]


def class_mean_maps(
    maps: np.ndarray, labels: np.ndarray, predicted: np.ndarray, class_names: Sequence[str]
) -> ClassMeans:
    """Mean map per true class, split by whether the prediction was right."""
    maps, labels = _check(maps, labels)
    predicted = np.asarray(predicted, np.int64)
    k = len(class_names)
    means = np.full((k, 2, *maps.shape[1:]), np.nan)
    counts = np.zeros((k, 2), np.int64)
    for c in range(k):
        for j, wanted in enumerate((True, False)):
            chosen = (labels == c) & ((predicted == labels) == wanted)
            counts[c, j] = chosen.sum()
            if counts[c, j]:
                means[c, j] = maps[chosen].mean(axis=0)
    return ClassMeans(means, counts, tuple(class_names))


# --------------------------------------------------------------------------- attention statistics


def attention_statistics(maps: np.ndarray) -> pd.DataFrame:
    """Per map: ``entropy`` (of map/sum over pixels, divided by log(H*W): 1 = uniform),
    ``centre_share`` (mass in the central square of half the side; 0.25 if uniform),
    ``peak_y``/``peak_x`` (pixel of the maximum; the first one on ties).

    An all-zero map counts as uniform (entropy 1, centre share 0.25): it points nowhere.
    """
    maps = np.asarray(maps, np.float64)
    if maps.ndim != 3:
        raise CifarkitError(f"need maps (N, H, W), got shape {maps.shape}")
    n, h, w = maps.shape
    flat = maps.reshape(n, -1)
    total = flat.sum(axis=1, keepdims=True)
    p = np.where(total > 0, flat / np.where(total > 0, total, 1), 1.0 / (h * w))
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1) / np.log(h * w)
    y0, x0 = int(round(h * (1 - CENTRE_FRACTION) / 2)), int(round(w * (1 - CENTRE_FRACTION) / 2))
    centre = p.reshape(n, h, w)[:, y0 : h - y0, x0 : w - x0].sum(axis=(1, 2))
    peak = flat.argmax(axis=1)
    return pd.DataFrame(
        {"entropy": entropy, "centre_share": centre, "peak_y": peak // w, "peak_x": peak % w}
    )


def peak_spread(peak_y: np.ndarray, peak_x: np.ndarray) -> float:
    """Root-mean-square distance (px) of peak locations from their mean location."""
    if len(peak_y) == 0:
        return float("nan")
    y, x = np.asarray(peak_y, np.float64), np.asarray(peak_x, np.float64)
    return float(np.sqrt(((y - y.mean()) ** 2 + (x - x.mean()) ** 2).mean()))


def class_attention_table(
    maps: np.ndarray, labels: np.ndarray, class_names: Sequence[str], confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Per true class: group (vehicle/animal), n, mean entropy and centre share with bootstrap
    CIs, and the peak spread (px)."""
    maps, labels = _check(maps, labels)
    stats = attention_statistics(maps)
    rows = []
    for c, name in enumerate(class_names):
        part = stats[labels == c]
        row = {"class": name, "group": "vehicle" if name in VEHICLES else "animal", "n": len(part)}
        for col in ("entropy", "centre_share"):
            ci = bootstrap_mean_ci(part[col].to_numpy(), confidence) or (np.nan, np.nan)
            row.update(
                {
                    col: part[col].mean() if len(part) else np.nan,
                    f"{col}_low": ci[0],
                    f"{col}_high": ci[1],
                }
            )
        row["peak_spread"] = peak_spread(part["peak_y"].to_numpy(), part["peak_x"].to_numpy())
        rows.append(row)
    return pd.DataFrame(rows).set_index("class")


# --------------------------------------------------------------------------- vehicles vs animals


@dataclass(frozen=True)
class GroupComparison:
    """Mean of a statistic for vehicle minus animal images, with a bootstrap interval."""

    statistic: str
    vehicle_mean: float
    animal_mean: float
    diff: float
    low: float | None
    high: float | None
    n_vehicle: int
    n_animal: int

    @property
    def distinguishable(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)


def bootstrap_diff_ci(
    a: np.ndarray,
    b: np.ndarray,
    confidence: float = CONFIDENCE,
    n_boot: int = 10_000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``mean(a) - mean(b)`` for independent samples.

    ``stats.paired_comparison`` needs matched pairs; vehicle and animal images are not
    paired, so each group is resampled on its own (same seeded percentile method).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(seed)
    diffs = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(axis=1) - b[
        rng.integers(0, len(b), (n_boot, len(b)))
    ].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return float(low), float(high)


def group_comparison(
    maps: np.ndarray, labels: np.ndarray, class_names: Sequence[str], statistic: str = "entropy"
) -> GroupComparison:
    """Vehicle minus animal images for one per-image statistic (``entropy`` or ``centre_share``)."""
    maps, labels = _check(maps, labels)
    values = attention_statistics(maps)[statistic].to_numpy()
    vehicle_ids = [i for i, name in enumerate(class_names) if name in VEHICLES]
    is_vehicle = np.isin(labels, vehicle_ids)
    a, b = values[is_vehicle], values[~is_vehicle]
    ci = bootstrap_diff_ci(a, b)
    mean_a = float(a.mean()) if len(a) else float("nan")
    mean_b = float(b.mean()) if len(b) else float("nan")
    return GroupComparison(
        statistic,
        mean_a,
        mean_b,
        mean_a - mean_b,
        ci[0] if ci else None,
        ci[1] if ci else None,
        len(a),
        len(b),
    )


_STAT_WORDS = {
    "entropy": ("map entropy", "more diffuse", "more concentrated"),
    "centre_share": ("share of map mass in the central region", "more central", "less central"),
}


def describe_group_comparison(g: GroupComparison, digits: int = 3) -> str:
    """One sentence: vehicles vs animals on a statistic, claiming a difference only if the CI excludes 0."""
    name, up, down = _STAT_WORDS[g.statistic]
    values = f"{g.vehicle_mean:.{digits}f} vs {g.animal_mean:.{digits}f}"
    if g.low is None:
        return f"Vehicle and animal images' {name} cannot be compared ({g.n_vehicle} vs {g.n_animal} images)."
    interval = (
        f"difference {g.diff:+.{digits}f}, 95% bootstrap CI [{g.low:+.{digits}f}, {g.high:+.{digits}f}], "
        f"{g.n_vehicle} vehicle and {g.n_animal} animal images"
    )
    if not g.distinguishable:
        return f"The {name} of vehicle and animal images is not distinguishable ({values}; {interval})."
    return (
        f"Vehicle images' maps are {up if g.diff > 0 else down} than animal images' by {name} "
        f"({values}; {interval})."
    )
