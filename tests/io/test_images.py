"""The one image reader: photos of every type, masks with one meaning for every caller (what is
painted is the hole) in every format, and encoding without metadata."""

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from inclg.errors import DataError, ImageError
from inclg.io.images import (
    Photo,
    binarise,
    decode_rgb,
    encode_image,
    list_images,
    load_mask,
    load_rgb,
    mask_values,
    painted,
    read_mask,
    save_image,
)

FIXTURES = Path(__file__).parents[1] / "data" / "fixtures"


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
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
    image = decode_rgb(_encode(grey))
    assert image.shape == (8, 8, 3)
    assert (image[..., 0] == image[..., 2]).all() and image[0, 5, 1] == 5


def test_transparent_pixels_of_a_photo_become_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2, :, :] = (10, 20, 30, 255)
    image = decode_rgb(_encode(Image.fromarray(rgba, "RGBA")))
    assert (image[0, 0] == (10, 20, 30)).all() and (image[3, 3] == 255).all()


def test_16_bit_is_scaled_not_clipped():
    wide = np.array([[0, 32896, 65535]], np.uint16)
    image = decode_rgb(_encode(Image.fromarray(wide)))
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
    with pytest.raises(ImageError, match="missing.png: cannot be opened"):
        load_rgb(tmp_path / "missing.png")


# --- masks: what is painted is the hole, in every format ---------------------------------------


def _hole() -> np.ndarray:
    """[40, 50] bool: the hole every format below encodes."""
    hole = np.zeros((40, 50), bool)
    cv2.ellipse(hole.view(np.uint8), (25, 20), (14, 9), 0, 0, 360, 1, -1)
    return hole


def _formats(hole: np.ndarray) -> dict[str, bytes]:
    white = hole.astype(np.uint8) * 255
    paint = np.full((*hole.shape, 4), 255, np.uint8)
    paint[..., 3] = white  # white paint on a transparent layer
    red = np.zeros((*hole.shape, 4), np.uint8)
    red[..., 0], red[..., 3] = 255, white  # red paint: the colour does not matter
    opaque = np.dstack([white, white, white, np.full(hole.shape, 255, np.uint8)])
    palette = Image.fromarray(white).convert("P")
    transparent = Image.fromarray(np.where(hole, 1, 0).astype(np.uint8), "P")
    transparent.putpalette([0, 0, 0, 255, 255, 255])
    transparent.info["transparency"] = 0  # index 0 transparent, index 1 painted white
    return {
        "rgba: white paint on transparency": _encode(Image.fromarray(paint)),
        "rgba: red paint on transparency": _encode(Image.fromarray(red)),
        "rgba: opaque white on black": _encode(Image.fromarray(opaque)),
        "la: paint on transparency": _encode(Image.fromarray(np.dstack([white * 0, white]),
                                                             "LA")),
        "p: palette white on black": _encode(palette),
        "p: palette with a transparent index": _encode(transparent, transparency=0),
        "1-bit": _encode(Image.fromarray(hole)),
        "8-bit grey": _encode(Image.fromarray(white)),
        "16-bit grey": _encode(Image.fromarray(white.astype(np.uint16) * 257)),
        "rgb": _encode(Image.fromarray(np.dstack([white] * 3))),
    }


@pytest.mark.parametrize("name", list(_formats(_hole())))
def test_every_mask_format_has_the_same_hole_for_every_reader(name, tmp_path):
    hole = _hole()
    data = _formats(hole)[name]
    path = tmp_path / "mask.png"
    path.write_bytes(data)
    assert np.array_equal(binarise(mask_values(data)), hole)
    assert np.array_equal(load_mask(path), hole.astype(np.float32))  # training, evaluation
    photo = Photo(np.zeros((*hole.shape, 3), np.uint8), "photo.jpg")
    assert np.array_equal(read_mask(path, photo), hole)  # predict and the app


def test_a_jpeg_mask_is_thresholded_at_half():
    hole = _hole()
    data = _encode(Image.fromarray(hole.astype(np.uint8) * 255), "JPEG", quality=90)
    found = binarise(mask_values(data))
    assert (found != hole).sum() <= 0.05 * hole.sum()  # only ringing at the edge differs


