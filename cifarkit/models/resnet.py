"""CIFAR ResNets (He et al. 2016, section 4.2) with the option-A shortcut."""

from __future__ import annotations

import re
from typing import Any

import keras
from keras import layers, ops

from cifarkit.core.errors import CifarkitError
from cifarkit.models.batchnorm import batch_norm
from cifarkit.models.common import (
    BN,
    check_common,
    conv_bn_relu,
    image_input,
    logits_head,
    normalize,
    regularizer,
)


@keras.saving.register_keras_serializable(package="cifarkit")
class ChannelPad(layers.Layer):
    """Append ``before`` zero channels in front of and ``after`` behind the channel axis.

    The parameter-free channel increase of the option-A ResNet shortcut.
    """

    def __init__(self, before: int, after: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.before = int(before)
        self.after = int(after)

    def call(self, inputs: Any) -> Any:
        return ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [self.before, self.after]])

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        channels = input_shape[-1]
        return (
            *input_shape[:-1],
            None if channels is None else channels + self.before + self.after,
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "before": self.before, "after": self.after}


def _basic_block(x: Any, filters: int, stride: int, prefix: str, l2: float, bn: str) -> Any:
    """conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU; the output layer is ``<prefix>_out``."""
    in_channels = x.shape[-1]
    shortcut = x
    y = x
    if stride > 1:
        # Symmetric padding (as in the papers' Torch/Caffe code) centres the strided conv's
        # outputs on the even pixels, the ones the shortcut's subsampling keeps.
        y = layers.ZeroPadding2D(1, name=f"{prefix}_pad")(y)
    y = layers.Conv2D(
        filters,
        3,
        strides=stride,
        padding="valid" if stride > 1 else "same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer(l2),
        name=f"{prefix}_conv1",
    )(y)
    y = batch_norm(bn, **BN, name=f"{prefix}_bn1")(y)
    y = layers.ReLU(name=f"{prefix}_relu1")(y)
    y = layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer(l2),
        name=f"{prefix}_conv2",
    )(y)
    y = batch_norm(bn, **BN, name=f"{prefix}_bn2")(y)
    if stride > 1:
        # pool_size 1 with stride 2 is x[:, ::2, ::2, :]: subsampling without parameters.
        shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{prefix}_shortcut_pool")(shortcut)
    if filters != in_channels:
        extra = filters - in_channels
        shortcut = ChannelPad(extra // 2, extra - extra // 2, name=f"{prefix}_shortcut_pad")(
            shortcut
        )
    y = layers.Add(name=f"{prefix}_add")([y, shortcut])
    return layers.ReLU(name=f"{prefix}_out")(y)


def cifar_resnet(
    depth: int, num_classes: int = 10, dropout: float = 0.0, l2: float = 0.0, bn: str = "fused"
) -> keras.Model:
    """The CIFAR ResNet of He et al. (2016, section 4.2), ``depth = 6n + 2``.

    3x3 conv (16) -> 3 stages of n basic blocks (16, 32, 64 filters; stride 2 at the first
    block of stages 2 and 3) -> global average pooling -> dropout (if > 0) -> dense logits.
    Shortcuts use **option A**: where the shape changes the identity is subsampled and
    zero-padded in channels (:class:`ChannelPad`), which adds no parameters, so counts match
    the paper (ResNet20 0.27M, 32 0.46M, 44 0.66M, 56 0.85M). He-normal initialisation.
    ``bn`` picks the batch-norm layer (:func:`cifarkit.models.batchnorm.batch_norm`).
    """
    if depth < 8 or (depth - 2) % 6:
        raise CifarkitError(f"ResNet depth {depth} is not 6n+2; use 20, 32, 44, 56, 110, ...")
    check_common(num_classes, dropout)
    n = (depth - 2) // 6
    inputs = image_input()
    x = normalize(inputs)
    x = conv_bn_relu(x, 16, "stem", "", l2, bn=bn)
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(1, n + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, stride, f"stage{stage}_block{block}", l2, bn)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(inputs, logits_head(x, num_classes, l2), name=f"resnet{depth}")


def resnet_stage_outputs(model: keras.Model) -> list[str]:
    """Names of each stage's last post-addition ReLU, stages 1..3 (32x32x16, 16x16x32, 8x8x64)."""
    last: dict[int, tuple[int, str]] = {}
    for layer in model.layers:
        match = re.fullmatch(r"stage(\d+)_block(\d+)_out", layer.name)
        if match:
            stage, block = int(match[1]), int(match[2])
            if block > last.get(stage, (0, ""))[0]:
                last[stage] = (block, layer.name)
    if sorted(last) != [1, 2, 3]:
        raise CifarkitError(
            f"model {model.name!r} has no stage1..3 block outputs; pass a model built "
            "by cifarkit.models.cifar_resnet"
        )
    return [last[stage][1] for stage in (1, 2, 3)]
