"""Train one (config, seed) into a run directory: fit, checkpoint every epoch, resume, evaluate.

This module knows nothing about caching or locks (that is :mod:`cifarkit.runs`); it is
given a folder and fills it. Calling :func:`train_run` again on the same folder after a
crash resumes from the last finished epoch and, in deterministic mode, ends with the same
weights and metrics as an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cifarkit.core.config import ExperimentConfig, TrainConfig
from cifarkit.core.progress import EpochProgress
from cifarkit.core.repro import set_seeds
from cifarkit.data import Splits
from cifarkit.data.pipeline import (
    DeviceFeed,
    device_batches,
    steps_per_epoch,
    train_dataset,
)
from cifarkit.models import build_model, float32_model, init_from_data, predict_logits
from cifarkit.training import finetune
from cifarkit.training.averaging import lookahead_callbacks
from cifarkit.training.checkpoint import CheckpointManager, EpochReseed
from cifarkit.training.recipe import (
    class_weights,
    compile_model,
    coupled_l2,
    make_metrics,
    per_class_metric_name,
)

log = logging.getLogger(__name__)

#: Seconds an epoch's validation pass took, in its logs and history row (absent when not validated).
VALIDATION_SECONDS = "val_seconds"
#: Seconds of an epoch's training steps, tracing left out, in its logs and history row.
STEP_SECONDS = "step_seconds"
#: Seconds the first step of this process spent tracing the training function (in that epoch's row).
TRACE_SECONDS = "trace_seconds"
#: Seconds writing the epoch's checkpoint took (in the history the run ends with, not in the
#: checkpoint's own copy of it, which is written before the time is known).
CHECKPOINT_SECONDS = "checkpoint_seconds"
#: The history's timings: they differ between two runs that computed the same thing.
TIMING_KEYS = frozenset(
    {"epoch_seconds", VALIDATION_SECONDS, STEP_SECONDS, TRACE_SECONDS, CHECKPOINT_SECONDS}
)

EpochHook = Callable[[int, dict[str, float]], None]


@dataclass
class TrainOutcome:
    model: keras.Model
    history: list[dict[str, float]]
    test_logits: np.ndarray
    test_labels: np.ndarray
    val_logits: np.ndarray
    val_labels: np.ndarray
    metrics: dict[str, Any]
    resumed_from_epoch: int
    seconds: dict[str, float]  # time_split: steps, tracing, validation, test, checkpoints
    #: The last checkpoint's model file when it holds exactly ``model`` (not after Keras' EMA
    #: replaced the weights at the end): the run's model file can be a copy of it.
    model_file: Path | None = None


def configure_precision(cfg: ExperimentConfig) -> str:
    """Set Keras' global dtype policy for ``cfg.train.precision`` and return its name.

    The precision is already resolved (``auto`` became float32, bfloat16 or float16 when the
    config was loaded, :mod:`cifarkit.core.precision`). float16 without a GPU TensorFlow can
    use raises :class:`~cifarkit.core.errors.CifarkitError` instead of training in float32.
    """
    from cifarkit.core import precision

    precision.require_device(cfg.train.precision)
    if not precision.native_on_cpu(cfg.train.precision):
        log.warning(
            "train.precision is bfloat16 but this CPU has no native bfloat16 (avx512_bf16 or "
            "amx_bf16), so it is emulated and trains several times slower than float32; "
            "set train.precision: float32 (or auto)"
        )
    policy = precision.POLICIES[cfg.train.precision]
    keras.mixed_precision.set_global_policy(policy)
    return policy


def augment_on_gpu(cfg: TrainConfig) -> bool:
    """Whether the training images go on the GPU and are augmented there, batch by batch: with
    a GPU and ``batch`` augmentation (the same batches as the tf.data pipeline, see
    :func:`cifarkit.data.pipeline.device_batches`; ``per_image`` stays in tf.data)."""
    from cifarkit.core import precision

    return bool(precision.machine().gpus) and cfg.augment.mode == "batch"


def feed_from_device(model: keras.Model, feed: DeviceFeed) -> None:
    """Make ``model``'s training step take the batches of :func:`~cifarkit.data.pipeline.device_batches`:
    each batch's indices and seeds become its augmented images on the device
    (:meth:`DeviceFeed.batch`) before Keras' own step runs on them.

    Keras calls ``model.train_step`` when it builds the training function, so the step is set
    on this model object only: the saved model, the validation pass and prediction are as
    they were.
    """
    step = model.train_step

    def train_step(data):
        ids, *targets = data
        return step((feed.batch(ids), *targets))

    model.train_step = train_step


class _StepClock(keras.callbacks.Callback):
    """The epoch's training-step seconds (``step_seconds``) and, in the first epoch this process
    trains, what its first step spent tracing the training function (``trace_seconds``: that
    step's time less the epoch's median step), written into the epoch's logs.

    First in the callback list, so a step's clock stops before the other callbacks' work at
    its end; the batches are fetched inside the step, so the input pipeline's waits count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.traced = False
        self.times: list[float] = []
        self.step_started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.times = []

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.step_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.times.append(time.perf_counter() - self.step_started)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None or not self.times:
            return
        tracing = 0.0
        if not self.traced:
            tracing = max(0.0, self.times[0] - float(np.median(self.times)))
            self.traced = True
        logs[STEP_SECONDS] = sum(self.times) - tracing
        logs[TRACE_SECONDS] = tracing


