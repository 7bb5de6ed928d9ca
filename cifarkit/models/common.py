"""Pieces every cifarkit model family shares: input, normalisation, logits, validation.

Every builder returns a *flat* functional :class:`keras.Model` (no nested sub-models, so
Grad-CAM can pick any layer by name) that takes ``(32, 32, 3)`` float32 images with raw
pixel values 0..255 and returns **logits** from a float32 layer named ``"logits"``.
Normalisation is the model's first layer. Every layer has an explicit name, and no
``Lambda`` layer is used anywhere, so models round-trip through ``.keras`` files with
``safe_mode=True``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from cifarkit.core.errors import CifarkitError
from cifarkit.models.batchnorm import batch_norm

CIFAR_MEAN: tuple[float, float, float] = (125.3, 123.0, 113.9)
CIFAR_STD: tuple[float, float, float] = (63.0, 62.1, 66.7)
INPUT_SHAPE: tuple[int, int, int] = (32, 32, 3)
# Torch/Caffe batch-norm settings of the original papers (Keras' 0.99 lags on short runs).
BN: dict[str, float] = {"momentum": 0.9, "epsilon": 1e-5}


def regularizer(l2: float) -> keras.regularizers.Regularizer | None:
    if l2 < 0:
        raise CifarkitError(f"l2={l2} is negative; pass l2 >= 0 (0 disables weight regularisation)")
    return keras.regularizers.L2(l2) if l2 > 0 else None


def check_common(num_classes: int, dropout: float) -> None:
    if num_classes < 2:
        raise CifarkitError(
            f"num_classes={num_classes} is too small; a classifier needs at least 2"
        )
    if not 0.0 <= dropout < 1.0:
        raise CifarkitError(f"dropout={dropout} is out of range; use a rate in [0, 1)")


def image_input() -> Any:
    return keras.Input(shape=INPUT_SHAPE, dtype="float32", name="image")


def normalize(x: Any) -> Any:
    return layers.Normalization(
        mean=list(CIFAR_MEAN), variance=[s**2 for s in CIFAR_STD], name="normalize"
    )(x)


def logits_head(x: Any, num_classes: int, l2: float) -> Any:
    # float32 logits even under a mixed_float16 policy, for a stable softmax cross-entropy.
    return layers.Dense(
        num_classes, kernel_regularizer=regularizer(l2), dtype="float32", name="logits"
    )(x)


def conv_bn_relu(
    x: Any,
    filters: int,
    prefix: str,
    suffix: str,
    l2: float,
    relu_name: str | None = None,
    bn: str = "fused",
) -> Any:
    x = layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer(l2),
        name=f"{prefix}_conv{suffix}",
    )(x)
    x = batch_norm(bn, **BN, name=f"{prefix}_bn{suffix}")(x)
    return layers.ReLU(name=relu_name or f"{prefix}_relu{suffix}")(x)
