"""A user's own PNG/JPEG file, of any size, as one 32x32 RGB image a CIFAR-10 model can take.

Each file is checked before it is decoded and every problem becomes one
:class:`~cifarkit.core.errors.DataError` naming the file and what to do: a missing file, a
folder, an empty file, a file that is not a PNG or JPEG, a truncated one, and an image with
more than :data:`MAX_PIXELS` pixels (refused from its header, before its pixels are
decoded). What is converted rather than refused is said in :attr:`UserImage.notes`:
grayscale, palette and CMYK images become RGB, transparency is composited onto white, an
EXIF rotation is applied, and an image far from square is squashed to a square (CIFAR-10
images are square crops, so a crop around the object would match them better).

Downscaling uses Pillow's ``BOX`` filter (the area average of the pixels each output pixel
covers, like OpenCV's ``INTER_AREA``), which does not alias as point sampling would;
upscaling a smaller image uses ``BICUBIC``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from cifarkit.core.errors import DataError

SIZE = 32
MAX_PIXELS = 40_000_000  # 40 megapixels: any camera photo; under Pillow's 89.5 MP bomb warning
FAR_FROM_SQUARE = 1.5  # longer side / shorter side above which a note says the image was squashed
FORMATS = ("PNG", "JPEG")
DOWN, UP = Image.Resampling.BOX, Image.Resampling.BICUBIC
RESIZE_NAMES = {DOWN: "box", UP: "bicubic"}
RESIZE_METHOD = "box (area average) to shrink, bicubic to enlarge, none for 32x32"


@dataclass
class UserImage:
    """One decoded file: its 32x32 RGB pixels and what was done to get them."""

    path: Path
    pixels: np.ndarray  # (32, 32, 3) uint8
    size: tuple[int, int]  # original width, height
    mode: str  # Pillow mode of the file
    file_format: str
    resize: str  # the filter used, or "none" for a 32x32 file
    notes: list[str] = field(default_factory=list)


def load_user_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> UserImage:
    """Read one PNG or JPEG file of any size as a 32x32 RGB image.

    Parameters
    ----------
    path : str or path-like
        The image file.
    max_pixels : int, default :data:`MAX_PIXELS`
        Largest ``width * height`` accepted; larger images are refused before decoding.

    Returns
    -------
    UserImage
        The resized pixels with the original size, mode, resize filter and notes.

    Raises
    ------
    DataError
        For a missing file, a folder, an empty, non-PNG/JPEG, truncated or corrupt file, or
        an image above ``max_pixels``; the message names the file and the fix.
    """
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path, formats=FORMATS) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise DataError(
                    f"{path}: {width}x{height} is {width * height:,} pixels, above the "
                    f"{max_pixels:,}-pixel limit; downscale it first (32x32 is all the model sees)"
                )
            if width < 1 or height < 1:
                raise DataError(f"{path}: the image is {width}x{height}; re-save it")
            file_format, mode = img.format or "?", img.mode
            notes: list[str] = []
            img.load()  # decode now, so a truncated file fails here with its name
            rgb = _to_rgb(_upright(img, notes), notes)
    except DataError:
        raise
    except Image.DecompressionBombError as exc:
        raise DataError(
            f"{path}: refused by Pillow's decompression-bomb limit ({exc}); downscale it first"
        ) from None
    except Image.UnidentifiedImageError:
        raise DataError(f"{path}: not a PNG or JPEG image; convert it to PNG or JPEG") from None
    except (OSError, SyntaxError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:160]
        raise DataError(
            f"{path}: truncated or corrupt image ({type(exc).__name__}: {detail}); re-save or "
            "re-download it"
        ) from None
    ratio = max(rgb.size) / min(rgb.size)
    if ratio > FAR_FROM_SQUARE:
        shape = "wide" if rgb.size[0] > rgb.size[1] else "tall"
        notes.append(
            f"far from square ({rgb.size[0]}x{rgb.size[1]}, aspect {ratio:.2f}, {shape}): squashed "
            "to a square; crop it around the object for a better guess"
        )
    pixels, resize = _resize(rgb)
    return UserImage(path, pixels, (width, height), mode, file_format, resize, notes)


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path}: is a folder; pass image files (e.g. {path}/*.jpg)")
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file; pass a PNG or JPEG file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror}); check its permissions") from None
    if size == 0:
        raise DataError(f"{path}: empty file (0 bytes); re-save or re-download it")


def _upright(img: Image.Image, notes: list[str]) -> Image.Image:
    """Apply a JPEG's EXIF orientation, as a photo viewer shows it."""
    orientation = img.getexif().get(0x0112, 1)
    if orientation in (None, 1):
        return img
    notes.append(f"rotated upright from its EXIF orientation ({orientation})")
    return ImageOps.exif_transpose(img)


def _to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        notes.append("palette image converted to RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        # Pillow's convert clips 16-bit values at 255; scale them to 8 bits instead.
        values = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        img = Image.fromarray(np.clip(values * 255.0 / top, 0, 255).astype(np.uint8), "L")
        notes.append(f"{mode} (16-bit grayscale) scaled to 8 bits and converted to RGB")
    elif mode in ("L", "1", "LA", "La"):
        notes.append(
            f"{'grayscale' if mode != '1' else 'black-and-white'} image ({mode}) converted to RGB"
        )
    elif mode == "CMYK":
        notes.append("CMYK image converted to RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        if alpha.min() < 255:
            notes.append("transparency composited onto white")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def _resize(img: Image.Image) -> tuple[np.ndarray, str]:
    if img.size == (SIZE, SIZE):
        return np.asarray(img, dtype=np.uint8), "none"
    method = DOWN if min(img.size) >= SIZE else UP
    resized = img.resize((SIZE, SIZE), resample=method)
    return np.asarray(resized, dtype=np.uint8), RESIZE_NAMES[method]