class _Validation(keras.callbacks.Callback):
    """Each validated epoch's ``val_*`` figures, computed from the validation set's logits.

    Keras' own validation pass traces a second function (the compiled loss and every metric,
    per batch) and needs the per-class metrics compiled into the training step too, where
    they cost every step and a second of tracing (ResNet20: the training step's tracing 4.4
    → 3.9 s, the evaluation's 0.6-1.2 s gone, AVX-512 host). This callback, ahead of those
    that read the logs, predicts the validation images with the model's forward pass (traced once per
    model) and writes ``val_loss``, ``val_accuracy`` and the per-class recalls into the
    epoch's logs as Keras' pass would (the compiled loss, plus the regularisation losses,
    over the whole set), with the seconds it took (``val_seconds``), so the progress line,
    the time-to-accuracy clock, the checkpoint's history and MLflow see them.

    After the last epoch it predicts with the float32 model the run's stored logits come
    from (:func:`~cifarkit.models.float32_model`; the same model for a float32 run), keeps
    those logits for ``predictions.npz`` and the float32 model for the test set's prediction.
    """

    def __init__(
        self,
        x_val: np.ndarray,
        y_val: np.ndarray,
        num_classes: int,
        class_names: tuple[str, ...],
        cfg: TrainConfig,
    ) -> None:
        super().__init__()
        self.x_val, self.y_val, self.num_classes = x_val, y_val, num_classes
        self.class_names, self.last_epoch = class_names, cfg.epochs
        self.epochs = set(validation_epochs(cfg))
        self.logits: np.ndarray | None = None
        self.inference: keras.Model | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 not in self.epochs or logs is None:
            return
        started = time.perf_counter()
        if epoch + 1 == self.last_epoch:
            self.inference = float32_model(self.model)
            self.logits = logits = predict_logits(self.inference, self.x_val)
        else:
            logits = predict_logits(self.model, self.x_val)
        logs.update(
            validation_logs(self.model, logits, self.y_val, self.num_classes, self.class_names)
        )
        logs[VALIDATION_SECONDS] = time.perf_counter() - started


def validation_logs(
    model: keras.Model,
    logits: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    class_names: tuple[str, ...],
) -> dict[str, float]:
    """``val_*`` figures of ``logits`` as Keras' validation pass names and computes them."""
    onehot = keras.ops.one_hot(labels, num_classes)
    logits_t = keras.ops.convert_to_tensor(logits)
    loss = keras.ops.mean(model.loss(onehot, logits_t)) + sum(model.losses, keras.ops.zeros(()))
    out = {"val_loss": float(loss)}
    for metric in make_metrics(class_names):
        metric.update_state(onehot, logits_t)
        out[f"val_{metric.name}"] = float(metric.result())
    return out


