"""The one place that reads and writes images: photos, masks, and every image INCLG saves.

Photos of any size and type (JPEG, PNG, WebP, BMP, TIFF; EXIF-rotated, greyscale, palette, RGBA,
16 bit) come back upright as H x W x 3 uint8 RGB; transparency is composited over white and
`read_photo` notes every conversion.

Masks have one meaning for every caller (training, evaluation, the privacy audit, predict and the
app): **what is painted is the hole**. White (any bright colour) on black is the hole; on a mask
with transparency, the painted, opaque pixels are the hole whatever their colour, so white paint
on a transparent layer is that paint, not the whole image. Any bit depth (1-bit, 8-bit, 16-bit)
and any image type, read as displayed (EXIF orientation applied). `mask_values` gives the
[H, W] uint8 "how much is this pixel hole" values, `binarise` thresholds them at 50 %; `load_mask`
(training) and `read_mask` (a user's mask, with checks) are both built on them.

`encode_image` / `save_image` write PNG, JPEG or WebP with no metadata at all (OpenCV writes no
EXIF: no GPS position, camera or date leaves with an image).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inclg.errors import DataError, ImageError
from inclg.io.files import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_MEGAPIXELS = 100  # larger photos are refused before they are decoded
GREY_RANGE = (26, 229)  # mask values strictly between these (10 %-90 %) are "grey"
MAX_GREY_FRACTION = 0.25  # a user's mask whose marked pixels are more grey than this is refused
ImageInput = str | Path | bytes | np.ndarray | Image.Image
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                  Image.DecompressionBombError)


# --- photos -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    """An upright RGB photo and what was done to read it."""

    pixels: np.ndarray  # [H, W, 3] uint8 RGB, EXIF orientation applied
    name: str  # for messages
    notes: tuple[str, ...] = ()  # conversions applied, e.g. "16-bit channels reduced to 8 bit"
    orientation: int = 1  # the EXIF orientation that was applied (1 = none)
    stored_size: tuple[int, int] | None = None  # (width, height) in the file, before rotation


def _reason(err: BaseException) -> str:
    """A decoder's complaint without Python object reprs such as ``<_io.BytesIO object at 0x..>``
    (Pillow names its in-memory file in some messages)."""
    if isinstance(err, UnidentifiedImageError):
        return "not a JPEG, PNG, WebP, BMP or TIFF image, or a damaged one"
    text = re.sub(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>", "", str(err)).strip(" :")
    return text or type(err).__name__


def _read(path: str | Path, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ImageError(f"{name}: cannot be opened ({err.strerror or err})") from None


def _not_empty(data: bytes, name: str, what: str) -> None:
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes); {what}")


def decode_rgb(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to H x W x 3 uint8 RGB, upright according to EXIF orientation.

    Transparent pixels are composited over white (the colour of a page), 16-bit channels are scaled
    (not clipped) to 8 bit. `name` only serves the error message.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                return pil_to_rgb(img)
    except _DECODE_ERRORS as err:
        raise ImageError(f"{name}: cannot be read as an image ({_reason(err)}); use a complete "
                         "JPEG, PNG or WebP file") from None


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """An opened PIL image as H x W x 3 uint8 RGB, upright, converted as `decode_rgb` does."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(img, dtype=np.float64)
        grey = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode == "F":
        grey = np.clip(np.round(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(page, rgba)
    return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB (see `decode_rgb`)."""
    return decode_rgb(_read(path, str(path)), str(path))


def _header(data: bytes, name: str) -> tuple[int, int, str, int, bool]:
    """(width, height) as stored, mode, EXIF orientation and transparency, without decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                orientation = int(img.getexif().get(0x0112, 1) or 1)
                mode, transparent = img.mode, "transparency" in img.info
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: the photo has more than {MAX_MEGAPIXELS} megapixels; "
                         "downscale it (a face needs far fewer)") from None
    except _DECODE_ERRORS as err:
        raise ImageError(f"{name}: cannot be read as an image ({_reason(err)}); "
                         "use a complete JPEG, PNG or WebP file") from None
    return w, h, mode, orientation, transparent


def read_photo(src: ImageInput, name: str | None = None) -> Photo:
    """The photo `src` (path, encoded bytes, H x W x 3 uint8 array or PIL image), upright.

    Photos above `MAX_MEGAPIXELS` are refused from the file header, before any decoding.
    """
    if isinstance(src, np.ndarray):
        return Photo(_array_rgb(src, name or "image"), name or "image")
    if isinstance(src, Image.Image):
        return Photo(pil_to_rgb(src), name or "image")
    if isinstance(src, (str, Path)):
        name = name or str(src)
        data = _read(src, name)
    else:
        data, name = src, name or "image"
    _not_empty(data, name, "use a complete JPEG, PNG or WebP photo")
    w, h, mode, orientation, transparent = _header(data, name)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if w * h > MAX_MEGAPIXELS * 1_000_000:
        raise ImageError(f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, above the "
                         f"{MAX_MEGAPIXELS} MP limit; downscale it (a face needs far fewer)")
    notes = []
    if orientation != 1:
        notes.append(f"EXIF orientation {orientation} applied")
    if mode.startswith("I;16") or mode == "I" or (data[:8] == b"\x89PNG\r\n\x1a\n"
                                                  and len(data) > 24 and data[24] == 16):
        notes.append("16-bit channels reduced to 8 bit")
    if mode in ("L", "LA", "1", "I", "F") or mode.startswith("I;16"):
        notes.append("greyscale, written as RGB")
    if mode in ("RGBA", "LA", "PA") or transparent:
        notes.append("transparency composited over white")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    return Photo(decode_rgb(data, name), name, tuple(notes), orientation,
                 (h, w) if orientation in (5, 6, 7, 8) else (w, h))


def _array_rgb(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (
            array.ndim == 3 and array.shape[2] != 3):
        raise ImageError(f"{name}: an image array must be H x W x 3 (or H x W) uint8 RGB, "
                         f"not {array.dtype} {tuple(array.shape)}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


# --- masks --------------------------------------------------------------------------------------


def mask_values(src: Any, name: str | None = None) -> np.ndarray:
    """The mask `src` (a file, encoded bytes, an array or a PIL image) as displayed: [H, W] uint8,
    how much each pixel is hole (255 = fully). See the module docstring for what counts as hole.

    Arrays may be bool, uint8, uint16 or float in [0, 1], H x W or H x W x 1/3/4.
    """
    name = name or (str(src) if isinstance(src, (str, Path)) else "mask")
    if isinstance(src, np.ndarray):
        return _array_mask(src, name)
    if isinstance(src, Image.Image):
        return _pil_mask(src, name)
    if isinstance(src, (str, Path)):
        data = _read(src, name)
    elif isinstance(src, bytes):
        data = src
    else:
        raise ImageError(f"{name}: a mask must be a file, bytes, an array or a PIL image")
    _not_empty(data, name, "save the mask as a PNG (white = region to predict)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return _pil_mask(img, name)
    except _DECODE_ERRORS as err:
        raise ImageError(f"{name}: cannot be read as a mask image ({_reason(err)}); "
                         "use a complete PNG (white = region to predict)") from None


def _pil_mask(img: Image.Image, name: str) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        return (np.clip(np.asarray(img, np.int64), 0, 65535) >> 8).astype(np.uint8)
    if mode == "F":
        return _array_mask(np.asarray(img, np.float32), name)
    if mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        alpha = np.asarray(img.getchannel("A") if mode in ("RGBA", "LA")
                           else img.convert("RGBA").getchannel("A"))
        if alpha.min() < 255:  # a drawing on a transparent layer: the painted pixels
            return np.array(alpha)
    if mode in ("L", "1"):
        return np.array(img.convert("L"))
    return np.asarray(img.convert("RGB")).max(axis=2)


def _array_mask(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[:, :, 3]
        array = alpha if alpha.min() < alpha.max() or alpha.max() == 0 else array[:, :, :3]
    if array.ndim == 3 and array.shape[2] == 3:
        array = array.max(axis=2)
    if array.ndim != 2:
        raise ImageError(f"{name}: a mask array must be H x W (or H x W x 1/3/4), "
                         f"not {tuple(array.shape)}")
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageError(f"{name}: a float mask must hold values in [0, 1] (1 = region)")
        return np.round(array * 255).astype(np.uint8)
    raise ImageError(f"{name}: masks of dtype {array.dtype} are not supported; "
                     "use bool, uint8, uint16 or float in [0, 1]")


def binarise(values: np.ndarray) -> np.ndarray:
    """[H, W] bool, True = hole: `mask_values` thresholded at 50 % (anti-aliased edges split)."""
    return values >= 128


def load_mask(path: str | Path, size: int | None = None) -> np.ndarray:
    """A mask file as H x W float32, 1 = hole, optionally resized to size x size (training,
    evaluation and the privacy audit read mask sets with it).

    Resizing is nearest-neighbour, so the mask stays binary.
    """
    values = mask_values(path, str(path))
    if size is not None and values.shape != (size, size):
        values = cv2.resize(values, (size, size), interpolation=cv2.INTER_NEAREST)
    return binarise(values).astype(np.float32)


def read_mask(src: Any, photo: Photo, name: str | None = None) -> np.ndarray:
    """A user's mask for `photo` as [H, W] bool (True = region to predict), checked.

    It must have the size of the photo as displayed. A mask whose marked pixels are more than
    `MAX_GREY_FRACTION` grey (10-90 %) is not a mask and is refused, as is an empty one.
    """
    name = name or (str(src) if isinstance(src, (str, Path)) else "mask")
    values = mask_values(src, name)
    h, w = photo.pixels.shape[:2]
    if values.shape != (h, w):
        mh, mw = values.shape
        hint = "draw the mask on the photo itself, at full size"
        if photo.orientation != 1 and (mw, mh) == photo.stored_size:
            hint = (f"the photo is displayed rotated (EXIF orientation {photo.orientation}), so "
                    "draw the mask on the photo as it is displayed")
        raise ImageError(f"{name}: the mask is {mw}x{mh} but the photo {photo.name} is "
                         f"{w}x{h}; {hint}")
    marked = np.count_nonzero(values > GREY_RANGE[0])
    if marked == 0:
        raise ImageError(f"{name}: the mask is empty (no white or opaque pixel); paint the "
                         "region to predict in white")
    grey = np.count_nonzero((values > GREY_RANGE[0]) & (values < GREY_RANGE[1]))
    if grey > MAX_GREY_FRACTION * marked:
        raise ImageError(f"{name}: the mask is not black and white ({grey / marked:.0%} of its "
                         "marked pixels are grey); save it with pure white for the region to "
                         "predict and black elsewhere")
    return binarise(values)


def painted(layers: Sequence[np.ndarray | None], shape: tuple[int, int]) -> np.ndarray:
    """[H, W] bool at `shape`: where any of the RGBA paint layers [h, w, 4] holds paint (alpha >
    0), each resized (nearest) to `shape`. A paint layer's opacity is how the brush looks, not
    how much a pixel is hole, so any paint counts (the app's editor)."""
    mask = np.zeros(shape, bool)
    for layer in layers:
        if layer is None or layer.ndim != 3 or layer.shape[2] != 4:
            continue
        alpha = (layer[..., 3] > 0).astype(np.uint8)
        if alpha.shape != shape:
            alpha = cv2.resize(alpha, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
        mask |= alpha > 0
    return mask


# --- writing ------------------------------------------------------------------------------------


def encode_image(image: np.ndarray, suffix: str = ".png", quality: int = 95) -> bytes:
    """PNG, JPEG or WebP bytes of an RGB uint8 image [H, W, 3] or a mask [H, W] (uint8, or {0, 1}
    / bool written as 0 / 255), with no metadata at all. `quality` is JPEG's and WebP's."""
    if image.ndim == 2:
        pixels = image if image.dtype == np.uint8 else (np.asarray(image) > 0.5).astype(
            np.uint8) * 255
    else:
        pixels = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    suffix = suffix.lower()
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    elif suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    try:
        ok, encoded = cv2.imencode(suffix, pixels, params)
    except cv2.error:
        ok = False
    if not ok:
        raise ImageError(f"OpenCV cannot encode {suffix!r} images; use .png, .jpg or .webp")
    return encoded.tobytes()


def save_image(path: str | Path, image: np.ndarray, quality: int = 95) -> None:
    """Write an image or mask (see `encode_image`) atomically; the format from the suffix."""
    path = Path(path)
    try:
        data = encode_image(image, path.suffix, quality)
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from None
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def list_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files named directly or found (recursively) under folders, sorted for determinism."""
    found: list[Path] = []
    for item in paths:
        item = Path(item)
        if item.is_dir():
            found.extend(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        elif item.is_file():
            found.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    return sorted(found)


__all__ = ["GREY_RANGE", "IMAGE_SUFFIXES", "MAX_GREY_FRACTION", "MAX_MEGAPIXELS", "ImageError",
           "ImageInput", "Photo", "binarise", "decode_rgb", "encode_image", "list_images",
           "load_mask", "load_rgb", "mask_values", "painted", "pil_to_rgb", "read_mask",
           "read_photo", "save_image"]
