"""Attention over training: maps and faithfulness of a fixed image set at each epoch snapshot.

The run must have been trained with ``train.snapshot_epochs``; the final model counts as
the last epoch. Maps are for the **true** class, so the target stays the same while the
predictions change from epoch to epoch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cifarkit.core.errors import CifarkitError
from cifarkit.interpret.cams import Explainer
from cifarkit.interpret.faithfulness import (
    DEFAULT_STEPS,
    blurred_random_maps,
    model_probabilities,
    random_maps,
    score_maps,
    summary_table,
)

log = logging.getLogger(__name__)


def snapshot_epochs(run) -> list[int]:
    """Epochs with a stored model: the snapshots plus the final epoch."""
    final = run.config().train.epochs
    epochs = sorted(set(run.snapshots()) | {final})
    if len(epochs) < 2:
        raise CifarkitError(
            f"run {run.path.name} has no epoch snapshots; derive the config with "
            "overrides={'train.snapshot_epochs': [...]} and train it"
        )
    return epochs


def _model_at(run, epoch: int):
    final = run.config().train.epochs
    return run.load_model(None if epoch == final else epoch)


@dataclass(frozen=True)
class TrainingAttention:
    """Maps per epoch (``maps[epoch]``: (N, H, W)) and a long faithfulness table per epoch."""

    epochs: list[int]
    maps: dict[int, np.ndarray]
    faithfulness: pd.DataFrame  # epoch, method, metric, mean, low, high, n


def attention_over_training(
    run,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    method: str = "gradcam",
    layer: str | None = None,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    batch_size: int = 200,
) -> TrainingAttention:
    """Maps of ``method`` at ``layer`` for the true class, and their faithfulness against the
    random and blurred-random baselines, at every stored epoch of ``run``."""
    epochs = snapshot_epochs(run)
    labels = np.asarray(labels, np.int64)
    baselines = {
        "random": random_maps(len(images), images.shape[1], seed),
        "blurred random": blurred_random_maps(len(images), images.shape[1], seed),
    }
    maps, tables = {}, []
    for epoch in epochs:
        model = _model_at(run, epoch)
        maps[epoch] = Explainer(model, batch_size=batch_size, seed=seed).maps(
            images, labels, method, layer
        )
        predict = model_probabilities(model)
        scores = [score_maps(predict, images, maps[epoch], labels, method, steps=steps, seed=seed)]
        scores += [
            score_maps(predict, images, m, labels, name, steps=steps, seed=seed)
            for name, m in baselines.items()
        ]
        tables.append(summary_table(scores).assign(epoch=epoch))
        log.info("epoch %d: maps and faithfulness done", epoch)
    table = pd.concat(tables, ignore_index=True)
    return TrainingAttention(
        epochs, maps, table[["epoch", *[c for c in table.columns if c != "epoch"]]]
    )
