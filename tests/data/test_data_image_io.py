"""read_image / to_tensor: every image mode ends up as 8-bit RGB; bad files raise FadError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fad.data.image_io import read_image, to_tensor
from fad.errors import FadError


def _pixels(path) -> np.ndarray:
    img = read_image(path)
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def test_grayscale_becomes_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.array([[0, 100], [200, 255]], dtype=np.uint8), mode="L").save(path)
    px = _pixels(path)
    assert px.shape == (2, 2, 3)
    assert px[1, 0].tolist() == [200, 200, 200]


def test_cmyk_jpeg_is_converted(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red
    r, g, b = _pixels(path)[8, 8]
    assert r > 200 and g < 60 and b < 60


def test_rgba_alpha_is_dropped_keeping_stored_colour(tmp_path):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (3, 3), (10, 20, 30, 0)).save(path)
    assert _pixels(path)[1, 1].tolist() == [10, 20, 30]


def test_palette_with_transparency(tmp_path):
    path = tmp_path / "pal.png"
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 255, 128, 0] + [0] * 762)
    img.save(path, transparency=0)
    assert _pixels(path)[0, 0].tolist() == [255, 128, 0]


def test_16bit_png_is_scaled_to_8bit(tmp_path):
    path = tmp_path / "deep.png"
    values = np.array([[0, 65535, 257 * 100]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    with Image.open(path) as stored:
        assert stored.mode.startswith("I")
    assert _pixels(path)[0, :, 0].tolist() == [0, 255, 100]


def test_32bit_integer_tiff_uses_16bit_range(tmp_path):
    path = tmp_path / "wide.tif"
    Image.fromarray(np.array([[-5, 257 * 7, 70000]], dtype=np.int32), mode="I").save(path)
    assert _pixels(path)[0, :, 1].tolist() == [0, 7, 255]


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, :10] = (255, 0, 0)  # left quarter red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    Image.fromarray(array).save(path, exif=exif.tobytes(), quality=95)
    upright = read_image(path)
    assert upright.size == (20, 40)  # width and height swapped
    px = np.asarray(upright).astype(int)
    assert px[2, 10, 0] > 200 and px[-3, 10, 0] < 60  # the red left edge is now on top
    assert read_image(path, apply_exif=False).size == (40, 20)


def test_missing_and_corrupt_files_raise_naming_the_path(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FadError, match="nope.jpg"):
        read_image(missing)
    corrupt = tmp_path / "garbage.jpg"
    corrupt.write_bytes(b"this is not an image at all")
    with pytest.raises(FadError, match="garbage.jpg"):
        read_image(corrupt)
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(FadError, match="truncated.jpg"):
        read_image(truncated)


def test_to_tensor_layout_and_range():
    img = Image.fromarray(np.array([[[255, 0, 51]]], dtype=np.uint8))
    tensor = to_tensor(img)
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 1, 1)
    assert torch.allclose(tensor.flatten(), torch.tensor([1.0, 0.0, 0.2]))
    assert to_tensor(Image.new("L", (5, 2), 255)).shape == (3, 2, 5)
