"""A user's image files for ``cifarkit predict``: each kind of bad input is named by file with
its fix and the rest of the batch still answers; conversions are said, not refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cifarkit.core.errors import DataError
from cifarkit.data.user_images import MAX_PIXELS, load_user_image
from cifarkit.runs.predict import BadInput, Classifier, Prediction, predict_files

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _rgb(size=(64, 48), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _mean_colour_classifier() -> Classifier:
    """Class = brightest channel, so the test knows the answer without a model."""

    def probabilities(images: np.ndarray) -> np.ndarray:
        assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
        out = np.full((len(images), len(CLASSES)), 0.01, np.float32)
        out[np.arange(len(images)), images.reshape(len(images), -1, 3).mean(1).argmax(1)] = 0.91
        return out

    return Classifier("stub", CLASSES, probabilities)


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "red.jpg"
    Image.new("RGB", (640, 480), (230, 20, 20)).save(good, quality=95)
    truncated = tmp_path / "truncated.png"
    _rgb((200, 200)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:400])
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    folder = tmp_path / "folder"
    folder.mkdir()
    return {
        "good": good,
        "truncated": truncated,
        "text": text,
        "empty": empty,
        "folder": folder,
        "missing": tmp_path / "missing.png",
    }


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "no such file; check the path"),
        ("folder", "is a folder; pass image files"),
        ("text", "not a PNG or JPEG image; convert it to PNG or JPEG"),
        ("empty", "empty file (0 bytes); re-save or re-download it"),
        ("truncated", "truncated or corrupt image"),
    ],
)
def test_each_bad_input_is_named_with_its_fix(files, kind, message):
    with pytest.raises(DataError) as caught:
        load_user_image(files[kind])
    text = str(caught.value)
    assert text.startswith(f"{files[kind]}: ") and message in text and "\n" not in text


def test_a_huge_image_is_refused_from_its_header_with_the_limit_named(tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 5001)).save(huge)  # 40,008,000 pixels, a few KB on disk
    with pytest.raises(
        DataError, match=r"8000x5001 is 40,008,000 pixels, above the 40,000,000-pixel limit"
    ):
        load_user_image(huge)
    assert MAX_PIXELS == 40_000_000
    small = tmp_path / "small.png"
    _rgb((50, 50)).save(small)
    with pytest.raises(DataError, match="50x50 is 2,500 pixels, above the 1,000-pixel limit"):
        load_user_image(small, max_pixels=1000)


def test_the_rest_of_the_batch_still_answers_in_order(files):
    paths = [files["missing"], files["good"], files["text"], files["good"], files["empty"]]
    results = predict_files(_mean_colour_classifier(), paths, top=2)
    assert [type(r) for r in results] == [BadInput, Prediction, BadInput, Prediction, BadInput]
    assert results[1].top[0] == ("airplane", pytest.approx(0.91))  # red -> channel 0 -> class 0
    assert len(results[1].top) == 2 and results[1].image.resize == "box"
    assert results[0].error.startswith(str(files["missing"]))
    assert predict_files(_mean_colour_classifier(), [files["empty"]])[0].as_dict()["ok"] is False


def test_modes_are_converted_to_rgb_and_said(tmp_path):
    gray = tmp_path / "gray.png"
    Image.new("L", (32, 32), 128).save(gray)
    loaded = load_user_image(gray)
    assert loaded.pixels.shape == (32, 32, 3) and (loaded.pixels == 128).all()
    assert loaded.resize == "none" and any("grayscale" in n for n in loaded.notes)

    palette = tmp_path / "palette.png"
    Image.new("RGB", (40, 40), (0, 0, 255)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        palette
    )
    loaded = load_user_image(palette)
    assert any("palette" in n for n in loaded.notes) and loaded.pixels[..., 2].min() > 200

    alpha = tmp_path / "alpha.png"
    pixels = np.zeros((32, 32, 4), np.uint8)
    pixels[..., 0] = 200
    pixels[:16, :, 3] = 0  # top half transparent
    pixels[16:, :, 3] = 255
    Image.fromarray(pixels, "RGBA").save(alpha)
    loaded = load_user_image(alpha)
    assert any("transparency composited onto white" in n for n in loaded.notes)
    assert (loaded.pixels[:16] == 255).all() and (loaded.pixels[16:, :, 0] == 200).all()

    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((32, 32), 65535, np.uint16)).save(deep)
    loaded = load_user_image(deep)
    assert (loaded.pixels == 255).all() and any("16-bit" in n for n in loaded.notes)

    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(cmyk)
    loaded = load_user_image(cmyk)
    assert any("CMYK" in n for n in loaded.notes) and loaded.pixels[..., 0].mean() > 200


def test_resizing_is_box_down_bicubic_up_and_far_from_square_is_noted(tmp_path):
    big = _rgb((320, 96), seed=1)
    path = tmp_path / "wide.png"
    big.save(path)
    loaded = load_user_image(path)
    expected = np.asarray(big.resize((32, 32), resample=Image.Resampling.BOX))
    assert np.array_equal(loaded.pixels, expected) and loaded.resize == "box"
    assert loaded.size == (320, 96)
    assert any("far from square" in n and "aspect 3.33" in n and "wide" in n for n in loaded.notes)

    small = tmp_path / "small.png"
    _rgb((10, 12)).save(small)
    loaded = load_user_image(small)
    assert loaded.resize == "bicubic" and loaded.pixels.shape == (32, 32, 3)
    assert not any("far from square" in n for n in loaded.notes)  # 1.2 is close enough

    tall = tmp_path / "tall.jpg"
    _rgb((60, 200)).save(tall)
    assert any("tall" in n for n in load_user_image(tall).notes)


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (64, 32), (255, 0, 0))
    img.paste((0, 0, 255), (32, 0, 64, 32))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    loaded = load_user_image(path)
    assert loaded.size == (64, 32) and any("EXIF" in n for n in loaded.notes)
    # Upright it is tall: red on top, blue below.
    assert loaded.pixels[2, 16, 0] > 200 and loaded.pixels[29, 16, 2] > 200
