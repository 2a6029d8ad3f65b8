"""Image and mask loading that accepts what users actually have: any size, JPEG/PNG/WebP/BMP/TIFF,
EXIF-rotated phone photos, greyscale, palette, RGBA and 16-bit files.

Everything comes back as plain numpy arrays (H x W x 3 uint8 RGB; masks H x W float32 {0, 1}) so
that OpenCV, dlib and torch can all consume them without further conversion.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inclg.data import DataError
from inclg.fileio import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class ImageError(DataError):
    """A file cannot be decoded as an image."""


def decode_rgb(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to H x W x 3 uint8 RGB, upright according to EXIF orientation.

    Transparent pixels are composited over white (the colour of a page), 16-bit channels are scaled
    (not clipped) to 8 bit. `name` only serves the error message.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as err:
        raise ImageError(
            f"{name}: cannot be read as an image ({err}); use a complete JPEG, PNG or WebP file"
        ) from None


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """An opened PIL image as H x W x 3 uint8 RGB, upright, converted as `decode_rgb` does."""
    return _to_rgb(ImageOps.exif_transpose(img))


def _to_rgb(img: Image.Image) -> np.ndarray:
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
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageError(f"{path}: cannot be opened ({err.strerror or err})") from None
    return decode_rgb(data, str(path))


def load_mask(path: str | Path, size: int | None = None) -> np.ndarray:
    """Read a mask as H x W float32, 1 = hole (white on disk), optionally resized to size x size.

    Resizing is nearest-neighbour, so the mask stays binary; any pixel brighter than mid-grey counts
    as hole.
    """
    grey = load_rgb(path).max(axis=2)
    if size is not None and grey.shape != (size, size):
        grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_NEAREST)
    return (grey > 127).astype(np.float32)


def save_image(path: str | Path, image: np.ndarray, quality: int = 95) -> None:
    """Write an RGB uint8 image (or a 2-D mask in {0, 1} / uint8) atomically; format from suffix."""
    path = Path(path)
    if image.ndim == 2:
        pixels = (
            image if image.dtype == np.uint8 else (np.asarray(image) > 0.5).astype(np.uint8) * 255
        )
    else:
        pixels = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    params: list[int] = []
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    elif suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, encoded = cv2.imencode(suffix, pixels, params)
    if not ok:
        raise ImageError(f"{path}: OpenCV cannot encode {suffix!r} images; use .png, .jpg or .webp")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


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
