"""Fast training: an airbench94-style network for 32x32 CIFAR and its tricks, each a switch.

airbench94 (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU") reaches 94.0%
on the official batches in 9.9 epochs. Its parts, as they appear here (config switch in
brackets; "gain" is the paper's ablation on a GPU unless marked "here"):

- :func:`airbench_net` - whitening conv, then three conv groups ``conv-pool-BN-act-conv-BN-act``
  (widths 64/256/256), max-pool, linear head without bias, scaled logits [model: airbench].
- :func:`whitening_kernel` / :func:`init_from_data` - a frozen 2x2 conv whose filters are the
  training patches' eigenvectors / sqrt(eigenvalue), +/- (24 channels) [model.airbench.whiten].
  Its bias trains throughout (airbench freezes it after 3 epochs; that needs a re-compile
  in Keras, left out). Gain (paper): ~1 epoch of 10. Here: not measured yet.
- :class:`PartialDirac` - identity init of each conv's first in-channels filters
  [model.airbench.dirac]. Gain (paper): ~0.5 epoch. Here: not measured yet.
- :class:`ScaledBias` - BN biases learn ``bn_bias_lr`` times faster (64x) by
  reparameterisation, since Keras optimizers have no per-variable LR [model.airbench.bn_bias_lr].
  Here: not measured yet.
- :class:`Triangular` - LR rises linearly from 0.2x to the peak at 23% of training, then falls
  to 0.07x [train.schedule.name: triangular]. Here: not measured yet.
- :class:`Lookahead` - airbench's lookahead: every 5 steps the weights are replaced by an average
  whose decay ramps as (t/T)^3 [train.ema, ramp: cubic]. Keras' ``use_ema`` (:func:`ema_options`,
  ramp: none) has a fixed momentum that drags training from the first step; it stays available.
  Gain (paper, lookahead): ~0.3 points. Here, ramp against Keras' fixed EMA (full recipe, seed 0,
  49k images): validation accuracy 65.1% vs 31.8% after epoch 1, 76.4% vs 62.8% after epoch 2.
- label smoothing 0.2 (Keras' built-in, [train.loss.label_smoothing]) and Nesterov SGD.
- per-batch flip + 2-px translate with alternating flips (:mod:`cifarkit.data.pipeline`,
  [train.augment.mode: batch, alternating_flip]). Gain (paper, alternating flip): ~0.1-0.2 points.
  Here, speed of the batch mode: ResNet20's real pipeline kept 0.96-1.02 of the model-alone
  rate against 0.93 per image (198 vs 183 img/s); airbench's 1.04 (``cifarkit bench throughput``).
- multi-view TTA (flip + 1-px shifts) at evaluation: :func:`cifarkit.evaluate.tta_evaluate`.

:data:`ABLATION_LADDER` lists them in the order the ablation adds them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from cifarkit.config import AirbenchConfig, EmaConfig, ModelConfig, ScheduleConfig
from cifarkit.errors import CifarkitError
from cifarkit.models import (
    CIFAR_MEAN,
    CIFAR_STD,
    _check_common,
    _image_input,
    _normalize,
    _regularizer,
)

log = logging.getLogger(__name__)

WHITEN_PATCH = 2          # airbench's whitening kernel size
WHITEN_EPS = 5e-4         # added to the eigenvalues before 1/sqrt (airbench)
BN_EPSILON = 1e-12        # airbench's BatchNorm epsilon


# --------------------------------------------------------------------------- layers and initialisers


@keras.saving.register_keras_serializable(package="cifarkit")
class WhiteningConv(layers.Layer):
    """A ``k x k`` valid convolution with a frozen kernel and a trainable bias.

    Keras' ``Conv2D`` freezes kernel and bias together (``trainable`` is per layer), and
    airbench trains the bias, so this small layer holds the kernel as a non-trainable weight.
    The kernel is zero until :func:`init_from_data` sets it from training patches.
    """

    def __init__(self, filters: int, kernel_size: int = WHITEN_PATCH, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        k, channels = self.kernel_size, int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(k, k, channels, self.filters),
                                      initializer="zeros", trainable=False)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs: Any) -> Any:
        return ops.conv(inputs, self.kernel, strides=1, padding="valid") + self.bias

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        n, h, w, _ = input_shape
        k = self.kernel_size - 1
        return (n, None if h is None else h - k, None if w is None else w - k, self.filters)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="cifarkit")
class ScaledBias(layers.Layer):
    """Add a per-channel bias stored as ``raw`` and used as ``scale * raw``.

    With plain SGD this multiplies the bias's effective learning rate by ``scale**2``
    (the gradient on ``raw`` is ``scale`` times larger and each step moves the bias by
    ``scale`` times the step on ``raw``), and a coupled L2 of ``c`` on ``raw`` shrinks the
    bias by the same fraction ``lr * c`` per step as the kernels: exactly airbench's
    "BN biases at 64x LR, weight decay / 64". Written by hand because Keras optimizers
    have no per-variable learning rate.
    """

    def __init__(self, scale: float = 1.0, l2: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.l2 = float(l2)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.raw = self.add_weight(name="raw", shape=(int(input_shape[-1]),), initializer="zeros",
                                   regularizer=_regularizer(self.l2))

    def call(self, inputs: Any) -> Any:
        return inputs + self.scale * self.raw

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "l2": self.l2}


@keras.saving.register_keras_serializable(package="cifarkit")
class PartialDirac(keras.initializers.Initializer):
    """Conv kernel whose first ``min(in, out)`` filters are the identity (``torch.nn.init.dirac_``
    on ``weight[:in_channels]``, as airbench does); the rest PyTorch's default uniform
    ``+/- 1/sqrt(fan_in)``. Keras has no dirac initialiser."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        kh, kw, cin, cout = shape
        base = keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform",
                                                  seed=self.seed)(shape, dtype=dtype)
        n = min(cin, cout)
        eye = np.zeros(shape, np.float32)
        eye[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
        keep = np.ones(shape, np.float32)
        keep[:, :, :, :n] = 0.0
        return base * ops.convert_to_tensor(keep, dtype=dtype) + ops.convert_to_tensor(eye, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="cifarkit")
class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """Piecewise-linear LR: ``start * peak_lr`` -> ``peak_lr`` at ``peak_at`` of training ->
    ``end * peak_lr`` at the last step (airbench's ``triangle``). Keras has only constant
    pieces (``PiecewiseConstantDecay``) and warmup+cosine, so this is written out."""

    def __init__(self, peak_lr: float, total_steps: int, start: float = 0.2, peak_at: float = 0.23,
                 end: float = 0.07) -> None:
        self.peak_lr, self.total_steps = float(peak_lr), int(total_steps)
        self.start, self.peak_at, self.end = float(start), float(peak_at), float(end)

    def __call__(self, step: Any) -> Any:
        t = ops.cast(step, "float32") / max(self.total_steps, 1)
        rise = self.start + (1.0 - self.start) * t / self.peak_at
        fall = 1.0 + (self.end - 1.0) * (t - self.peak_at) / (1.0 - self.peak_at)
        factor = ops.where(t < self.peak_at, rise, ops.maximum(fall, self.end))
        return self.peak_lr * factor

    def get_config(self) -> dict[str, Any]:
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps, "start": self.start,
                "peak_at": self.peak_at, "end": self.end}


