"""Reading images from disk into RGB PIL images and float tensors.

Every image mode a detection set may hold ends up as 8-bit RGB:
- EXIF orientation is applied (a phone photo tagged "rotate 90" comes back upright, its width and
  height swapped), unless `apply_exif=False`;
- grayscale (``1``, ``L``), palette (``P``), ``CMYK``, ``YCbCr`` and friends go through PIL's
  conversion to RGB;
- alpha (``RGBA``, ``LA``, ``PA``, palette transparency) is dropped: the stored colour under a
  transparent pixel is kept, nothing is composited;
- 16/32-bit integer images (``I;16*``, ``I``) are read as 16-bit intensities and scaled to 8 bits
  (value / 257, clipped to [0, 65535] first); float images (``F``) are clipped to [0, 255].

Only regular files are opened (a named pipe would block forever), and an image whose header
promises more than `MAX_IMAGE_PIXELS` is refused before it is decoded (a 164 KB PNG can hold
13000 x 13000 pixels).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fad.errors import FadError
from fad.runtime.limits import MAX_IMAGE_PIXELS, check_regular_file


def read_image(path: str | os.PathLike[str], *, apply_exif: bool = True) -> Image.Image:
    """Read `path` as an 8-bit RGB image (EXIF orientation applied unless `apply_exif=False`).

    Raises FadError naming the path when the file is missing or cannot be decoded.
    """
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        raise FadError(f"image not found: {p}")
    check_regular_file(p, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                _check_pixels(img, p)
                img.load()
                return _to_rgb(_upright(img) if apply_exif else img)
    except FileNotFoundError as exc:
        raise FadError(f"image not found: {p}") from exc
    except (
        OSError,
        UnidentifiedImageError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
    ) as exc:
        raise FadError(f"cannot read image {p}: {exc}") from exc


def _check_pixels(img: Image.Image, path: Path) -> None:
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise FadError(
            f"image {path} is {width}x{height} ({width * height / 1e6:.0f} megapixels), more "
            f"than the {MAX_IMAGE_PIXELS / 1e6:.0f} allowed"
        )


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; an unreadable EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(img)
    except (KeyError, TypeError, ValueError, SyntaxError, OSError):
        return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (see the module docstring for the rules)."""
    mode = img.mode
    if mode == "RGB":
        return img.copy()
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_scale_to_uint8(img), mode="L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # PIL warns when palette transparency is dropped directly
    return img.convert("RGB")


def _scale_to_uint8(img: Image.Image) -> np.ndarray:
    """uint8[H, W] from a 16/32-bit integer (16-bit range) or float (0..255 range) image."""
    array = np.asarray(img)
    if img.mode == "F":
        return np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    wide = np.clip(array.astype(np.int64), 0, 65535)
    return ((wide + 128) // 257).astype(np.uint8)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """FloatTensor[3, H, W] in [0, 1] from a PIL image (converted to RGB if needed)."""
    if img.mode != "RGB":
        img = _to_rgb(img)
    array = np.asarray(img, dtype=np.uint8)  # [H, W, 3]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)
