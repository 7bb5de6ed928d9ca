"""Throughput benchmark: the model alone on synthetic tensors vs the real input pipeline.

(a) feeds one cached synthetic batch over and over, so it measures the model's training
step only; (b) feeds the real uint8 ``tf.data`` pipeline with augmentation. The ratio
(b)/(a) says whether the input pipeline slows training (goal: >= 0.95 here).

Every measurement is also kept as ``artifacts/bench/throughput-*.json`` with the machine it
ran on, beside reference figures of other frameworks written there in the same form
(``tools/airbench94_torch_throughput.py``); :func:`load_throughputs` and
:func:`framework_comparison` put them side by side for the fast-training chapter.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from cifarkit.core.config import ExperimentConfig

log = logging.getLogger(__name__)

THROUGHPUT_GLOB = "throughput-*.json"
AIRBENCH_EPOCHS, AIRBENCH_TRAIN_IMAGES = 9.9, 50_000  # airbench94's own schedule


@dataclass
class Throughput:
    model: str
    batch_size: int
    steps: int
    synthetic_img_s: (
        float | None
    )  # None: the study plan's probe, which times the real pipeline only
    pipeline_img_s: float
    input_only_img_s: float | None = None  # the tf.data pipeline alone, no model
    augment_mode: str = "per_image"
    profile: str = "cpu"
    framework: str = "keras"
    environment: dict = field(default_factory=dict)  # repro.environment_record(): CPU, versions
    experiment: str = ""  # the config's name (resnet20_fast builds model resnet20)
    precision: str = "float32"  # Keras dtype policy of both timed models
    # One figure per repeat, (a) and (b) interleaved; the img/s fields above are their medians.
    synthetic_runs: list[float] = field(default_factory=list)
    pipeline_runs: list[float] = field(default_factory=list)
    # What a run costs besides its training steps, for the study plan's estimates: building and
    # compiling a model plus tracing its first step, and the evaluation pass's speed.
    startup_seconds: float | None = None
    predict_img_s: float | None = None
    steps_per_execution: int = 1
    intra_op_threads: int | None = (
        None  # TensorFlow's thread pools as set for the measurement (None: default)
    )
    inter_op_threads: int | None = None
    # A run's cost after its last step: tracing the evaluation and prediction passes and the
    # model save MLflow's registration makes; None when not measured.
    finish_seconds: float | None = None
    # One model save: a run writes one each epoch, its checkpoint; None when not measured.
    save_seconds: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.pipeline_img_s / self.synthetic_img_s if self.synthetic_img_s else None

    @property
    def ratio_range(self) -> tuple[float, float] | None:
        """Lowest and highest (b)/(a) over the repeats (each repeat's pair measured back to back)."""
        if len(self.synthetic_runs) < 2:
            return None
        ratios = [b / a for a, b in zip(self.synthetic_runs, self.pipeline_runs, strict=True)]
        return min(ratios), max(ratios)

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "ratio_range": self.ratio_range}

    def default_path(self) -> Path:
        """Where this result is kept: :func:`result_path` of its experiment and settings."""
        return result_path(
            self.experiment or self.model,
            self.profile,
            self.augment_mode,
            self.batch_size,
            self.precision,
        )


def result_path(
    experiment: str, profile: str, augment_mode: str, batch_size: int, precision: str
) -> Path:
    """``artifacts/bench/throughput-<experiment>-<profile>-<augment mode>-b<batch>[-bf16].json``."""
    from cifarkit.core.paths import artifacts_dir

    tail = "-bf16" if precision == "mixed_bfloat16" else ""
    return (
        artifacts_dir()
        / "bench"
        / f"throughput-{experiment}-{profile}-{augment_mode}-b{batch_size}{tail}.json"
    )


def config_result_path(cfg: ExperimentConfig) -> Path:
    """Where the measurement of ``cfg``'s model, batch and precision is kept (:func:`result_path`)."""
    from cifarkit.core.precision import POLICIES

    return result_path(
        cfg.name,
        cfg.profile,
        cfg.train.augment.mode,
        cfg.train.batch_size,
        POLICIES[cfg.train.precision],
    )


def _timed_fit(model, dataset, steps: int, warmup: int) -> tuple[float, float]:
    """Seconds per batch over ``steps`` batches after ``warmup`` untimed ones, and the seconds the
    warm-up took beyond that many steps (tracing, on a model's first fit)."""
    import keras

    stamps: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    started = time.perf_counter()
    model.fit(
        dataset,
        epochs=1,
        steps_per_epoch=warmup + steps,
        verbose=0,
        callbacks=[Clock()],
        shuffle=False,
    )
    per_call = int(
        getattr(model, "steps_per_execution", 1) or 1
    )  # batch callbacks come once per call
    warm = warmup // per_call
    per_step = (stamps[-1] - stamps[warm - 1]) / steps
    return per_step, max(0.0, stamps[warm - 1] - started - warmup * per_step)