def test_white_paint_on_a_transparent_page_is_not_a_full_hole(tmp_path):
    """The bug this module fixed: the training reader saw 100 % hole, predict 2.4 %."""
    layer = np.zeros((100, 100, 4), np.uint8)
    layer[40:56, 40:55] = (255, 255, 255, 255)
    path = tmp_path / "paint.png"
    Image.fromarray(layer).save(path)
    assert load_mask(path).mean() == pytest.approx(0.024)


def test_nvidia_style_masks_load_as_before(tmp_path):
    """1-bit PNGs, white = hole, resized with nearest neighbours: what training reads."""
    rng = np.random.default_rng(0)
    hole = rng.random((512, 512)) > 0.7
    path = tmp_path / "00001.png"
    Image.fromarray(hole).save(path)
    loaded = load_mask(path, 256)
    expected = cv2.resize(hole.astype(np.uint8) * 255, (256, 256),
                          interpolation=cv2.INTER_NEAREST) > 127
    assert loaded.dtype == np.float32 and np.array_equal(loaded, expected.astype(np.float32))


def test_mask_is_binarised_and_resized_with_nearest(tmp_path):
    mask = np.zeros((512, 512), np.uint8)
    mask[:256] = 255
    save_image(tmp_path / "m.png", mask)
    loaded = load_mask(tmp_path / "m.png", 256)
    assert loaded.shape == (256, 256) and loaded.dtype == np.float32
    assert set(np.unique(loaded).tolist()) == {0.0, 1.0} and loaded.mean() == 0.5


def test_mask_arrays_of_every_dtype():
    hole = _hole()
    for array in (hole, hole.astype(np.uint8) * 255, hole.astype(np.uint16) * 65535,
                  hole.astype(np.float32), hole[..., None].astype(np.uint8) * 255):
        assert np.array_equal(binarise(mask_values(array)), hole), array.dtype
    with pytest.raises(ImageError, match="values in \\[0, 1\\]"):
        mask_values(hole.astype(np.float32) * 2)
    with pytest.raises(ImageError, match="must be a file, bytes, an array or a PIL image"):
        mask_values(42)


def test_a_users_mask_is_checked():
    photo = Photo(np.zeros((40, 50, 3), np.uint8), "photo.jpg")
    with pytest.raises(ImageError, match="the mask is 20x10 but the photo photo.jpg is 50x40"):
        read_mask(np.zeros((10, 20), np.uint8), photo)
    with pytest.raises(ImageError, match="the mask is empty"):
        read_mask(np.zeros((40, 50), np.uint8), photo)
    grey = np.full((40, 50), 128, np.uint8)
    with pytest.raises(ImageError, match="not black and white"):
        read_mask(grey, photo)


def test_paint_layers_count_any_paint():
    layer = np.zeros((60, 75, 4), np.uint8)
    layer[10:20, 30:40] = (255, 0, 0, 150)
    mask = painted([layer, None, np.zeros((60, 75), np.uint8)], (120, 150))
    assert mask.dtype == bool and mask[20:40, 60:80].all() and mask.sum() == 20 * 20


# --- writing ------------------------------------------------------------------------------------


def test_encoded_images_carry_no_metadata_and_round_trip():
    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), np.uint8)
    png = encode_image(image)
    with Image.open(io.BytesIO(png)) as img:
        assert not img.getexif() and not getattr(img, "text", {})
        assert np.array_equal(np.asarray(img), image)
    with Image.open(io.BytesIO(encode_image(image, ".jpg", quality=90))) as img:
        assert img.format == "JPEG" and not img.getexif()
    with pytest.raises(ImageError, match="cannot encode '.xyz'"):
        encode_image(image, ".xyz")


def test_save_image_is_atomic_and_names_the_file(tmp_path):
    save_image(tmp_path / "a.webp", np.zeros((8, 8, 3), np.uint8))
    assert load_rgb(tmp_path / "a.webp").shape == (8, 8, 3)
    with pytest.raises(ImageError, match="x.xyz: OpenCV cannot encode"):
        save_image(tmp_path / "x.xyz", np.zeros((8, 8, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.webp"]  # no temporary left


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
