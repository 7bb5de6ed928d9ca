"""Learning-rate range test (Smith 2017): an exponential LR sweep, loss vs LR, a suggestion.

Runs a few hundred optimizer steps of the experiment's own model, optimizer and data with
the learning rate raised exponentially from ``min_lr`` to ``max_lr``, stops once the
smoothed loss exceeds four times its minimum, and suggests the LR where the smoothed loss
falls fastest (and, for comparison, a tenth of the LR at the minimum). Results are cached
under ``artifacts/lrfind/`` keyed like a run, so asking twice costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import cifarkit
from cifarkit.core.atomic import write_json
from cifarkit.core.config import ExperimentConfig
from cifarkit.core.paths import artifacts_dir

log = logging.getLogger(__name__)


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # raw per-batch training loss
    smoothed: list[float]  # bias-corrected exponential moving average (beta 0.98)
    suggested_lr: float  # steepest descent of the smoothed loss
    min_loss_lr_over_10: float  # the classic "minimum / 10" rule
    stopped_early: bool
    folder: str = ""


def _smooth(losses: np.ndarray, beta: float = 0.98) -> np.ndarray:
    avg, out = 0.0, []
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return np.asarray(out)


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """(steepest-descent LR, LR at the minimum / 10) of a smoothed loss curve."""
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    upto = int(np.argmin(smoothed)) + 1
    skip = max(1, upto // 10)  # the first steps are noise-dominated
    if upto - skip >= 3:
        slope = np.gradient(smoothed[skip:upto], np.log(lrs[skip:upto]))
        steepest = float(lrs[skip:upto][int(np.argmin(slope))])
    else:
        steepest = float(lrs[max(upto - 1, 0)] / 10)
    return steepest, float(lrs[upto - 1] / 10)


def cache_folder(
    cfg: ExperimentConfig, seed: int, data_hash: str, min_lr: float, max_lr: float, steps: int
) -> Path:
    identity = {
        "config": cfg.identity(),
        "seed": seed,
        "data": data_hash,
        "cifarkit": cifarkit.__version__,
        "sweep": [min_lr, max_lr, steps],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return artifacts_dir() / "lrfind" / f"{cfg.name}-{digest}"


def lr_find(
    cfg: ExperimentConfig,
    seed: int = 0,
    *,
    min_lr: float = 1e-5,
    max_lr: float = 10.0,
    steps: int = 200,
) -> LRFindResult:
    """The cached LR range test of ``cfg`` (computed on first call)."""
    from cifarkit.data.identity import data_hash_for

    folder = cache_folder(cfg, seed, data_hash_for(cfg.data), min_lr, max_lr, steps)
    result_file = folder / "result.json"
    if result_file.exists():
        log.info("LR finder cached: %s", folder)
        return LRFindResult(**{**json.loads(result_file.read_text()), "folder": str(folder)})
    result = _sweep(cfg, seed, min_lr, max_lr, steps)
    result.folder = str(folder)
    write_json(result_file, asdict(result))  # written last: its presence marks a complete result
    return result


def _sweep(
    cfg: ExperimentConfig, seed: int, min_lr: float, max_lr: float, steps: int
) -> LRFindResult:
    import keras

    from cifarkit.core.progress import EpochProgress
    from cifarkit.core.repro import set_seeds
    from cifarkit.data import splits_from_config
    from cifarkit.data.pipeline import train_dataset
    from cifarkit.models import build_model
    from cifarkit.training.recipe import coupled_l2, make_loss

    splits = splits_from_config(cfg.data)
    set_seeds(seed, deterministic=cfg.train.deterministic)
    model = build_model(cfg.model, num_classes=len(splits.class_names), l2=coupled_l2(cfg.train))
    opt_cfg = cfg.train.optimizer
    optimizer = (
        keras.optimizers.SGD(min_lr, momentum=opt_cfg.momentum, nesterov=opt_cfg.nesterov)
        if opt_cfg.name == "sgd"
        else keras.optimizers.AdamW(min_lr, weight_decay=opt_cfg.weight_decay)
    )
    model.compile(optimizer=optimizer, loss=make_loss(cfg.train.loss), jit_compile=False)
    lrs = np.geomspace(min_lr, max_lr, steps)
    batches_per_epoch = -(-len(splits.x_train) // cfg.train.batch_size)
    epochs_needed = -(-steps // batches_per_epoch)
    data = train_dataset(
        splits.x_train,
        splits.y_train,
        num_classes=len(splits.class_names),
        batch_size=cfg.train.batch_size,
        seed=seed,
        start_epoch=0,
        epochs=epochs_needed,
        aug=cfg.train.augment,
    )
    sweep = _sweep_callback(keras, lrs)
    model.fit(
        data,
        epochs=1,
        steps_per_epoch=steps,
        verbose=0,
        shuffle=False,
        callbacks=[sweep, EpochProgress(1, steps, label="LR sweep: ")],
    )
    losses = np.asarray(sweep.losses)
    smoothed = _smooth(losses)
    used = lrs[: len(losses)]
    steepest, min_over_10 = suggest(used, smoothed)
    log.info("LR finder: steepest descent at %.3g, minimum/10 at %.3g", steepest, min_over_10)
    return LRFindResult(
        used.tolist(),
        losses.tolist(),
        smoothed.tolist(),
        steepest,
        min_over_10,
        stopped_early=len(losses) < steps,
    )


def _sweep_callback(keras, lrs: np.ndarray):
    """A callback that sets the LR before each batch and records per-batch losses."""

    class Sweep(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.losses: list[float] = []
            self._prev_mean, self.best = 0.0, float("inf")

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            self.model.optimizer.learning_rate.assign(float(lrs[batch]))

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            # Keras reports the running mean over the epoch; undo it to get this batch's loss.
            mean = float((logs or {})["loss"])
            loss = (batch + 1) * mean - batch * self._prev_mean
            self._prev_mean = mean
            self.losses.append(loss)
            smoothed = float(_smooth(np.asarray(self.losses))[-1])
            self.best = min(self.best, smoothed)
            if not np.isfinite(loss) or (batch > 10 and smoothed > 4 * self.best):
                self.model.stop_training = True

    return Sweep()