# --------------------------------------------------------------------------- tricks as functions


def triangular_schedule(peak_lr: float, total_steps: int, sched: ScheduleConfig) -> Triangular:
    """Trick: triangular LR (airbench). Here: not measured yet."""
    return Triangular(peak_lr, total_steps, start=sched.triangle_start, peak_at=sched.triangle_peak,
                      end=sched.final_lr_fraction)


def ema_options(ema: EmaConfig | None) -> dict[str, Any]:
    """Trick: EMA (or lookahead, when overwriting) as Keras optimizer arguments (``use_ema``),
    for ``ramp: none``; ``ramp: cubic`` is :class:`Lookahead`, a callback. Here: not measured yet."""
    if ema is None or ema.ramp != "none":
        return {}
    return {"use_ema": True, "ema_momentum": ema.momentum, "ema_overwrite_frequency": ema.overwrite_every}


def lookahead_decay(step: int, total_steps: int, momentum: float, every: int) -> float:
    """airbench's lookahead decay at ``step``: ``momentum**every * (step / total)**3``."""
    return float(momentum ** every * (min(step, total_steps) / total_steps) ** 3)


class Lookahead(keras.callbacks.Callback):
    """Trick: airbench's lookahead. Every ``every`` steps the average moves toward the weights,
    ``avg += (1 - d) * (w - avg)`` with ``d =`` :func:`lookahead_decay`, and the weights are set
    to it. Here: not measured yet.

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


def lookahead_callbacks(ema: EmaConfig | None, steps_per_epoch: int, epochs: int) -> list[keras.callbacks.Callback]:
    """``[Lookahead(...)]`` for ``ramp: cubic``, else ``[]`` (Keras' ``use_ema`` needs no callback)."""
    if ema is None or ema.ramp != "cubic":
        return []
    return [Lookahead(ema.momentum, int(ema.overwrite_every or 1), steps_per_epoch, epochs)]


def whitening_kernel(images: np.ndarray, patch: int = WHITEN_PATCH, eps: float = WHITEN_EPS) -> np.ndarray:
    """Trick: patch whitening (airbench). The ``(patch, patch, C, 2*patch*patch*C)`` kernel whose
    filters are the eigenvectors of the (uncentred) patch covariance of ``images`` (float,
    NHWC, already normalised) divided by sqrt(eigenvalue + eps), then their negatives.
    Here: not measured yet."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or min(images.shape[1:3]) < patch:
        raise CifarkitError(f"whitening needs NHWC images of at least {patch}x{patch}, got shape "
                            f"{images.shape}; pass the training images")
    channels = images.shape[-1]
    dim = patch * patch * channels
    cov = np.zeros((dim, dim), np.float64)
    count = 0
    for start in range(0, len(images), 500):  # chunks keep the patch array small
        # (n, H-p+1, W-p+1, C, p, p) -> patches flattened in the kernel's (kh, kw, c) order
        windows = np.lib.stride_tricks.sliding_window_view(images[start:start + 500], (patch, patch), axis=(1, 2))
        flat = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, dim).astype(np.float64)
        cov += flat.T @ flat
        count += len(flat)
    eigenvalues, eigenvectors = np.linalg.eigh(cov / count)
    order = np.argsort(eigenvalues)[::-1]  # largest first, as airbench
    filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + eps)
    kernel = filters.reshape(patch, patch, channels, dim)
    return np.concatenate([kernel, -kernel], axis=-1).astype(np.float32)


def init_from_data(model: keras.Model, cfg: ModelConfig, images: np.ndarray) -> bool:
    """Set the whitening kernels of ``model`` from the first ``whiten_images`` training images
    (uint8 0..255, normalised like the model's first layer). Returns whether anything was set."""
    targets = [layer for layer in model.layers if isinstance(layer, WhiteningConv)]
    if not targets:
        return False
    n = cfg.airbench.whiten_images if cfg.airbench is not None else 5000
    sample = (np.asarray(images[:n], np.float32) - np.float32(CIFAR_MEAN)) / np.float32(CIFAR_STD)
    kernel = whitening_kernel(sample, patch=targets[0].kernel_size)
    for layer in targets:
        layer.kernel.assign(kernel)
    log.info("whitening conv initialised from %d training images", len(sample))
    return True


# --------------------------------------------------------------------------- the network


def _conv(x: Any, filters: int, name: str, ab: AirbenchConfig, l2: float) -> Any:
    init = PartialDirac() if ab.dirac else keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform")
    return layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init,
                         kernel_regularizer=_regularizer(l2), name=name)(x)


def _bn_act(x: Any, name: str, ab: AirbenchConfig, l2: float, out_name: str | None = None) -> Any:
    """BN without a learned scale (airbench freezes it at 1), bias at ``bn_bias_lr``, then the activation."""
    scaled = ab.bn_bias_lr != 1.0
    x = layers.BatchNormalization(momentum=1.0 - ab.bn_momentum, epsilon=BN_EPSILON, scale=False,
                                  center=not scaled, name=f"{name}_bn")(x)
    if scaled:
        x = ScaledBias(math.sqrt(ab.bn_bias_lr), l2=l2, name=f"{name}_bias")(x)
    return layers.Activation(ab.activation, name=out_name or f"{name}_act")(x)


def airbench_net(ab: AirbenchConfig | None = None, num_classes: int = 10, dropout: float = 0.0,
                 l2: float = 0.0) -> keras.Model:
    """The airbench94 network in Keras, flat and named like cifarkit's other models.

    ``normalize`` -> ``whiten`` (2x2 valid, 24 ch; or a trainable 2x2 conv when
    ``whiten`` is off) -> act -> 3 groups ``conv3x3 - maxpool2 - BN - act - conv3x3 - BN -
    act`` (``groupN_out`` is each group's last activation) -> ``head_pool`` (3x3 max) ->
    dense without bias -> ``logits`` (x ``logit_scale``). Input 32 -> 31 -> 15 -> 7 -> 3 -> 1.
    """
    ab = ab or AirbenchConfig()
    _check_common(num_classes, dropout)
    inputs = _image_input()
    x = _normalize(inputs)
    whiten_width = 2 * WHITEN_PATCH * WHITEN_PATCH * 3
    if ab.whiten:
        x = WhiteningConv(whiten_width, name="whiten")(x)
    else:
        x = layers.Conv2D(whiten_width, WHITEN_PATCH, padding="valid", kernel_regularizer=_regularizer(l2),
                          name="whiten")(x)
    x = layers.Activation(ab.activation, name="whiten_act")(x)
    for group, width in enumerate(ab.widths, start=1):
        prefix = f"group{group}"
        x = _conv(x, width, f"{prefix}_conv1", ab, l2)
        x = layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)
        x = _bn_act(x, f"{prefix}_1", ab, l2)
        x = _conv(x, width, f"{prefix}_conv2", ab, l2)
        x = _bn_act(x, f"{prefix}_2", ab, l2, out_name=f"{prefix}_out")
    x = layers.MaxPooling2D(3, name="head_pool")(x)
    x = layers.Flatten(name="head_flatten")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_regularizer=_regularizer(l2), dtype="float32",
                     name="head_dense")(x)
    logits = layers.Rescaling(ab.logit_scale, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="airbench")


