"""The interpretability study as the chapter runs it: sample sizes, image subsets, the
faithfulness comparison of many methods, the randomisation check of several, and the
sentences that report them. Notebooks call these and display; nothing here draws."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cifarkit.core.errors import CifarkitError
from cifarkit.interpret import faithfulness as F
from cifarkit.interpret.cams import METHOD_LABELS, Explainer, predicted_classes

log = logging.getLogger(__name__)

FULL = {
    "faithfulness": 500,
    "randomisation": 100,
    "training": 200,
    "steps": 16,
    "smooth_samples": 20,
}
# CI-sized (the smoke book): enough images and steps to run every method and metric, no more;
# the chapter's cost grows with images x steps x methods.
SMALL = {"faithfulness": 16, "randomisation": 8, "training": 16, "steps": 6, "smooth_samples": 4}
# The default book's, on 2 cores: FULL (five times as many images) would outlast the whole cold build.
CPU = {"faithfulness": 100, "randomisation": 24, "training": 48, "steps": 12, "smooth_samples": 10}


@dataclass(frozen=True)
class Sizes:
    """Images per part of the chapter, deletion/insertion steps and SmoothGrad samples."""

    faithfulness: int
    randomisation: int
    training: int
    show: int
    steps: int
    smooth_samples: int


def chapter_sizes(
    cfg,
    *,
    n_faithfulness: int | None = None,
    n_randomisation: int | None = None,
    n_training: int | None = None,
    n_show: int = 6,
    steps: int | None = None,
    smooth_samples: int | None = None,
) -> Sizes:
    """The chapter's sizes for a profile: :data:`CPU` under ``cpu``; otherwise :data:`FULL` when
    it uses the whole test set and :data:`SMALL` (CI-sized) when it keeps a slice of it
    (smoke); explicit values win and image counts are capped at the test set's size."""
    limit = cfg.data.test_limit
    test_n = 10_000 if limit is None else limit
    base = CPU if cfg.profile == "cpu" else FULL if limit is None or limit >= 5000 else SMALL
    given = {
        "faithfulness": n_faithfulness,
        "randomisation": n_randomisation,
        "training": n_training,
        "steps": steps,
        "smooth_samples": smooth_samples,
    }
    values = {k: v if v is not None else base[k] for k, v in given.items()}
    values["show"] = n_show
    for name, value in values.items():
        if value < 2:
            raise CifarkitError(f"{name}={value} is too small; use at least 2")
    for name in ("faithfulness", "randomisation", "training", "show"):
        values[name] = min(values[name], test_n)
    return Sizes(**values)


def sample_indices(n_total: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct positions out of ``n_total``, seeded, in ascending order."""
    if n > n_total:
        raise CifarkitError(f"cannot sample {n} images from {n_total}; lower the sample size")
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))


def method_key(method: str, layer: str | None = None) -> str:
    """Display name of a (method, layer) pair, e.g. ``Grad-CAM @stage3``."""
    label = METHOD_LABELS.get(method, method)
    return label if layer is None else f"{label} @{layer}"


# --------------------------------------------------------------------------- faithfulness


@dataclass
class FaithfulnessStudy:
    """Per-image scores of every method and baseline on the same images and targets."""

    scores: dict[str, F.MethodScores]
    summary: pd.DataFrame
    maps: dict[str, np.ndarray]
    targets: np.ndarray

    def comparison(self, method: str, baseline: str, metric: str) -> F.MethodComparison:
        return F.compare(self.scores, method, baseline, metric)

    def sentence(self, method: str, baseline: str, metric: str) -> str:
        return F.describe_comparison(self.comparison(method, baseline, metric))

    def verdicts(self, method: str) -> dict[str, str]:
        """``{"deletion_auc vs random": "better", ...}`` for the two AUCs and both baselines."""
        return {
            f"{m} vs {b}": self.comparison(method, b, m).verdict
            for m in ("deletion_auc", "insertion_auc")
            for b in ("random", "blurred random")
        }


def faithfulness_study(
    model,
    images: np.ndarray,
    methods: Sequence[tuple[str, str | None]],
    *,
    targets: np.ndarray | None = None,
    steps: int = F.DEFAULT_STEPS,
    seed: int = 0,
    explainer: Explainer | None = None,
) -> FaithfulnessStudy:
    """Deletion/insertion AUC, AD and IC of each ``(method, layer)`` and of the random and
    blurred-random baselines, for the predicted class unless ``targets`` are given."""
    images = np.asarray(images, np.float32)
    explainer = explainer or Explainer(model, seed=seed)
    targets = predicted_classes(model, images) if targets is None else np.asarray(targets, np.int64)
    maps = {method_key(m, layer): explainer.maps(images, targets, m, layer) for m, layer in methods}
    maps["random"] = F.random_maps(len(images), images.shape[1], seed)
    maps["blurred random"] = F.blurred_random_maps(len(images), images.shape[1], seed)
    predict = F.model_probabilities(model)
    scores = {}
    for key, m in maps.items():
        scores[key] = F.score_maps(predict, images, m, targets, key, steps=steps, seed=seed)
        log.info("faithfulness of %s done", key)
    return FaithfulnessStudy(scores, F.summary_table(list(scores.values())), maps, targets)


def verdict_table(study: FaithfulnessStudy) -> pd.DataFrame:
    """One row per method: better / worse / indistinguishable than each baseline, per AUC."""
    rows = {key: study.verdicts(key) for key in study.scores if "random" not in key}
    return pd.DataFrame(rows).T


# --------------------------------------------------------------------------- randomisation


def randomisation_study(
    model, images: np.ndarray, methods: Sequence[tuple[str, str | None]], *, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Cascading randomisation for each ``(method, layer)``, maps for the trained model's prediction."""
    targets = predicted_classes(model, images)
    out = {}
    explainers: dict[int, tuple[object, Explainer]] = {}  # one per model object (keeps it alive)
    for method, layer in methods:

        def map_fn(m, x, t, method=method, layer=layer):
            if id(m) not in explainers:
                explainers[id(m)] = (m, Explainer(m, seed=seed))
            return explainers[id(m)][1].maps(x, t, method, layer)

        out[method_key(method, layer)] = F.randomisation_check(
            model, images, targets, map_fn, seed=seed
        )
    return out


def describe_randomisation(table: pd.DataFrame, label: str, digits: int = 2) -> str:
    """What the randomisation check shows for one method, in words that follow the interval."""
    first, last = table.iloc[1], table.iloc[-1]
    values = (
        f"mean Spearman ρ {first['spearman']:.{digits}f} after re-initialising `{first['randomised']}` and "
        f"{last['spearman']:.{digits}f} [{last['low']:.{digits}f}, {last['high']:.{digits}f}] with every "
        f"block re-initialised, {int(last['n'])} images"
    )
    if last["high"] < 0.5:
        verdict = "its maps depend on the learned weights, as a faithful explanation must"
    elif last["low"] > 0.5:
        verdict = "its maps survive the loss of the learned weights largely unchanged, so they show the image more than the model"
    else:
        verdict = "the check is inconclusive at this sample size"
    return f"{label}: {values}; {verdict}."
