"""Faithfulness of attribution maps without bounding boxes (CIFAR-10 has none).

Written in NumPy/TensorFlow because Quantus, the usual library, does not support Keras 3.

* :func:`deletion_insertion` — Petsiuk et al. (2018, RISE): pixels are replaced by a
  **blurred** copy of the image in the map's order, most important first (deletion), or
  revealed from the blurred copy onto it (insertion); the area under the target class's
  probability curve is the score (deletion: lower is better; insertion: higher);
* :func:`average_drop_increase` — Chattopadhay et al. (2018, Grad-CAM++): the image is
  multiplied by its map; Average Drop (%, lower is better) and Increase in Confidence
  (%, higher is better) of the target class's probability;
* :func:`randomisation_check` — Adebayo et al. (2018): the model's layers are re-initialised
  cumulatively from the top down and the Spearman rank correlation between each map and
  the original model's map is tracked; a map that explains the model must change;
* baselines: :func:`random_maps` (independent uniform noise per pixel) and
  :func:`blurred_random_maps` (Gaussian-smoothed noise, as smooth as an upsampled CAM), so
  a method is judged against maps that carry no information but have its texture;
* :func:`compare` / :func:`describe_comparison` — per-image paired differences with a
  bootstrap interval, and one sentence that says only what that interval supports.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cifarkit.core.errors import CifarkitError
from cifarkit.evaluation.stats import CONFIDENCE, bootstrap_mean_ci, paired_comparison

log = logging.getLogger(__name__)

Predict = Callable[
    [np.ndarray], np.ndarray
]  # images (N, H, W, 3) float32 0..255 -> probabilities (N, C)
BLUR_SIGMA = 4.0  # px: the blurred copy keeps colour layout, loses object detail
RANDOM_BLUR_SIGMA = 2.0  # px: close to the smoothness of an 8x8 map upsampled to 32x32
DEFAULT_STEPS = 16


# --------------------------------------------------------------------------- inputs


def model_probabilities(model, batch_size: int = 500) -> Predict:
    """``images -> softmax(model(images))`` as float64, batched and without a progress bar."""
    from cifarkit.evaluation.metrics import softmax
    from cifarkit.models.registry import predict_logits

    def predict(images: np.ndarray) -> np.ndarray:
        return softmax(predict_logits(model, images, batch_size))

    return predict


def blurred(images: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Each image Gaussian-blurred in space (not across channels), float32."""
    from scipy.ndimage import gaussian_filter

    images = np.asarray(images, np.float32)
    return gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="reflect").astype(np.float32)


