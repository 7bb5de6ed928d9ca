"""Progress reporting: a per-epoch bar with ETA and one log line per finished epoch."""

from __future__ import annotations

import logging
import time

import keras
from tqdm import tqdm

log = logging.getLogger(__name__)


def _fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class EpochProgress(keras.callbacks.Callback):
    """A tqdm bar over each epoch's batches, and ``epoch i/N  loss ... val_acc ... ETA`` lines.

    The bar goes to stderr and hides itself when stderr is not a terminal (logs stay).
    """

    def __init__(self, total_epochs: int, steps_per_epoch: int, label: str = "") -> None:
        super().__init__()
        self.total_epochs, self.steps, self.label = total_epochs, steps_per_epoch, label
        self.bar: tqdm | None = None
        self.epoch_times: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()
        self.bar = tqdm(
            total=self.steps,
            desc=f"{self.label}epoch {epoch + 1}/{self.total_epochs}",
            unit="batch",
            leave=False,
            disable=None,
            dynamic_ncols=True,
        )

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if logs and batch % 10 == 0:
                self.bar.set_postfix(
                    loss=f"{float(logs.get('loss', float('nan'))):.3f}", refresh=False
                )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
        took = time.perf_counter() - self.started
        self.epoch_times.append(took)
        remaining = (self.total_epochs - epoch - 1) * (
            sum(self.epoch_times) / len(self.epoch_times)
        )
        logs = logs or {}
        # An epoch without a validation pass (train.validate_every) says so instead of "nan".
        val = (
            f"val_loss {logs['val_loss']:.4f}  val_acc {logs.get('val_accuracy', float('nan')):.4f}"
            if "val_loss" in logs
            else "not validated"
        )
        log.info(
            "%sepoch %d/%d  loss %.4f  acc %.4f  %s  %.1fs  ETA %s",
            self.label,
            epoch + 1,
            self.total_epochs,
            logs.get("loss", float("nan")),
            logs.get("accuracy", float("nan")),
            val,
            took,
            _fmt_seconds(remaining),
        )
