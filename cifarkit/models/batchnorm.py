"""Batch normalisation through TensorFlow's fused kernel: a drop-in for Keras' layer.

Keras 3's :class:`keras.layers.BatchNormalization` on the TensorFlow backend computes the
batch statistics with ``tf.nn.moments`` and normalises with ``tf.nn.batch_normalization``:
several passes over every activation, and casts to float32 and back around it under a
bfloat16 policy. TensorFlow's ``FusedBatchNormV3`` does the forward pass in one kernel (one
oneDNN primitive on a CPU) and the backward pass in another, and takes bfloat16 activations
with float32 statistics directly. ``cifarkit bench throughput`` and ``tools/bench_engine.py``
measure the difference; the benchmark page lists the figures.

:class:`FusedBatchNormalization` keeps Keras' weights (``gamma``, ``beta``, ``moving_mean``,
``moving_variance``, in that order), its config and its update rule
``moving = moving * momentum + batch * (1 - momentum)`` with the *biased* batch variance,
so a model saved with one layer loads into the other. It falls back to Keras' own code
wherever the fused kernel does not apply (a mask, renorm, synchronized statistics, an axis
other than the last of a 4-D input).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="cifarkit")
class FusedBatchNormalization(layers.BatchNormalization):
    """:class:`keras.layers.BatchNormalization` computed by ``FusedBatchNormV3``.

    Same arguments, weights and saved config as Keras' layer; only ``call`` differs, and only
    for 4-D channels-last inputs without a mask, renorm or synchronisation.
    """

    def _fusable(self, inputs: Any, mask: Any) -> bool:
        axis = self.axis if isinstance(self.axis, int) else None
        return (
            mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and axis in (-1, 3)
        )

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        # The kernel takes float32, bfloat16 or float16 activations (its T) with float32
        # scale, offset and statistics (its U), so no casts around it under a mixed policy.
        x = tf.convert_to_tensor(inputs)
        if x.dtype not in (tf.float32, tf.bfloat16, tf.float16):
            x = tf.cast(x, self.compute_dtype)
        channels = x.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], tf.float32)
        beta = self.beta if self.center else tf.zeros([channels], tf.float32)
        gamma, beta = tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta)
        if training and self.trainable:
            empty = tf.constant([], tf.float32)
            y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x,
                scale=gamma,
                offset=beta,
                mean=empty,
                variance=empty,
                epsilon=self.epsilon,
                exponential_avg_factor=1.0,
                data_format="NHWC",
                is_training=True,
            )
            # The kernel normalises with the biased variance but returns the Bessel-corrected
            # one (divided by n - 1); Keras' moving variance averages the biased one.
            n = tf.cast(tf.size(x) // channels, tf.float32)
            variance = variance * ((n - 1.0) / tf.maximum(n, 1.0))
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
        else:
            y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x,
                scale=gamma,
                offset=beta,
                mean=tf.convert_to_tensor(self.moving_mean),
                variance=tf.convert_to_tensor(self.moving_variance),
                epsilon=self.epsilon,
                exponential_avg_factor=1.0,
                data_format="NHWC",
                is_training=False,
            )
        return tf.cast(y, self.compute_dtype)


def batch_norm(kind: str = "fused", **kwargs: Any) -> layers.BatchNormalization:
    """A batch-norm layer of ``kind`` (``model.batch_norm``): ``fused`` or Keras' own (``keras``)."""
    if kind == "fused":
        return FusedBatchNormalization(**kwargs)
    if kind == "keras":
        return layers.BatchNormalization(**kwargs)
    raise ValueError(f"batch_norm={kind!r} is not one of 'fused', 'keras'")
