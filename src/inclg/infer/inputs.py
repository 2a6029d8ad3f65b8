"""Reading what users have: photos of any size and type, and masks drawn on them.

Photos come back upright (EXIF orientation applied) as H x W x 3 uint8 RGB, with a note of every
conversion (greyscale, transparency, 16 bit). A mask is read as displayed, must have the photo's
displayed size, and is refused when it is empty or clearly not black and white.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inclg.data import DataError
from inclg.data.imageio import ImageError, decode_rgb, pil_to_rgb

MAX_MEGAPIXELS = 100  # larger photos are refused before they are decoded
GREY_RANGE = (26, 229)  # mask values strictly between these (10 %-90 %) are "grey"
MAX_GREY_FRACTION = 0.25  # a mask whose marked pixels are more grey than this is refused
ImageInput = str | Path | bytes | np.ndarray | Image.Image


class PredictError(DataError):
    """A photo or mask cannot be used; the message names it, says why and what to do."""


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


def _not_empty(data: bytes, name: str, what: str) -> None:
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes); {what}")


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
        raise PredictError(f"{name}: the photo has more than {MAX_MEGAPIXELS} megapixels; "
                           "downscale it (a face needs far fewer)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
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
        try:
            data = Path(src).read_bytes()
        except OSError as err:
            raise ImageError(f"{name}: cannot be opened ({err.strerror or err})") from None
    else:
        data, name = src, name or "image"
    _not_empty(data, name, "use a complete JPEG, PNG or WebP photo")
    w, h, mode, orientation, transparent = _header(data, name)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if w * h > MAX_MEGAPIXELS * 1_000_000:
        raise PredictError(f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, above the "
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            pixels = decode_rgb(data, name)
        except ImageError as err:
            raise ImageError(re.sub(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>", "",
                                    str(err))) from None
    return Photo(pixels, name, tuple(notes), orientation,
                 (h, w) if orientation in (5, 6, 7, 8) else (w, h))


def _array_rgb(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (
            array.ndim == 3 and array.shape[2] != 3):
        raise PredictError(f"{name}: an image array must be H x W x 3 (or H x W) uint8 RGB, "
                           f"not {array.dtype} {tuple(array.shape)}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def _mask_values(src: Any, name: str) -> np.ndarray:
    """The mask as H x W uint8 "how much is this region" values, as displayed."""
    if isinstance(src, np.ndarray):
        return _array_mask(src, name)
    if isinstance(src, (str, Path)):
        try:
            data = Path(src).read_bytes()
        except OSError as err:
            raise ImageError(f"{name}: cannot be opened ({err.strerror or err})") from None
    elif isinstance(src, bytes):
        data = src
    elif isinstance(src, Image.Image):
        return _pil_mask(src, name)
    else:
        raise PredictError(f"{name}: a mask must be a file, bytes, an array or a PIL image")
    _not_empty(data, name, "save the mask as a PNG (white = region to predict)")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        raise ImageError(f"{name}: cannot be read as a mask image ({_reason(err)}); "
                         "use a complete PNG (white = region to predict)") from None
    with img:
        return _pil_mask(img, name)


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
        if alpha.min() < 255:  # a drawing on a transparent layer: opaque = region
            return np.array(alpha)
    if mode in ("L", "1"):
        return np.asarray(img.convert("L")).copy()
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
        raise PredictError(f"{name}: a mask array must be H x W (or H x W x 1/3/4), "
                           f"not {tuple(array.shape)}")
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise PredictError(f"{name}: a float mask must hold values in [0, 1] (1 = region)")
        return np.round(array * 255).astype(np.uint8)
    raise PredictError(f"{name}: masks of dtype {array.dtype} are not supported; "
                       "use bool, uint8, uint16 or float in [0, 1]")


def read_mask(src: Any, photo: Photo, name: str | None = None) -> np.ndarray:
    """The user's mask as [H, W] bool (True = region to predict), checked against the photo.

    White, or opaque where the mask has transparency, marks the region; any bit depth. The mask is
    read as displayed (its own EXIF orientation applied) and must have the size of the photo as
    displayed. Anti-aliased edges are thresholded at 50 %; a mask whose marked pixels are more
    than `MAX_GREY_FRACTION` grey (10-90 %) is not a mask and is refused, as is an empty one.
    """
    name = name or (str(src) if isinstance(src, (str, Path)) else "mask")
    values = _mask_values(src, name)
    h, w = photo.pixels.shape[:2]
    if values.shape != (h, w):
        mh, mw = values.shape
        hint = "draw the mask on the photo itself, at full size"
        if photo.orientation != 1 and (mw, mh) == photo.stored_size:
            hint = (f"the photo is displayed rotated (EXIF orientation {photo.orientation}), so "
                    "draw the mask on the photo as it is displayed")
        raise PredictError(f"{name}: the mask is {mw}x{mh} but the photo {photo.name} is "
                           f"{w}x{h}; {hint}")
    marked = np.count_nonzero(values > GREY_RANGE[0])
    if marked == 0:
        raise PredictError(f"{name}: the mask is empty (no white or opaque pixel); paint the "
                           "region to predict in white")
    grey = np.count_nonzero((values > GREY_RANGE[0]) & (values < GREY_RANGE[1]))
    if grey > MAX_GREY_FRACTION * marked:
        raise PredictError(f"{name}: the mask is not black and white ({grey / marked:.0%} of its "
                           "marked pixels are grey); save it with pure white for the region to "
                           "predict and black elsewhere")
    return values >= 128


def name_of(src: Any) -> str:
    """How a mask argument is named in messages and in the JSON."""
    return str(src) if isinstance(src, (str, Path)) else type(src).__name__
