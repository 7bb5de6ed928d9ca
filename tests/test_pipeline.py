"""The tf.data augmentation, per image and vectorised per batch: cutout blanks one square per
image, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from cifarkit.core.config import AugmentConfig
from cifarkit.data.pipeline import train_dataset


def _one_epoch(aug: AugmentConfig, seed: int = 0) -> np.ndarray:
    x = np.full((16, 32, 32, 3), 200, np.uint8)
    y = np.arange(16) % 10
    ds = train_dataset(
        x, y, num_classes=10, batch_size=16, seed=seed, start_epoch=0, epochs=1, aug=aug
    )
    images, _ = next(iter(ds))
    return images.numpy()


@pytest.mark.parametrize("mode", ["per_image", "batch"])
def test_cutout_blanks_one_square_of_at_most_size_squared_pixels(mode):
    images = _one_epoch(
        AugmentConfig(enabled=True, crop_padding=0, flip=False, cutout=8, mode=mode)
    )
    blank = (images == 0).all(axis=-1)
    for mask in blank:
        rows, cols = np.nonzero(mask)
        assert 0 < mask.sum() <= 64
        # one axis-aligned rectangle (clipped at the border), fully blank
        assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    assert not np.array_equal(blank[0], blank[1])  # each image its own square


@pytest.mark.parametrize("mode", ["per_image", "batch"])
def test_augmentation_is_a_function_of_the_seed(mode):
    aug = AugmentConfig(enabled=True, crop_padding=4, flip=True, cutout=8, mode=mode)
    assert np.array_equal(_one_epoch(aug, 3), _one_epoch(aug, 3))
    assert not np.array_equal(_one_epoch(aug, 3), _one_epoch(aug, 4))


def test_batch_cutout_covers_full_squares_inside_and_clips_at_the_border():
    images = np.concatenate(
        [
            _one_epoch(
                AugmentConfig(enabled=True, crop_padding=0, flip=False, cutout=8, mode="batch"),
                seed,
            )
            for seed in range(8)
        ]
    )
    sizes = (images == 0).all(axis=-1).sum(axis=(1, 2))
    assert (
        sizes.max() == 64 and sizes.min() < 64
    )  # centred inside: full square; near a border: clipped


@pytest.mark.parametrize("mode", ["per_image", "batch"])
def test_batches_stay_uint8_until_the_model_casts_them(mode):
    """A quarter of the bytes per batch copied to the device; the model's input casts to float32."""
    import keras

    from cifarkit.data.pipeline import eval_dataset

    x = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3)).astype(np.uint8)
    y = np.arange(20) % 10
    aug = AugmentConfig(enabled=True, crop_padding=2, flip=True, cutout=4, mode=mode)
    images, labels = next(
        iter(
            train_dataset(
                x, y, num_classes=10, batch_size=8, seed=0, start_epoch=0, epochs=1, aug=aug
            )
        )
    )
    assert images.dtype.name == "uint8" and labels.dtype.name == "float32"
    assert next(iter(eval_dataset(x, y)))[0].dtype.name == "uint8"
    inputs = keras.Input((32, 32, 3), dtype="float32")
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 1.0)(inputs))
    out = model(images)
    assert out.dtype == "float32"
    np.testing.assert_array_equal(out.numpy(), images.numpy().astype(np.float32))
