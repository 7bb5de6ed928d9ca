"""Fast training: an airbench94-style network for 32x32 CIFAR and its tricks, each a switch.

airbench94 (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU") reaches 94.0%
on the official batches in 9.9 epochs. Its parts, as they appear here (config switch in
brackets). "Gain (paper)" is airbench's own ablation on a GPU; "measured" is this project's
ablation ladder (``cifarkit bench ladder``: each step adds one trick to all before it; 10,000
training images, 10 epochs, one seed, so a step under about a point may be noise):

- :func:`airbench_net` - whitening conv, then three conv groups ``conv-pool-BN-act-conv-BN-act``
  (widths 64/256/256), max-pool, linear head without bias, scaled logits [model: airbench].
- :func:`whitening_kernel` / :func:`init_from_data` - a frozen 2x2 conv whose filters are the
  training patches' eigenvectors / sqrt(eigenvalue), +/- (24 channels) [model.airbench.whiten].
  Its bias trains throughout (airbench freezes it after 3 epochs; that needs a re-compile
  in Keras, left out). Gain (paper): ~1 epoch of 10. Measured: +1.8 points.
- :class:`PartialDirac` - identity init of each conv's first in-channels filters
  [model.airbench.dirac]. Gain (paper): ~0.5 epoch. Measured: +6.1 points, the largest step at
  this small budget (about a hundred optimiser steps in all).
- :class:`ScaledBias` - BN biases learn ``bn_bias_lr`` times faster (64x) by
  reparameterisation, since Keras optimizers have no per-variable LR [model.airbench.bn_bias_lr].
  Measured: -0.4 points (within one seed's noise).
- :class:`Triangular` - LR rises linearly from 0.2x to the peak at 23% of training, then falls
  to 0.07x [train.schedule.name: triangular] (:mod:`cifarkit.training.schedules`). Measured:
  -0.7 points against one-cycle (within one seed's noise).
- :class:`~cifarkit.training.averaging.Lookahead` - airbench's lookahead: every 5 steps the weights are replaced by an average
  whose decay ramps as (t/T)^3 [train.ema, ramp: cubic]. Keras' ``use_ema`` (:func:`ema_options`,
  ramp: none) has a fixed momentum that drags training from the first step; it stays available.
  Gain (paper, lookahead): ~0.3 points. Here, ramp against Keras' fixed EMA (full recipe, seed 0,
  49k images): validation accuracy 65.1% vs 31.8% after epoch 1, 76.4% vs 62.8% after epoch 2.
  Measured on the ladder: +0.1 points.
- label smoothing 0.2 (Keras' built-in, [train.loss.label_smoothing]) and Nesterov SGD.
  Measured: +0.5 points.
- per-batch flip + 2-px translate with alternating flips (:mod:`cifarkit.data.pipeline`,
  [train.augment.mode: batch, alternating_flip]). Gain (paper, alternating flip): ~0.1-0.2 points.
  Measured: +0.5 points. All tricks together: +7.9 points at this budget, +2.7 points with
  40,000 training images (base net against the full recipe, one seed each), at no cost in time.
  Here, speed of the batch mode: ResNet20's real pipeline kept 0.96-1.02 of the model-alone
  rate against 0.93 per image (198 vs 183 img/s); airbench's 1.04 (``cifarkit bench throughput``).
- multi-view TTA (flip + 1-px shifts) at evaluation: :func:`cifarkit.evaluation.metrics.tta_evaluate`.

:data:`cifarkit.studies.ladder.ABLATION_LADDER` lists them in the order the ladder adds them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from cifarkit.core.config import AirbenchConfig, ModelConfig
from cifarkit.core.errors import CifarkitError
from cifarkit.models.batchnorm import batch_norm
from cifarkit.models.common import (
    CIFAR_MEAN,
    CIFAR_STD,
    check_common,
    image_input,
    normalize,
    regularizer,
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
                                   regularizer=regularizer(self.l2))

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


# --------------------------------------------------------------------------- whitening


def whitening_kernel(images: np.ndarray, patch: int = WHITEN_PATCH, eps: float = WHITEN_EPS) -> np.ndarray:
    """Trick: patch whitening (airbench). The ``(patch, patch, C, 2*patch*patch*C)`` kernel whose
    filters are the eigenvectors of the (uncentred) patch covariance of ``images`` (float,
    NHWC, already normalised) divided by sqrt(eigenvalue + eps), then their negatives.
    On the ablation ladder it measured +1.8 points (10,000 images, one seed)."""
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
                         kernel_regularizer=regularizer(l2), name=name)(x)


def _bn_act(x: Any, name: str, ab: AirbenchConfig, l2: float, bn: str, out_name: str | None = None) -> Any:
    """BN without a learned scale (airbench freezes it at 1), bias at ``bn_bias_lr``, then the activation."""
    scaled = ab.bn_bias_lr != 1.0
    x = batch_norm(bn, momentum=1.0 - ab.bn_momentum, epsilon=BN_EPSILON, scale=False,
                                  center=not scaled, name=f"{name}_bn")(x)
    if scaled:
        x = ScaledBias(math.sqrt(ab.bn_bias_lr), l2=l2, name=f"{name}_bias")(x)
    return layers.Activation(ab.activation, name=out_name or f"{name}_act")(x)


def airbench_net(ab: AirbenchConfig | None = None, num_classes: int = 10, dropout: float = 0.0,
                 l2: float = 0.0, bn: str = "fused") -> keras.Model:
    """The airbench94 network in Keras, flat and named like cifarkit's other models.

    ``normalize`` -> ``whiten`` (2x2 valid, 24 ch; or a trainable 2x2 conv when
    ``whiten`` is off) -> act -> 3 groups ``conv3x3 - maxpool2 - BN - act - conv3x3 - BN -
    act`` (``groupN_out`` is each group's last activation) -> ``head_pool`` (3x3 max) ->
    dense without bias -> ``logits`` (x ``logit_scale``). Input 32 -> 31 -> 15 -> 7 -> 3 -> 1.
    """
    ab = ab or AirbenchConfig()
    check_common(num_classes, dropout)
    inputs = image_input()
    x = normalize(inputs)
    whiten_width = 2 * WHITEN_PATCH * WHITEN_PATCH * 3
    if ab.whiten:
        x = WhiteningConv(whiten_width, name="whiten")(x)
    else:
        x = layers.Conv2D(whiten_width, WHITEN_PATCH, padding="valid", kernel_regularizer=regularizer(l2),
                          name="whiten")(x)
    x = layers.Activation(ab.activation, name="whiten_act")(x)
    for group, width in enumerate(ab.widths, start=1):
        prefix = f"group{group}"
        x = _conv(x, width, f"{prefix}_conv1", ab, l2)
        x = layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)
        x = _bn_act(x, f"{prefix}_1", ab, l2, bn)
        x = _conv(x, width, f"{prefix}_conv2", ab, l2)
        x = _bn_act(x, f"{prefix}_2", ab, l2, bn, out_name=f"{prefix}_out")
    x = layers.MaxPooling2D(3, name="head_pool")(x)
    x = layers.Flatten(name="head_flatten")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_regularizer=regularizer(l2), dtype="float32",
                     name="head_dense")(x)
    logits = layers.Rescaling(ab.logit_scale, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="airbench")


def airbench_groups(model: keras.Model) -> list[str]:
    """Names of the airbench net's group outputs (``group1_out`` .. ``group3_out``)."""
    names = [layer.name for layer in model.layers if layer.name.startswith("group") and layer.name.endswith("_out")]
    if not names:
        raise CifarkitError(f"model {model.name!r} has no groupN_out layers; pass a model built by "
                            "cifarkit.models.airbench.airbench_net")
    return sorted(names)
