"""tf.data input pipelines that survive a restart.

Each epoch's order and augmentation are pure functions of ``(seed, epoch)``, built from
stateless ops, so a run resumed at epoch k sees exactly the batches an uninterrupted run
would have seen (a seeded ``shuffle`` would replay epoch 0's order after a restart; see
NOTES-reliability). Images stay uint8 until the batch is formed and are cast to float32
0..255 at the end; the models normalise in their first layer.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from cifarkit.config import AugmentConfig

AUTOTUNE = tf.data.AUTOTUNE


def _augment_one(image: tf.Tensor, seed: tf.Tensor, aug: AugmentConfig) -> tf.Tensor:
    """Pad + random crop, horizontal flip and cutout of one uint8 image, from one seed."""
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    if aug.crop_padding:
        p = aug.crop_padding
        padded = tf.pad(image, [[p, p], [p, p], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seeds[0])
    if aug.flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    if aug.cutout:
        image = _cutout(image, aug.cutout, seeds[2])
    return image


def _cutout(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """Zero a size x size square centred uniformly at random (DeVries & Taylor 2017)."""
    height, width = image.shape[0], image.shape[1]
    centre = tf.random.stateless_uniform([2], seed, minval=0, maxval=[height, width], dtype=tf.int32)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    half = size // 2
    inside = ((rows >= centre[0] - half) & (rows < centre[0] - half + size)
              & (cols >= centre[1] - half) & (cols < centre[1] - half + size))
    return image * tf.cast(~inside, image.dtype)[:, :, None]


def train_dataset(x: np.ndarray, y: np.ndarray, *, num_classes: int, batch_size: int,
                  seed: int, start_epoch: int, epochs: int, aug: AugmentConfig,
                  sample_weights: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches for epochs ``start_epoch .. epochs-1``, back to back, each epoch its own order.

    Yields ``(images float32 (B,32,32,3) 0..255, one-hot labels[, sample weights])``;
    every epoch has ``steps_per_epoch(len(x), batch_size)`` batches (the last one smaller),
    so Keras' ``steps_per_epoch`` lines up with epoch boundaries.
    """
    images = tf.constant(x)
    labels = tf.one_hot(tf.constant(y, tf.int32), num_classes)
    weights = None if sample_weights is None else tf.constant(sample_weights, tf.float32)
    n = len(x)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        base = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=base)
        positions = tf.data.Dataset.from_tensor_slices(order).enumerate()

        def load(step: tf.Tensor, index: tf.Tensor):
            image = tf.gather(images, index)
            if aug.enabled:
                # One seed per (epoch, position): independent of batching and of restarts.
                image = _augment_one(image, tf.stack([base[0] * 1_000_003 + epoch, step]), aug)
            out = (image, tf.gather(labels, index))
            return out if weights is None else (*out, tf.gather(weights, index))

        return positions.map(load, num_parallel_calls=AUTOTUNE, deterministic=True).batch(batch_size)

    ds = tf.data.Dataset.range(start_epoch, epochs).flat_map(one_epoch)
    return ds.map(_to_float, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)


def eval_dataset(x: np.ndarray, y: np.ndarray | None = None, *, num_classes: int = 10,
                 batch_size: int = 512) -> tf.data.Dataset:
    """Unaugmented batches in the arrays' order (labels one-hot if given)."""
    if y is None:
        ds = tf.data.Dataset.from_tensor_slices(x)
        return ds.batch(batch_size).map(lambda im: tf.cast(im, tf.float32)).prefetch(AUTOTUNE)
    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(tf.constant(y, tf.int32), num_classes)))
    return ds.batch(batch_size).map(_to_float, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def _to_float(image: tf.Tensor, *rest: tf.Tensor):
    return (tf.cast(image, tf.float32), *rest)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)
