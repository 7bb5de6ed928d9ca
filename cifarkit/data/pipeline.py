"""tf.data input pipelines that survive a restart.

Each epoch's order and augmentation are pure functions of ``(seed, epoch)``, built from
stateless ops, so a run resumed at epoch k sees exactly the batches an uninterrupted run
would have seen (a seeded ``shuffle`` depends on how often the dataset was iterated in this
process, so after a restart it would replay epoch 0's order). Images stay uint8 until the batch is formed and are cast to float32
0..255 at the end; the models normalise in their first layer.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from cifarkit.core.config import AugmentConfig

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
    return _cutout_batch(image[None], size, seed)[0]


def _cutout_batch(images: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """:func:`_cutout` for a ``(B, H, W, C)`` batch, one random centre per image, no map."""
    height, width = images.shape[1], images.shape[2]
    # Integer stateless_uniform takes a scalar maxval only: draw in [0, 1) and scale per axis.
    unit = tf.random.stateless_uniform([tf.shape(images)[0], 2], seed, dtype=tf.float32)
    centre = tf.cast(tf.floor(unit * tf.constant([height, width], tf.float32)), tf.int32)
    top, left = (centre[:, :1] - size // 2)[:, :, None], (centre[:, 1:] - size // 2)[:, :, None]
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images * tf.cast(~inside, images.dtype)[..., None]


def _augment_batch(images: tf.Tensor, indices: tf.Tensor, seed: tf.Tensor, epoch: tf.Tensor,
                   flip_bits: tf.Tensor, aug: AugmentConfig) -> tf.Tensor:
    """Translate, flip and cutout a whole uint8 batch ``(B, H, W, C)`` at once (no per-image map).

    Translation: reflect-pad by ``crop_padding`` and cut each image's window at a random
    offset with two batched gathers. Flip: random per image or, with ``alternating_flip``
    (airbench), ``flip_bits[index]`` XOR (epoch odd), so every image is seen mirrored in
    exactly one of each pair of epochs. Written by hand because Keras' ``RandomTranslation``
    / ``RandomFlip`` layers keep RNG state (resume would not be exact) and interpolate in float.
    """
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    if aug.crop_padding:
        p = aug.crop_padding
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
        offsets = tf.random.stateless_uniform([batch, 2], seeds[0], minval=0, maxval=2 * p + 1, dtype=tf.int32)
        rows = offsets[:, :1] + tf.range(height)[None, :]
        cols = offsets[:, 1:] + tf.range(width)[None, :]
        images = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    if aug.flip:
        if aug.alternating_flip:
            flip = tf.not_equal(tf.gather(flip_bits, indices), tf.cast(epoch % 2, tf.bool))
        else:
            flip = tf.random.stateless_uniform([batch], seeds[1]) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if aug.cutout:
        images = _cutout_batch(images, aug.cutout, seeds[2])
    return images


def train_dataset(x: np.ndarray, y: np.ndarray, *, num_classes: int, batch_size: int,
                  seed: int, start_epoch: int, epochs: int, aug: AugmentConfig,
                  sample_weights: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches for epochs ``start_epoch .. epochs-1``, back to back, each epoch its own order.

    Yields ``(images float32 (B,32,32,3) 0..255, one-hot labels[, sample weights])``;
    every epoch has ``steps_per_epoch(len(x), batch_size)`` batches (the last one smaller),
    so Keras' ``steps_per_epoch`` lines up with epoch boundaries. ``aug.mode == "batch"``
    augments each gathered batch at once (:func:`_augment_batch`), seeded by (seed, epoch, step).
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

    def one_epoch_batched(epoch: tf.Tensor) -> tf.data.Dataset:
        base = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=base)
        # alternating flip: one random bit per image for each pair of epochs (2k, 2k+1)
        pair_seed = tf.stack([tf.constant(seed, tf.int64) * 1_000_003 + 7, epoch // 2])
        flip_bits = tf.random.stateless_uniform([n], pair_seed) < 0.5

        def load(step: tf.Tensor, index: tf.Tensor):
            image = tf.gather(images, index)
            if aug.enabled:
                image = _augment_batch(image, index, tf.stack([base[0] * 1_000_003 + epoch, step]), epoch,
                                       flip_bits, aug)
            out = (image, tf.gather(labels, index))
            return out if weights is None else (*out, tf.gather(weights, index))

        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return batches.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)

    per_epoch = one_epoch_batched if aug.mode == "batch" else one_epoch
    ds = tf.data.Dataset.range(start_epoch, epochs).flat_map(per_epoch)
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