def airbench_groups(model: keras.Model) -> list[str]:
    """Names of the airbench net's group outputs (``group1_out`` .. ``group3_out``)."""
    names = [layer.name for layer in model.layers if layer.name.startswith("group") and layer.name.endswith("_out")]
    if not names:
        raise CifarkitError(f"model {model.name!r} has no groupN_out layers; pass a model built by "
                            "cifarkit.fast.airbench_net")
    return sorted(names)


# --------------------------------------------------------------------------- the ablation ladder

# Each step adds one trick to the previous one (the airbench ablation design); overrides are
# dotted config keys applied to configs/airbench.yaml with every trick switched off first.
TRICKS_OFF: dict[str, Any] = {
    "model.airbench.whiten": False, "model.airbench.dirac": False, "model.airbench.bn_bias_lr": 1.0,
    "train.schedule.name": "onecycle", "train.ema": None, "train.augment.alternating_flip": False,
    "train.loss.label_smoothing": 0.0,
}
ABLATION_LADDER: tuple[tuple[str, dict[str, Any]], ...] = (
    ("base net, one-cycle LR, flip+translate", {}),
    ("+ whitening conv", {"model.airbench.whiten": True}),
    ("+ dirac init", {"model.airbench.dirac": True}),
    ("+ BN-bias LR x64", {"model.airbench.bn_bias_lr": 64.0}),
    ("+ triangular LR", {"train.schedule.name": "triangular"}),
    ("+ label smoothing 0.2", {"train.loss.label_smoothing": 0.2}),
    ("+ lookahead", {"train.ema": {"momentum": 0.95, "overwrite_every": 5, "ramp": "cubic"}}),
    ("+ alternating flip", {"train.augment.alternating_flip": True}),
)


def ablation_overrides() -> list[tuple[str, dict[str, Any]]]:
    """Cumulative overrides per ladder step: ``[(label, overrides), ...]`` (TTA is reported
    beside each step by the benchmark, not as a step)."""
    steps, current = [], {k: v for k, v in TRICKS_OFF.items()}
    for label, add in ABLATION_LADDER:
        current = {**current, **add}
        steps.append((label, dict(current)))
    return steps
