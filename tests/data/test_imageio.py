import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inclg.data import DataError
from inclg.data.imageio import ImageError, decode_rgb, list_images, load_mask, load_rgb, save_image

FIXTURES = Path(__file__).parent / "fixtures"


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["celeba_183209.webp", "celeba_185337.jpg"])
def test_real_photos_load_as_rgb_uint8(name):
    image = load_rgb(FIXTURES / name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[:2] in ((205, 200), (220, 200))


def test_greyscale_becomes_three_equal_channels():
    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    image = decode_rgb(_encode(grey, "PNG"))
    assert image.shape == (8, 8, 3)
    assert (image[..., 0] == image[..., 2]).all() and image[0, 5, 1] == 5


def test_transparent_pixels_become_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2, :, :] = (10, 20, 30, 255)
    image = decode_rgb(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (image[0, 0] == (10, 20, 30)).all() and (image[3, 3] == 255).all()


def test_16_bit_is_scaled_not_clipped():
    wide = np.array([[0, 32896, 65535]], np.uint16)
    image = decode_rgb(_encode(Image.fromarray(wide), "PNG"))
    assert image[0, :, 0].tolist() == [0, 128, 255]


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees for display
    image = decode_rgb(_encode(img, "JPEG", exif=exif.tobytes()))
    assert image.shape[:2] == (40, 20)


def test_unreadable_bytes_raise_an_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="broken.jpg: cannot be read as an image"):
        load_rgb(bad)
    truncated = tmp_path / "cut.webp"
    truncated.write_bytes((FIXTURES / "celeba_183209.webp").read_bytes()[:500])
    with pytest.raises(DataError, match="cut.webp"):
        load_rgb(truncated)


def test_mask_is_binarised_and_resized_with_nearest(tmp_path):
    mask = np.zeros((512, 512), np.uint8)
    mask[:256] = 255
    save_image(tmp_path / "m.png", mask)
    loaded = load_mask(tmp_path / "m.png", 256)
    assert loaded.shape == (256, 256) and loaded.dtype == np.float32
    assert set(np.unique(loaded).tolist()) == {0.0, 1.0} and loaded.mean() == 0.5


def test_list_images_is_recursive_sorted_and_skips_other_files(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.png", "a.JPG", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images([tmp_path])] == [
        "a.JPG",
        "b/2.png",
        "c.webp",
    ]
    with pytest.raises(DataError, match="no such file or folder"):
        list_images([tmp_path / "missing"])
