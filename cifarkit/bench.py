"""Throughput benchmark: the model alone on synthetic tensors vs the real input pipeline.

(a) feeds one cached synthetic batch over and over, so it measures the model's training
step only; (b) feeds the real uint8 ``tf.data`` pipeline with augmentation. The ratio
(b)/(a) says whether the input pipeline slows training (goal: >= 0.95 here).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Throughput:
    model: str
    batch_size: int
    steps: int
    synthetic_img_s: float
    pipeline_img_s: float

    @property
    def ratio(self) -> float:
        return self.pipeline_img_s / self.synthetic_img_s

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def _timed_fit(model, dataset, steps: int, warmup: int) -> float:
    """Images per second over ``steps`` batches after ``warmup`` untimed ones."""
    import keras

    stamps: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[Clock()])
    return (stamps[-1] - stamps[warmup - 1]) / steps


def throughput(experiment: str = "resnet20", profile: str = "cpu", *, batch_size: int | None = None,
               steps: int = 40, warmup: int = 8) -> Throughput:
    import tensorflow as tf

    from cifarkit.config import load_config
    from cifarkit.data import splits_from_config
    from cifarkit.data.pipeline import train_dataset
    from cifarkit.models import build_model
    from cifarkit.recipe import compile_model, coupled_l2
    from cifarkit.repro import set_seeds

    cfg = load_config(experiment, profile)
    batch = batch_size or cfg.train.batch_size
    splits = splits_from_config(cfg.data)
    names = splits.class_names

    def fresh_model():
        set_seeds(0, deterministic=cfg.train.deterministic)
        model = build_model(cfg.model, num_classes=len(names), l2=coupled_l2(cfg.train))
        compile_model(model, cfg.train, steps_per_epoch=100, class_names=names)
        return model

    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (batch, 32, 32, 3)).astype(np.float32))
    labels = tf.one_hot(rng.integers(0, len(names), batch), len(names))
    synthetic = tf.data.Dataset.from_tensors((images, labels)).repeat()
    log.info("timing %s on synthetic batches of %d (%d steps)...", cfg.name, batch, steps)
    seconds_a = _timed_fit(fresh_model(), synthetic, steps, warmup)

    epochs = -(-(warmup + steps) * batch // len(splits.x_train)) + 1
    real = train_dataset(splits.x_train, splits.y_train, num_classes=len(names), batch_size=batch, seed=0,
                         start_epoch=0, epochs=epochs, aug=cfg.train.augment)
    log.info("timing %s on the real pipeline with augmentation (%d steps)...", cfg.name, steps)
    seconds_b = _timed_fit(fresh_model(), real, steps, warmup)
    return Throughput(cfg.model.name, batch, steps, batch / seconds_a, batch / seconds_b)
