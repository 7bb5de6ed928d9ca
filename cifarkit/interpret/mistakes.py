"""Misclassifications: maps for the predicted and the true class on the same images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cifarkit.evaluation.metrics import confusion, confusion_pairs, pair_mistakes


@dataclass(frozen=True)
class PairMaps:
    """For one confused pair: the images, their labels and both classes' maps."""

    pair: tuple[str, str]
    index: np.ndarray  # positions in the evaluated set (test-set order)
    true: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray  # probability of the (wrong) prediction
    map_predicted: np.ndarray
    map_true: np.ndarray


def worst_pair_mistakes(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    n_pairs: int = 3,
    per_pair: int = 4,
) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """The ``n_pairs`` most confused class pairs and each one's ``per_pair`` most confident mistakes."""
    pairs = confusion_pairs(confusion(probs, labels), class_names, n=n_pairs)
    return [
        (
            (row.a, row.b),
            pair_mistakes(probs, labels, int(row.a_index), int(row.b_index), n=per_pair),
        )
        for row in pairs.itertuples()
    ]


def pair_maps(
    explainer,
    images: np.ndarray,
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    method: str = "gradcam",
    layer: str | None = None,
    n_pairs: int = 3,
    per_pair: int = 4,
) -> list[PairMaps]:
    """For the worst confusion pairs, maps of the predicted and of the true class per mistake."""
    out = []
    for pair, rows in worst_pair_mistakes(
        probs, labels, class_names, n_pairs=n_pairs, per_pair=per_pair
    ):
        if rows.empty:
            continue
        index = rows.index.to_numpy()
        true, predicted = rows["true"].to_numpy(), rows["predicted"].to_numpy()
        chosen = images[index]
        out.append(
            PairMaps(
                pair,
                index,
                true,
                predicted,
                rows["confidence"].to_numpy(),
                explainer.maps(chosen, predicted, method, layer),
                explainer.maps(chosen, true, method, layer),
            )
        )
    return out