class _CheckpointEachEpoch(keras.callbacks.Callback):
    """Append the epoch's logs to the history and write an atomic checkpoint."""

    def __init__(
        self,
        manager: CheckpointManager,
        history: list[dict[str, float]],
        snapshot_epochs: tuple[int, ...],
        snapshot_dir: Path,
        hooks: list[EpochHook],
        elapsed_before: float,
    ) -> None:
        super().__init__()
        self.manager, self.history, self.hooks = manager, history, hooks
        self.snapshot_epochs, self.snapshot_dir = set(snapshot_epochs), snapshot_dir
        self.elapsed_before = elapsed_before
        self.started = time.perf_counter()
        self.epoch_started = self.started

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        finished = epoch + 1
        row = {"epoch": finished, **{k: float(v) for k, v in (logs or {}).items()}}
        row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["epoch_seconds"] = time.perf_counter() - self.epoch_started
        self.history.append(row)
        snapshots = (
            (self.snapshot_dir / f"epoch-{finished:03d}.keras",)
            if finished in self.snapshot_epochs
            else ()
        )
        saving = time.perf_counter()
        elapsed = self.elapsed_before + saving - self.started
        self.manager.save(
            self.model,
            finished,
            {"history": self.history, "train_seconds": elapsed},
            copies=snapshots,
        )
        row[CHECKPOINT_SECONDS] = time.perf_counter() - saving
        for hook in self.hooks:
            hook(finished, row)


def train_run(
    cfg: ExperimentConfig,
    seed: int,
    run_dir: Path,
    splits: Splits,
    epoch_hooks: list[EpochHook] | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    source_model: Path | None = None,
) -> TrainOutcome:
    """Fit ``cfg`` with ``seed`` on ``splits``, checkpointing into ``run_dir/checkpoint``.

    ``callbacks`` are extra Keras callbacks (e.g. the time-to-accuracy clock of
    :mod:`cifarkit.bench.time_to_accuracy`), run before the checkpoint callback.
    ``source_model`` is the source run's ``model.keras`` for a transfer config with
    ``transfer.source_run``. The run's precision is Keras' global dtype policy while it
    trains; the caller's policy is back afterwards (a model built next in the same process,
    e.g. in a chapter, does not inherit a bfloat16 run's policy).
    """
    previous_policy = keras.mixed_precision.global_policy()
    try:
        return _train_run(cfg, seed, run_dir, splits, epoch_hooks, callbacks, source_model)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train_run(
    cfg: ExperimentConfig,
    seed: int,
    run_dir: Path,
    splits: Splits,
    epoch_hooks: list[EpochHook] | None,
    callbacks: list[keras.callbacks.Callback] | None,
    source_model: Path | None,
) -> TrainOutcome:
    train_cfg = cfg.train
    num_classes = len(splits.class_names)
    set_seeds(seed, deterministic=train_cfg.deterministic)
    configure_precision(cfg)

    steps = steps_per_epoch(len(splits.x_train), train_cfg.batch_size)
    model = build_model(cfg.model, num_classes=num_classes, l2=coupled_l2(train_cfg))
    # Transfer: source weights into all but the head; per-group LR factors (cifarkit.training.finetune).
    tuning = finetune.prepare(cfg.transfer, model, source_model)
    compile_model(model, train_cfg, steps, lr_factors=tuning.lr_factors if tuning else None)

    manager = CheckpointManager(run_dir / "checkpoint")
    state = manager.restore(model)
    if state is None:  # a fresh run: data-dependent init (airbench's whitening) before fit
        init_from_data(model, cfg.model, splits.x_train)
        state = {"epoch": 0, "history": [], "train_seconds": 0.0}
    start_epoch, history = state["epoch"], state["history"]
    # Freezing is a function of the epoch, applied after the restore: resumes see the same layers frozen.
    transfer_callbacks = [tuning.start(model, start_epoch)] if tuning is not None else []

    weights = None
    if cfg.train.loss.class_weighted:
        weights = class_weights(splits.y_train, num_classes)[splits.y_train]
    batches = dict(
        num_classes=num_classes,
        batch_size=train_cfg.batch_size,
        seed=seed,
        start_epoch=start_epoch,
        epochs=train_cfg.epochs,
        aug=train_cfg.augment,
        sample_weights=weights,
    )
    if augment_on_gpu(train_cfg):
        train_ds, feed = device_batches(splits.x_train, splits.y_train, device="/GPU:0", **batches)
        feed_from_device(model, feed)
    else:
        train_ds = train_dataset(splits.x_train, splits.y_train, **batches)
    validation = _Validation(splits.x_val, splits.y_val, num_classes, splits.class_names, train_cfg)
    if start_epoch < train_cfg.epochs:
        fit_callbacks = [
            _StepClock(),  # first: its clock stops right after each step
            validation,  # before the callbacks that read the epoch's val_* logs
            EpochReseed(seed),
            *transfer_callbacks,
            EpochProgress(total_epochs=train_cfg.epochs, steps_per_epoch=steps),
            *lookahead_callbacks(train_cfg.ema, steps, train_cfg.epochs),
            *(callbacks or []),
            _CheckpointEachEpoch(
                manager,
                history,
                train_cfg.snapshot_epochs,
                run_dir / "snapshots",
                epoch_hooks or [],
                state["train_seconds"],
            ),
        ]
        model.fit(
            train_ds,
            epochs=train_cfg.epochs,
            initial_epoch=start_epoch,
            steps_per_epoch=steps,
            callbacks=fit_callbacks,
            verbose=0,
            shuffle=False,
        )

    # The stored logits come from float32 arithmetic whatever the run trained in: that is how
    # its model computes wherever it is loaded again (predict, export, the demo, the chapters;
    # cifarkit.models.float32_model), and an export is checked against these logits.
    # The validation logits (for calibration fitted on validation only) were predicted with
    # the float32 model after the last epoch, unless this process resumed a run whose last
    # epoch was done, or Keras' optimizer EMA replaced the weights by their average after it.
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # loss scaling wraps
    ema_overwrote = bool(getattr(optimizer, "use_ema", False))
    if validation.inference is not None and validation.logits is not None and not ema_overwrote:
        inference, val_logits = validation.inference, validation.logits
    else:
        inference = float32_model(model)
        val_logits = predict_logits(inference, splits.x_val)
    test_started = time.perf_counter()
    logits = predict_logits(inference, splits.x_test)
    seconds = time_split(history, time.perf_counter() - test_started)
    final_state = manager.latest() or state
    model_file = final_state.get("_model_path")
    metrics = run_metrics(history, logits, splits, final_state.get("train_seconds", 0.0))
    return TrainOutcome(
        model,
        history,
        logits,
        splits.y_test,
        val_logits,
        splits.y_val,
        metrics,
        start_epoch,
        seconds,
        Path(model_file) if model_file and not ema_overwrote else None,
    )


