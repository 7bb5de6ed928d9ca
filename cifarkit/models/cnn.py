"""The baseline CNN: three conv blocks and a dense head, the study's reference model."""

from __future__ import annotations

import re

import keras
from keras import layers

from cifarkit.core.errors import CifarkitError
from cifarkit.models.common import check_common, conv_bn_relu, image_input, logits_head, normalize


def baseline_cnn(
    num_classes: int = 10, dropout: float = 0.0, l2: float = 0.0, bn: str = "fused"
) -> keras.Model:
    """Three conv blocks (32, 64, 128 filters: conv3x3-BN-ReLU, 2x2 max-pool), flatten, dense logits.

    One convolution per block keeps it fast on a 2-core CPU (a second one per block slows its
    training; ``cifarkit bench throughput baseline_cnn`` measures it). Flatten rather than global
    pooling: with three convolutions each 4x4 cell sees only 22 px, so position matters.
    """
    check_common(num_classes, dropout)
    inputs = image_input()
    x = normalize(inputs)
    for block, filters in enumerate((32, 64, 128), start=1):
        prefix = f"block{block}"
        x = conv_bn_relu(x, filters, prefix, "1", l2, relu_name=f"{prefix}_out", bn=bn)
        x = layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)
    x = layers.Flatten(name="head_flatten")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(inputs, logits_head(x, num_classes, l2), name="baseline_cnn")


def baseline_conv_blocks(model: keras.Model) -> list[str]:
    """Names of the baseline CNN's block outputs (the ReLU before each max-pool), in order."""
    names = [layer.name for layer in model.layers if re.fullmatch(r"block\d+_out", layer.name)]
    if not names:
        raise CifarkitError(
            f"model {model.name!r} has no block<i>_out layers; pass a model built "
            "by cifarkit.models.baseline_cnn"
        )
    return sorted(names, key=lambda name: int(re.findall(r"\d+", name)[0]))