def _input_rate(dataset, batch: int, steps: int, warmup: int) -> float:
    """Images per second the input pipeline alone delivers (batches pulled, no model)."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    started = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return batch * steps / (time.perf_counter() - started)


def throughput(
    experiment: str = "resnet20",
    profile: str = "cpu",
    *,
    batch_size: int | None = None,
    steps: int = 40,
    warmup: int = 8,
    repeats: int = 3,
    overrides: dict | None = None,
    model_alone: bool = True,
    steps_per_execution: int = 1,
    jit_compile: bool = False,
    lean: bool = False,
) -> Throughput:
    """Time training of ``experiment``'s model: (a) alone on a cached synthetic batch, (b) fed by
    the real augmented pipeline, each ``repeats`` times, interleaved (a, b, a, b, ...).

    A short benchmark on a shared 2-core host drifts with whatever else runs: interleaving
    puts each (a, b) pair under the same conditions, and the median over repeats with its
    range says how far one figure can be trusted.

    Parameters
    ----------
    experiment, profile, overrides
        The config to time, as for :func:`cifarkit.core.config.load_config`.
    batch_size : int, optional
        Default: the config's ``train.batch_size``.
    steps, warmup : int
        Timed and untimed (tracing, warm-up) batches per measurement.
    repeats : int, default 3
        Measurements of each of (a) and (b).
    model_alone : bool, default True
        Also time (a); the study plan's probe needs (b) only and skips it (half the time).
    steps_per_execution : int, default 1
        Keras' ``steps_per_execution``: batches run per call of the compiled step (it must
        divide ``steps`` and ``warmup``).
    jit_compile : bool, default False
        Compile the step with XLA (training never does: it was slower on these CPUs; the
        engine benchmark keeps the measurement).
    lean : bool, default False
        Time the training step only: no input-only rate, finish cost or evaluation speed.

    Returns
    -------
    Throughput
        Medians, per-repeat figures, the machine record.
    """
    import keras

    from cifarkit.core.errors import CifarkitError

    if repeats < 1 or steps < 1 or warmup < 1:
        raise CifarkitError(
            f"repeats={repeats}, steps={steps}, warmup={warmup}: each must be at least 1"
        )
    if steps_per_execution < 1 or steps % steps_per_execution or warmup % steps_per_execution:
        raise CifarkitError(
            f"steps_per_execution={steps_per_execution}: must be at least 1 and divide steps={steps} "
            f"and warmup={warmup}"
        )
    from cifarkit.core.config import load_config
    from cifarkit.training.fit import configure_precision

    cfg = load_config(experiment, profile, overrides)
    previous_policy = keras.mixed_precision.global_policy()
    try:
        precision = configure_precision(cfg)
        return _throughput(
            cfg,
            precision,
            batch_size,
            steps,
            warmup,
            repeats,
            model_alone,
            steps_per_execution,
            jit_compile,
            lean,
        )
    finally:  # the caller's process keeps its own precision
        keras.mixed_precision.set_global_policy(previous_policy)


def _throughput(
    cfg: ExperimentConfig,
    precision: str,
    batch_size: int | None,
    steps: int,
    warmup: int,
    repeats: int,
    model_alone: bool = True,
    steps_per_execution: int = 1,
    jit_compile: bool = False,
    lean: bool = False,
) -> Throughput:
    import tensorflow as tf

    from cifarkit.core.repro import environment_record, set_seeds
    from cifarkit.data import splits_from_config
    from cifarkit.data.pipeline import train_dataset
    from cifarkit.models import build_model
    from cifarkit.training.recipe import compile_model, coupled_l2

    batch = batch_size or cfg.train.batch_size
    splits = splits_from_config(cfg.data)
    names = splits.class_names

    def fresh_model():
        set_seeds(0, deterministic=cfg.train.deterministic)
        model = build_model(cfg.model, num_classes=len(names), l2=coupled_l2(cfg.train))
        compile_model(
            model,
            cfg.train,
            steps_per_epoch=100,
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
        )
        return model

    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (batch, 32, 32, 3)).astype(np.float32))
    labels = tf.one_hot(rng.integers(0, len(names), batch), len(names))
    synthetic = tf.data.Dataset.from_tensors((images, labels)).repeat()
    epochs = -(-(warmup + steps) * batch * repeats // len(splits.x_train)) + 1
    real = train_dataset(
        splits.x_train,
        splits.y_train,
        num_classes=len(names),
        batch_size=batch,
        seed=0,
        start_epoch=0,
        epochs=epochs,
        aug=cfg.train.augment,
    )
    model_a = fresh_model() if model_alone else None
    built = time.perf_counter()
    model_b = fresh_model()
    build_seconds = time.perf_counter() - built
    rates_a, rates_b, tracing = [], [], 0.0
    for r in range(repeats):
        log.info(
            "timing %s, repeat %d/%d: %s the real pipeline (%d steps of %d)...",
            cfg.name,
            r + 1,
            repeats,
            "(a) synthetic batches, then (b)" if model_a is not None else "",
            steps,
            batch,
        )
        if model_a is not None:
            rates_a.append(batch / _timed_fit(model_a, synthetic, steps, warmup)[0])
        per_step, extra = _timed_fit(model_b, real, steps, warmup)
        rates_b.append(batch / per_step)
        tracing = tracing if r else extra
    # The plan's costs (input rate, a run's finish, evaluation speed) are skipped by a lean
    # measurement, which times the training step only (the engine benchmark's arms).
    input_only = None if lean else _input_rate(real, batch, steps, warmup)
    finish, save = (None, None) if lean else _finish_seconds(model_b, splits.x_val)
    predict_rate = None if lean else _predict_rate(model_b, splits.x_val)
    environment = environment_record()
    return Throughput(
        cfg.model.name,
        batch,
        steps,
        float(np.median(rates_a)) if rates_a else None,
        float(np.median(rates_b)),
        input_only,
        augment_mode=cfg.train.augment.mode,
        profile=cfg.profile,
        framework=f"keras {environment['packages']['keras']}",
        environment=environment,
        experiment=cfg.name,
        precision=precision,
        synthetic_runs=rates_a,
        pipeline_runs=rates_b,
        startup_seconds=build_seconds + tracing,
        predict_img_s=predict_rate,
        finish_seconds=finish,
        save_seconds=save,
        steps_per_execution=steps_per_execution,
        intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads() or None,
        inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads() or None,
    )


def _finish_seconds(model, images: np.ndarray) -> tuple[float, float]:
    """Seconds a run spends beyond its steps and its evaluated images, and one model save.

    The first figure is tracing the forward passes its validation and test predictions use
    (the model's own, and the float32 copy the last validation and the test set are
    predicted with, when the model is not float32), each timed on a few images so that
    tracing is what is measured, plus the save MLflow's registration makes (the run's own
    model file is a copy of its last checkpoint). The second is that save alone: a run writes
    one per epoch, its checkpoint."""
    import tempfile

    from cifarkit.models import float32_model, predict_logits

    few = images[:64]
    started = time.perf_counter()
    predict_logits(model, few)
    inference = float32_model(model)
    if inference is not model:
        predict_logits(inference, few)
    traced = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        model.save(Path(folder) / "model.keras")
        saved = time.perf_counter() - started
    return traced + saved, saved


def _predict_rate(model, images: np.ndarray, n: int = 2048) -> float:
    """Images per second of cifarkit's evaluation pass (the one after each epoch and at the end)."""
    from cifarkit.models import predict_logits

    sample = images[:n]
    predict_logits(model, sample[:256])  # traces the prediction function
    started = time.perf_counter()
    predict_logits(model, sample)
    return len(sample) / (time.perf_counter() - started)