def time_split(history: list[dict[str, float]], test_seconds: float) -> dict[str, float]:
    """Where a run's seconds went, from its history's timings (every process that trained it):
    training steps, tracing the training function, validation passes, writing checkpoints,
    and the test set's prediction (``test_seconds``, this process's)."""

    def total(key: str) -> float:
        return round(sum(float(row.get(key, 0.0)) for row in history), 2)

    return {
        "steps": total(STEP_SECONDS),
        "tracing": total(TRACE_SECONDS),
        "validation": total(VALIDATION_SECONDS),
        "test": round(test_seconds, 2),
        "checkpoints": total(CHECKPOINT_SECONDS),
    }


def validation_epochs(cfg: TrainConfig) -> list[int]:
    """The epochs (1-based) whose end has a validation pass: every ``validate_every``-th, the
    last one included (``validate_every`` divides ``epochs``)."""
    return list(range(cfg.validate_every, cfg.epochs + 1, cfg.validate_every))


def run_metrics(
    history: list[dict[str, float]], logits: np.ndarray, splits: Splits, train_seconds: float
) -> dict[str, Any]:
    """metrics.json content: test accuracy (+ per class), last validation figures, timing."""
    predicted = logits.argmax(axis=1)
    correct = predicted == splits.y_test
    per_class = {
        name: float(correct[splits.y_test == k].mean()) if np.any(splits.y_test == k) else None
        for k, name in enumerate(splits.class_names)
    }
    last = history[-1] if history else {}
    return {
        "test_accuracy": float(correct.mean()),
        "test_accuracy_per_class": per_class,
        "test_size": int(len(correct)),
        "val_accuracy": last.get("val_accuracy"),
        "val_loss": last.get("val_loss"),
        "val_accuracy_per_class": {
            name: last.get(f"val_{per_class_metric_name(name)}") for name in splits.class_names
        },
        "epochs": len(history),
        "train_seconds": round(train_seconds, 2),
    }
