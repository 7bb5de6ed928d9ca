"""tf.data input pipelines that survive a restart.

Each epoch's order and augmentation are pure functions of ``(seed, epoch)``, built from
stateless ops, so a run resumed at epoch k sees exactly the batches an uninterrupted run
would have seen (a seeded ``shuffle`` depends on how often the dataset was iterated in this
process, so after a restart it would replay epoch 0's order).

Images stay uint8 all the way into the training step: the pipelines yield uint8 batches and
the model casts them to float32 0..255 as its input (then normalises in its first layer), so
a batch copied to a GPU is a quarter of the bytes a float32 batch would be.

On a GPU, ``batch`` augmentation runs there (:func:`device_batches`): the uint8 training array
is put on the card once, tf.data yields only each batch's indices and seeds, and the training
step gathers and augments the whole batch on the card (:class:`DeviceFeed`), from the same
seeds and with the same arithmetic as :func:`train_dataset`, so the batches are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from cifarkit.core.config import AugmentConfig

AUTOTUNE = tf.data.AUTOTUNE
# The batch augmentation's random draws (and cutout's) name their algorithm: "auto_select" may
# pick another per device, and a run resumed on another kind of machine must see the same batches.
_ALG = "philox"


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
    unit = tf.random.stateless_uniform([tf.shape(images)[0], 2], seed, dtype=tf.float32, alg=_ALG)
    centre = tf.cast(tf.floor(unit * tf.constant([height, width], tf.float32)), tf.int32)
    top, left = (centre[:, :1] - size // 2)[:, :, None], (centre[:, 1:] - size // 2)[:, :, None]
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images * tf.cast(~inside, images.dtype)[..., None]


def _augment_batch(
    images: tf.Tensor, seed: tf.Tensor, flip: tf.Tensor, aug: AugmentConfig
) -> tf.Tensor:
    """Translate, flip and cutout a whole batch ``(B, H, W, C)`` at once (no per-image map).

    Translation: reflect-pad by ``crop_padding`` and cut each image's window at a random
    offset with two batched gathers. Flip: random per image or, with ``alternating_flip``
    (airbench), ``flip`` (one bool per image, from :func:`_batch_ids`). Only data movement
    and a multiplication by 0 or 1, so uint8 and float32 batches give the same values.
    Written by hand because Keras' ``RandomTranslation`` / ``RandomFlip`` layers keep RNG
    state (resume would not be exact) and interpolate in float.
    """
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    seeds = tf.random.experimental.stateless_split(seed, num=3, alg=_ALG)
    if aug.crop_padding:
        p = aug.crop_padding
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
        offsets = tf.random.stateless_uniform(
            [batch, 2], seeds[0], minval=0, maxval=2 * p + 1, dtype=tf.int32, alg=_ALG
        )
        rows = offsets[:, :1] + tf.range(height)[None, :]
        cols = offsets[:, 1:] + tf.range(width)[None, :]
        images = tf.gather(
            tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1
        )
    if aug.flip:
        if not aug.alternating_flip:
            flip = tf.random.stateless_uniform([batch], seeds[1], alg=_ALG) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if aug.cutout:
        images = _cutout_batch(images, aug.cutout, seeds[2])
    return images


def _batch_ids(n: int, batch_size: int, seed: int, epoch: tf.Tensor) -> tf.data.Dataset:
    """One epoch of ``batch`` augmentation as what each batch needs, not its pixels: the
    images' ``index``, the batch's ``seed`` (from seed, epoch and step) and, for the
    alternating flip, ``flip`` (one random bit per image for each pair of epochs (2k, 2k+1),
    XOR epoch odd, so every image is seen mirrored in exactly one epoch of each pair)."""
    base = tf.stack([tf.constant(seed, tf.int64), epoch])
    order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=base)
    pair_seed = tf.stack([tf.constant(seed, tf.int64) * 1_000_003 + 7, epoch // 2])
    flip_bits = tf.random.stateless_uniform([n], pair_seed) < 0.5

    def ids(step: tf.Tensor, index: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            "index": index,
            "seed": tf.stack([base[0] * 1_000_003 + epoch, step]),
            "flip": tf.not_equal(tf.gather(flip_bits, index), tf.cast(epoch % 2, tf.bool)),
        }

    return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate().map(ids)


def _with_targets(
    ids: tf.data.Dataset,
    labels: tf.Tensor,
    weights: tf.Tensor | None,
    images: Any,
    aug: AugmentConfig | None,
) -> tf.data.Dataset:
    """``(x, one-hot labels[, weights])`` per batch of ``ids``: x the augmented uint8 batch gathered
    from ``images``, or (``images`` None) the ids themselves, for :class:`DeviceFeed`."""

    def load(batch: dict[str, tf.Tensor]):
        x = batch if images is None else _augmented_batch(images, batch, aug)
        out = (x, tf.gather(labels, batch["index"]))
        return out if weights is None else (*out, tf.gather(weights, batch["index"]))

    return ids.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)


def _augmented_batch(
    images: Any, batch: dict[str, tf.Tensor], aug: AugmentConfig | None, dtype: Any = None
) -> tf.Tensor:
    """The images of one batch of :func:`_batch_ids`, gathered from ``images`` (all training
    images) and augmented (not when ``aug`` is None or off); cast to ``dtype`` right after the
    gather, if given."""
    x = tf.gather(images, batch["index"])
    if dtype is not None:
        x = tf.cast(x, dtype)
    return _augment_batch(x, batch["seed"], batch["flip"], aug) if aug and aug.enabled else x


def train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_classes: int,
    batch_size: int,
    seed: int,
    start_epoch: int,
    epochs: int,
    aug: AugmentConfig,
    sample_weights: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batches for epochs ``start_epoch .. epochs-1``, back to back, each epoch its own order.

    Yields ``(images uint8 (B,32,32,3), one-hot labels[, sample weights])``; the model casts
    the images to float32 inside the training step. Every epoch has
    ``steps_per_epoch(len(x), batch_size)`` batches (the last one smaller), so Keras'
    ``steps_per_epoch`` lines up with epoch boundaries. ``aug.mode == "batch"`` augments each
    gathered batch at once (:func:`_augment_batch`), seeded by (seed, epoch, step).
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

        return positions.map(load, num_parallel_calls=AUTOTUNE, deterministic=True).batch(
            batch_size
        )

    def one_epoch_batched(epoch: tf.Tensor) -> tf.data.Dataset:
        return _with_targets(_batch_ids(n, batch_size, seed, epoch), labels, weights, images, aug)

    per_epoch = one_epoch_batched if aug.mode == "batch" else one_epoch
    return tf.data.Dataset.range(start_epoch, epochs).flat_map(per_epoch).prefetch(AUTOTUNE)


@dataclass(frozen=True)
class DeviceFeed:
    """The uint8 training images on an accelerator, and the batch augmentation run there.

    The images are held in a variable, whose gather has a uint8 kernel on a GPU (a plain
    tensor's has none); each batch is cast to float32 right after the gather, and padded,
    cropped, flipped and cut out there, all ops with float32 GPU kernels.
    """

    images: tf.Variable
    aug: AugmentConfig

    def batch(self, ids: dict[str, tf.Tensor]) -> tf.Tensor:
        """The float32 0..255 batch of one element of :func:`device_batches`."""
        with tf.device(self.images.device):
            return _augmented_batch(self.images, ids, self.aug, dtype=tf.float32)


def device_batches(
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_classes: int,
    batch_size: int,
    seed: int,
    start_epoch: int,
    epochs: int,
    aug: AugmentConfig,
    device: str,
    sample_weights: np.ndarray | None = None,
) -> tuple[tf.data.Dataset, DeviceFeed]:
    """:func:`train_dataset` for ``batch`` augmentation with the images on ``device`` (``/GPU:0``).

    The dataset yields ``({"index", "seed", "flip"}, one-hot labels[, weights])``: no pixels.
    :meth:`DeviceFeed.batch` turns each first element into the batch :func:`train_dataset`
    yields for the same arguments (as float32); the training step calls it.
    """
    if aug.mode != "batch":
        raise ValueError(
            f"augmentation on the device needs train.augment.mode: batch, not {aug.mode!r}"
        )
    with tf.device(device):
        images = tf.Variable(x, trainable=False, name="training_images")
    labels = tf.one_hot(tf.constant(y, tf.int32), num_classes)
    weights = None if sample_weights is None else tf.constant(sample_weights, tf.float32)
    ds = tf.data.Dataset.range(start_epoch, epochs).flat_map(
        lambda epoch: _with_targets(
            _batch_ids(len(x), batch_size, seed, epoch), labels, weights, None, aug
        )
    )
    return ds.prefetch(AUTOTUNE), DeviceFeed(images, aug)


def eval_dataset(
    x: np.ndarray, y: np.ndarray | None = None, *, num_classes: int = 10, batch_size: int = 512
) -> tf.data.Dataset:
    """Unaugmented uint8 batches in the arrays' order (labels one-hot if given); the model
    casts them to float32 inside its step."""
    if y is None:
        return tf.data.Dataset.from_tensor_slices(x).batch(batch_size).prefetch(AUTOTUNE)
    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(tf.constant(y, tf.int32), num_classes)))
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)