# Files keep Keras's policy name; tables say the compute dtype, as the time-to-accuracy table does.
_PRECISION_SHOWN = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def load_throughputs(folder: Path | None = None) -> pd.DataFrame:
    """Every ``throughput-*.json`` under ``artifacts/bench`` as one row: model, framework,
    batch, model-alone and real-pipeline img/s, their ratio, CPU and time (UTC). Reference files
    of other frameworks have no pipeline figure; files that are not throughput results are
    skipped with a warning."""
    from cifarkit.core.paths import artifacts_dir

    folder = folder or artifacts_dir() / "bench"
    rows = []
    for path in sorted(folder.glob(THROUGHPUT_GLOB)):
        try:
            data = json.loads(path.read_text())
            if data.get("synthetic_img_s", 0) is None:
                continue  # a study-plan probe (real pipeline only), not a benchmark
            env = data.get("environment") or {}
            rows.append(
                {
                    "experiment": data.get("experiment") or data["model"],
                    "model": data["model"],
                    "framework": data.get("framework", "keras"),
                    "augment": data.get("augment_mode", ""),
                    "batch": int(data["batch_size"]),
                    "precision": _PRECISION_SHOWN.get(
                        data.get("precision", "float32"), data.get("precision", "float32")
                    ),
                    "model alone (img/s)": float(data["synthetic_img_s"]),
                    "real pipeline (img/s)": data.get("pipeline_img_s"),
                    "ratio": data.get("ratio"),
                    # A reference framework's file times the model alone: no pipeline, so no ratio.
                    "ratio range": _range_text(data.get("ratio_range"))
                    if data.get("pipeline_img_s")
                    else "-",
                    "model alone range": _range_text(
                        _min_max(data.get("synthetic_runs")), digits=0
                    ),
                    "memory format": data.get(
                        "memory_format", "nhwc" if "keras" in data.get("framework", "keras") else ""
                    ),
                    "cpu": env.get("cpu", "unknown"),
                    "isa": env.get("cpu_isa", "unknown"),
                    "cores": env.get("cpu_count"),
                    "measured": str(env.get("recorded_at", ""))[:16].replace("T", " "),
                }
            )
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("skipping %s: not a throughput result (%s)", path, exc)
    return pd.DataFrame(rows)


