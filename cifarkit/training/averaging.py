"""Weight averaging during training: Keras' fixed-momentum EMA and airbench's lookahead."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from cifarkit.core.config import EmaConfig


def ema_options(ema: EmaConfig | None) -> dict[str, Any]:
    """Trick: EMA (or lookahead, when overwriting) as Keras optimizer arguments (``use_ema``),
    for ``ramp: none``; ``ramp: cubic`` is :class:`Lookahead`, a callback. The fixed momentum drags
    training from the first step: the validation curves (``history.csv``) of the full fast
    recipe with ``--set train.ema.ramp=none`` beside the default's show how much."""
    if ema is None or ema.ramp != "none":
        return {}
    return {
        "use_ema": True,
        "ema_momentum": ema.momentum,
        "ema_overwrite_frequency": ema.overwrite_every,
    }


def lookahead_decay(step: int, total_steps: int, momentum: float, every: int) -> float:
    """airbench's lookahead decay at ``step``: ``momentum**every * (step / total)**3``."""
    return float(momentum**every * (min(step, total_steps) / total_steps) ** 3)


class Lookahead(keras.callbacks.Callback):
    """Trick: airbench's lookahead. Every ``every`` steps the average moves toward the weights,
    ``avg += (1 - d) * (w - avg)`` with ``d =`` :func:`lookahead_decay`, and the weights are set
    to it. Its gain over no averaging is the ``+ lookahead`` step of ``cifarkit bench ladder``;
    its larger effect is against Keras' fixed-momentum EMA (see :func:`ema_options`).

    Keras' ``use_ema`` has a fixed momentum, so its average pulls the weights back from the
    first step on; airbench's decay ramps from 0 as (t/T)^3 and only averages near the end,
    hence this callback. It covers every float variable (BatchNorm statistics included, as
    airbench does). It also syncs at the last step of each epoch, before validation and the
    checkpoint, so weights and average agree at every epoch boundary and a resumed run
    (average re-seeded from the restored weights) matches an uninterrupted one exactly.
    """

    def __init__(self, momentum: float, every: int, steps_per_epoch: int, epochs: int) -> None:
        super().__init__()
        self.momentum, self.every = momentum, every
        self.steps_per_epoch, self.total_steps = steps_per_epoch, steps_per_epoch * epochs
        self._epoch = 0
        self._variables: list[Any] = []
        self._average: list[np.ndarray] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._variables = [v for v in self.model.variables if "float" in str(v.dtype)]
        self._average = [np.array(v.numpy(), copy=True) for v in self._variables]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = self._epoch * self.steps_per_epoch + batch + 1
        if step % self.every and batch + 1 != self.steps_per_epoch:
            return
        keep = lookahead_decay(step, self.total_steps, self.momentum, self.every)
        for variable, average in zip(self._variables, self._average, strict=True):
            average += (1.0 - keep) * (variable.numpy() - average)
            variable.assign(average)


def lookahead_callbacks(
    ema: EmaConfig | None, steps_per_epoch: int, epochs: int
) -> list[keras.callbacks.Callback]:
    """``[Lookahead(...)]`` for ``ramp: cubic``, else ``[]`` (Keras' ``use_ema`` needs no callback)."""
    if ema is None or ema.ramp != "cubic":
        return []
    return [Lookahead(ema.momentum, int(ema.overwrite_every or 1), steps_per_epoch, epochs)]