def random_maps(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` maps of independent uniform noise in [0, 1): a random pixel order."""
    return np.random.default_rng(seed).random((n, size, size), dtype=np.float32)


def blurred_random_maps(
    n: int, size: int = 32, seed: int = 0, sigma: float = RANDOM_BLUR_SIGMA
) -> np.ndarray:
    """``n`` maps of Gaussian-smoothed noise, min-max normalised: random blobs, CAM-like texture."""
    from scipy.ndimage import gaussian_filter

    from cifarkit.interpret.cams import normalise_maps

    noise = np.random.default_rng(seed).random((n, size, size)).astype(np.float32)
    return normalise_maps(gaussian_filter(noise, sigma=(0, sigma, sigma), mode="wrap"))


def _check_maps(
    images: np.ndarray, maps: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = np.asarray(images, np.float32)
    maps = np.asarray(maps, np.float32)
    targets = np.asarray(targets, np.int64)
    if images.ndim != 4 or maps.shape != images.shape[:3] or targets.shape != images.shape[:1]:
        raise CifarkitError(
            f"need images (N, H, W, 3), maps (N, H, W) and targets (N,); got {images.shape}, "
            f"{maps.shape} and {targets.shape}"
        )
    if not np.isfinite(maps).all():
        raise CifarkitError("maps contain NaN or infinite values; recompute them")
    return images, maps, targets


def pixel_order(maps: np.ndarray, seed: int = 0) -> np.ndarray:
    """Per map, flat pixel indices from the highest value to the lowest.

    Ties (an upsampled CAM has flat regions and ReLU zeros) are broken at random with a
    seeded generator, not in raster order, so a flat map behaves like a random one
    instead of deleting the top rows first.
    """
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    tiebreak = np.random.default_rng(seed).random(flat.shape)
    return np.lexsort((tiebreak, -flat), axis=1)


# --------------------------------------------------------------------------- deletion / insertion


@dataclass(frozen=True)
class CurveResult:
    """Deletion and insertion curves: probability of the target class after each step."""

    fractions: np.ndarray  # (steps + 1,) share of pixels removed / revealed
    deletion: np.ndarray  # (N, steps + 1)
    insertion: np.ndarray  # (N, steps + 1)

    @property
    def deletion_auc(self) -> np.ndarray:
        """Per image area under the deletion curve (lower: the map found the evidence)."""
        return np.trapezoid(self.deletion, self.fractions, axis=1)

    @property
    def insertion_auc(self) -> np.ndarray:
        """Per image area under the insertion curve (higher: the map found the evidence)."""
        return np.trapezoid(self.insertion, self.fractions, axis=1)


def deletion_insertion(
    predict: Predict,
    images: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    *,
    steps: int = DEFAULT_STEPS,
    blur_sigma: float = BLUR_SIGMA,
    seed: int = 0,
    chunk: int = 4096,
) -> CurveResult:
    """Deletion and insertion curves of ``maps`` for class ``targets`` (RISE, blurred baseline).

    At step ``k`` the ``k/steps`` most important pixels (all three channels) are replaced by
    the blurred image (deletion) or are the only ones taken from the image, the rest
    blurred (insertion). All steps of all images are predicted in batches of ``chunk``.
    """
    images, maps, targets = _check_maps(images, maps, targets)
    if steps < 2:
        raise CifarkitError(f"steps={steps} is too few; use at least 2 (e.g. 16)")
    n, h, w = maps.shape
    pixels = h * w
    order = pixel_order(maps, seed)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(pixels)[None, :].repeat(n, axis=0), axis=1)
    rank = rank.reshape(n, h, w)
    base = blurred(images, blur_sigma)
    counts = np.round(np.linspace(0, pixels, steps + 1)).astype(np.int64)
    curves = {"deletion": np.zeros((n, steps + 1)), "insertion": np.zeros((n, steps + 1))}
    per_chunk = max(1, chunk // (steps + 1))
    for start in range(0, n, per_chunk):
        part = slice(start, min(n, start + per_chunk))
        chosen = rank[part][:, None] < counts[None, :, None, None]  # (n, steps+1, h, w)
        chosen = chosen[..., None]
        x, b = images[part][:, None], base[part][:, None]
        m = part.stop - part.start
        for kind, stacked in (
            ("deletion", np.where(chosen, b, x)),
            ("insertion", np.where(chosen, x, b)),
        ):
            probs = predict(stacked.reshape(-1, h, w, 3).astype(np.float32)).reshape(
                m, steps + 1, -1
            )
            curves[kind][part] = np.take_along_axis(probs, targets[part][:, None, None], axis=2)[
                ..., 0
            ]
    return CurveResult(counts / pixels, curves["deletion"], curves["insertion"])


# --------------------------------------------------------------------------- Average Drop / Increase


@dataclass(frozen=True)
class DropResult:
    """Per image: probability of the target class on the image and on the map-masked image."""

    original: np.ndarray
    masked: np.ndarray

    @property
    def drop(self) -> np.ndarray:
        """Per image ``max(0, Y - O) / Y`` in percent (Average Drop is its mean)."""
        return (
            100.0 * np.maximum(0.0, self.original - self.masked) / np.maximum(self.original, 1e-12)
        )

    @property
    def increase(self) -> np.ndarray:
        """Per image 100 if the masked image raises the probability, else 0 (IC is the mean)."""
        return 100.0 * (self.masked > self.original)


def average_drop_increase(
    predict: Predict,
    images: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    *,
    fill: str = "black",
    blur_sigma: float = BLUR_SIGMA,
) -> DropResult:
    """Average Drop / Increase in Confidence: the image weighted by its map, ``I * L``.

    ``fill="black"`` is the definition of Chattopadhay et al.; ``fill="blur"`` blends the
    blurred image in where the map is low (``I * L + blur(I) * (1 - L)``).
    """
    images, maps, targets = _check_maps(images, maps, targets)
    if fill not in ("black", "blur"):
        raise CifarkitError(f"fill={fill!r} is not supported; use 'black' or 'blur'")
    weight = np.clip(maps, 0.0, 1.0)[..., None]
    masked = images * weight
    if fill == "blur":
        masked = masked + blurred(images, blur_sigma) * (1.0 - weight)
    rows = np.arange(len(images))
    original = predict(images)[rows, targets]
    return DropResult(original, predict(masked.astype(np.float32))[rows, targets])


# --------------------------------------------------------------------------- randomisation check


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps ``a[i]``, ``b[i]``.

    Pearson correlation of the average ranks (``scipy.stats.rankdata``), vectorised over
    maps. A constant map (e.g. a CAM the ReLU zeroed) has no ranking: against a map that
    has one the correlation is 0; two constant maps count as identical (1), which can only
    make a map look *less* sensitive to randomisation, never more.
    """
    from scipy.stats import rankdata

    ra = rankdata(np.asarray(a, np.float64).reshape(len(a), -1), axis=1)
    rb = rankdata(np.asarray(b, np.float64).reshape(len(b), -1), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    flat_a, flat_b = (ra**2).sum(axis=1) == 0, (rb**2).sum(axis=1) == 0
    out = np.where(flat_a & flat_b, 1.0, 0.0)
    ok = denom > 0
    out[ok] = (ra[ok] * rb[ok]).sum(axis=1) / denom[ok]
    return out


def cascade_groups(model) -> list[tuple[str, list[str]]]:
    """Weighted layers grouped by block (``logits``, ``stage3_block3``, ..., ``stem``), top first."""
    groups: dict[str, list[str]] = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name == "normalize":  # fixed preprocessing, not learned
            continue
        match = re.match(r"(stage\d+_block\d+|block\d+|stem|logits)", layer.name)
        key = match[1] if match else layer.name.split("_")[0]
        groups.setdefault(key, []).append(layer.name)
    return list(reversed(groups.items()))


def _reinitialise(layer, seed: int) -> None:
    """Draw the layer's trainable weights afresh from its own initialisers (seeded).

    Non-trainable state (batch-norm moving statistics) is kept, as in Adebayo et al.
    """
    import keras

    for attr in ("kernel", "depthwise_kernel", "bias", "gamma", "beta"):
        variable = getattr(layer, attr, None)
        initializer = getattr(layer, f"{attr}_initializer", None)
        if variable is None or initializer is None:
            continue
        config = initializer.get_config()
        if "seed" in config:
            initializer = type(initializer).from_config({**config, "seed": seed})
        value = initializer(tuple(variable.shape), dtype=variable.dtype)
        variable.assign(keras.ops.convert_to_numpy(value))
        seed += 1


def randomisation_check(
    model,
    images: np.ndarray,
    targets: np.ndarray,
    map_fn: Callable[[object, np.ndarray, np.ndarray], np.ndarray],
    *,
    seed: int = 0,
    max_groups: int | None = None,
) -> pd.DataFrame:
    """Cascading model-parameter randomisation (Adebayo et al. 2018), top layer first.

    ``map_fn(model, images, targets)`` computes maps; it is called on the original model,
    then on a copy after each further block is re-initialised (``logits``, the last
    block, ...). Returns one row per step: ``step`` (0 = none), ``randomised`` (the block
    just re-initialised), ``spearman`` (mean over images), ``low``/``high`` (bootstrap CI).
    The original model is never modified.
    """
    import keras

    images = np.asarray(images, np.float32)
    reference = map_fn(model, images, targets)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    rows = [_spearman_row(0, "none", reference, reference)]
    groups = cascade_groups(clone)[:max_groups]
    for step, (group, names) in enumerate(groups, start=1):
        for i, name in enumerate(names):
            _reinitialise(clone.get_layer(name), seed * 100_003 + step * 101 + i * 7)
        rows.append(_spearman_row(step, group, reference, map_fn(clone, images, targets)))
        log.info(
            "randomisation: %s re-initialised, mean Spearman %.3f", group, rows[-1]["spearman"]
        )
    return pd.DataFrame(rows)


def _spearman_row(step: int, group: str, reference: np.ndarray, maps: np.ndarray) -> dict:
    rho = spearman_rows(reference, maps)
    ci = bootstrap_mean_ci(rho) or (float("nan"), float("nan"))
    return {
        "step": step,
        "randomised": group,
        "spearman": float(rho.mean()),
        "low": ci[0],
        "high": ci[1],
        "n": len(rho),
    }


# --------------------------------------------------------------------------- summaries


METRICS: dict[str, tuple[str, bool]] = {
    # name -> (label, lower is better)
    "deletion_auc": ("deletion AUC", True),
    "insertion_auc": ("insertion AUC", False),
    "average_drop": ("Average Drop (%)", True),
    "increase_confidence": ("Increase in Confidence (%)", False),
}


@dataclass
class MethodScores:
    """Per-image faithfulness values of one map method (same images, same order, for every method)."""

    method: str
    values: dict[str, np.ndarray] = field(default_factory=dict)
    curves: CurveResult | None = None


def score_maps(
    predict: Predict,
    images: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    method: str,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
) -> MethodScores:
    """Every faithfulness metric of one set of maps (deletion/insertion AUC, AD, IC)."""
    curves = deletion_insertion(predict, images, maps, targets, steps=steps, seed=seed)
    drop = average_drop_increase(predict, images, maps, targets)
    return MethodScores(
        method,
        {
            "deletion_auc": curves.deletion_auc,
            "insertion_auc": curves.insertion_auc,
            "average_drop": drop.drop,
            "increase_confidence": drop.increase,
        },
        curves,
    )


def summary_table(scores: Sequence[MethodScores], confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Long table: method, metric, mean, bootstrap CI (``low``, ``high``) and ``n`` images."""
    rows = []
    for item in scores:
        for metric, values in item.values.items():
            ci = bootstrap_mean_ci(values, confidence) or (float("nan"), float("nan"))
            rows.append(
                {
                    "method": item.method,
                    "metric": metric,
                    "mean": float(np.mean(values)),
                    "low": ci[0],
                    "high": ci[1],
                    "n": len(values),
                }
            )
    return pd.DataFrame(rows, columns=["method", "metric", "mean", "low", "high", "n"])


def wide_table(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """One row per method, one column per metric: ``mean [low, high]`` strings for display."""
    text = summary.assign(
        value=[
            f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
            for m, lo, hi in zip(summary["mean"], summary["low"], summary["high"], strict=True)
        ]
    )
    wide = text.pivot(index="method", columns="metric", values="value")
    order = list(dict.fromkeys(summary["method"]))
    columns = [m for m in METRICS if m in wide.columns]
    return wide.loc[order, columns].rename(columns={m: METRICS[m][0] for m in columns})


@dataclass(frozen=True)
class MethodComparison:
    """Method minus baseline on the same images, for one metric."""

    method: str
    baseline: str
    metric: str
    method_mean: float
    baseline_mean: float
    diff: float
    low: float | None
    high: float | None
    n: int

    @property
    def lower_is_better(self) -> bool:
        return METRICS[self.metric][1]

    @property
    def verdict(self) -> str:
        """``"better"``, ``"worse"`` or ``"indistinguishable"`` (bootstrap CI of the difference vs 0)."""
        if self.low is None or self.low <= 0 <= self.high:
            return "indistinguishable"
        improved = self.high < 0 if self.lower_is_better else self.low > 0
        return "better" if improved else "worse"


def compare(
    scores: Mapping[str, MethodScores],
    method: str,
    baseline: str,
    metric: str,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> MethodComparison:
    """Per-image paired difference ``method - baseline`` with a percentile bootstrap interval."""
    a, b = scores[baseline].values[metric], scores[method].values[metric]
    paired = paired_comparison(a, b, confidence=confidence, seed=seed)
    return MethodComparison(
        method,
        baseline,
        metric,
        float(np.mean(b)),
        float(np.mean(a)),
        paired.mean_diff,
        paired.boot_low,
        paired.boot_high,
        len(a),
    )


def describe_comparison(
    c: MethodComparison,
    method_label: str | None = None,
    baseline_label: str | None = None,
    digits: int = 3,
) -> str:
    """One sentence whose claim follows the interval: better, worse, or not distinguishable."""
    label = method_label or c.method
    base = baseline_label or (f"{c.baseline} map" if "random" in c.baseline else c.baseline)
    metric, lower = METRICS[c.metric]
    values = f"{c.method_mean:.{digits}f} vs {c.baseline_mean:.{digits}f}"
    interval = (
        "no interval"
        if c.low is None
        else f"difference {c.diff:+.{digits}f}, 95% bootstrap CI [{c.low:+.{digits}f}, {c.high:+.{digits}f}], "
        f"{c.n} images"
    )
    if c.verdict == "indistinguishable":
        return (
            f"{label}'s {metric} is not distinguishable from the {base}'s ({values}; {interval})."
        )
    direction = "lower" if c.diff < 0 else "higher"
    quality = "better" if c.verdict == "better" else "worse"
    return (
        f"{label}'s {metric} is {direction} than the {base}'s ({values}; {interval}): "
        f"{quality} than {'a map without information' if 'random' in c.baseline else 'it'}."
    )