def _range_text(pair: list[float] | tuple[float, float] | None, digits: int = 2) -> str:
    return f"{pair[0]:.{digits}f}-{pair[1]:.{digits}f}" if pair else "one run"


def _min_max(values: list[float] | None) -> tuple[float, float] | None:
    return (min(values), max(values)) if values and len(values) > 1 else None


def _machine(row: pd.Series) -> str:
    isa = "" if row["isa"] == "unknown" else f" with {row['isa']}"
    return f"{row['cpu']}{isa}, {row['cores']} cores"


def framework_comparison(
    table: pd.DataFrame,
    model: str = "airbench",
    reference: str = "airbench94",
    precision: str = "float32",
    memory_format: str | None = None,
) -> str | None:
    """One sentence comparing cifarkit's ``model`` (an experiment, e.g. ``airbench`` or
    ``resnet20``) with a reference implementation's training speed, model alone, at the
    reference's batch size and in ``precision`` (``float32`` or ``bfloat16``), newest row of
    each; or None when either is missing. ``reference`` is the reference file's model name
    (``airbench94``, or ``resnet20`` for the PyTorch ResNet20), ``memory_format`` its layout
    (``nchw``, ``channels_last``; None: any). Figures taken on different CPUs (model name,
    vector ISA or core count) are said to be incomparable rather than compared."""
    if table.empty:
        return None
    keras = table["framework"].str.startswith("keras")
    theirs = table[~keras & (table["model"] == reference) & (table["precision"] == precision)]
    if memory_format is not None:
        theirs = theirs[theirs["memory format"] == memory_format]
    if theirs.empty:
        return None
    b = theirs.sort_values("measured").iloc[-1]
    ours = table[
        keras
        & (table["experiment"] == model)
        & (table["precision"] == precision)
        & (table["batch"] == b["batch"])
    ]
    if ours.empty:
        return None
    a = ours.sort_values("measured").iloc[-1]
    if (a["cpu"], a["isa"], a["cores"]) != (b["cpu"], b["isa"], b["cores"]):
        return (
            f"The {model} and {reference} ({b['framework']}) speeds were measured on different machines "
            f"({_machine(a)} vs {_machine(b)}) and are not compared."
        )
    layout = "" if b["memory format"] in ("", None) else f", {b['memory format']}"
    text = (
        f"On this machine ({_machine(a)}), cifarkit's {model} ({a['framework']}, {precision}) "
        f"trains at {a['model alone (img/s)']:.0f} img/s ({a['model alone range']}) and {reference} in "
        f"{b['framework']} ({precision}{layout}) at {b['model alone (img/s)']:.0f} img/s "
        f"({b['model alone range']}), model alone at batch {int(b['batch'])}: "
        f"{a['model alone (img/s)'] / b['model alone (img/s)']:.2f}× its speed."
    )
    if reference == "airbench94":
        minutes = AIRBENCH_EPOCHS * AIRBENCH_TRAIN_IMAGES / b["model alone (img/s)"] / 60
        text += (
            f" At that speed {reference}'s {AIRBENCH_EPOCHS:g} epochs of {AIRBENCH_TRAIN_IMAGES:,} images "
            f"would take about {minutes:.0f} min of training here."
        )
    return text
