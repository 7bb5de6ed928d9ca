"""Learning-rate schedules Keras does not ship: airbench's triangle."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from cifarkit.core.config import ScheduleConfig


@keras.saving.register_keras_serializable(package="cifarkit")
class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """Piecewise-linear LR: ``start * peak_lr`` -> ``peak_lr`` at ``peak_at`` of training ->
    ``end * peak_lr`` at the last step (airbench's ``triangle``). Keras has only constant
    pieces (``PiecewiseConstantDecay``) and warmup+cosine, so this is written out."""

    def __init__(
        self,
        peak_lr: float,
        total_steps: int,
        start: float = 0.2,
        peak_at: float = 0.23,
        end: float = 0.07,
    ) -> None:
        self.peak_lr, self.total_steps = float(peak_lr), int(total_steps)
        self.start, self.peak_at, self.end = float(start), float(peak_at), float(end)

    def __call__(self, step: Any) -> Any:
        t = ops.cast(step, "float32") / max(self.total_steps, 1)
        rise = self.start + (1.0 - self.start) * t / self.peak_at
        fall = 1.0 + (self.end - 1.0) * (t - self.peak_at) / (1.0 - self.peak_at)
        factor = ops.where(t < self.peak_at, rise, ops.maximum(fall, self.end))
        return self.peak_lr * factor

    def get_config(self) -> dict[str, Any]:
        return {
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "start": self.start,
            "peak_at": self.peak_at,
            "end": self.end,
        }


def triangular_schedule(peak_lr: float, total_steps: int, sched: ScheduleConfig) -> Triangular:
    """Trick: triangular LR (airbench): rise to the peak at ``triangle_peak`` of training, then fall.

    What it gains against one-cycle is the ``+ triangular LR`` step of ``cifarkit bench ladder``.
    """
    return Triangular(
        peak_lr,
        total_steps,
        start=sched.triangle_start,
        peak_at=sched.triangle_peak,
        end=sched.final_lr_fraction,
    )
