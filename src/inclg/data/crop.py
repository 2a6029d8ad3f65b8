"""Photo <-> aligned crop: which part of a photo a crop samples, and cutting the crop from it at
the right scale. `inclg.data.align` fits the alignment; this module applies it to a photo of any
size, so a 48-megapixel photo is handled as a small window around the face.
"""

from __future__ import annotations

import cv2
import numpy as np

from inclg.data.align import Alignment, invert_affine, transform_points, warp

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), in the photo's pixels


def reframe(alignment: Alignment, origin: tuple[float, float], shape: tuple[int, int],
            scale: tuple[float, float] = (1.0, 1.0)) -> Alignment:
    """`alignment` re-expressed for a window of the photo at `origin` (x, y) of `shape` (h, w),
    optionally resized by `scale` (fx, fy) with cv2.resize's pixel-centre convention."""
    inv = np.diag([1.0 / scale[0], 1.0 / scale[1]])  # window px -> photo px, before the offset
    offset = 0.5 / np.asarray(scale) - 0.5 + np.asarray(origin, np.float64)
    matrix = np.empty((2, 3))
    matrix[:, :2] = alignment.matrix[:, :2] @ inv
    matrix[:, 2] = alignment.matrix[:, :2] @ offset + alignment.matrix[:, 2]
    return Alignment(matrix, invert_affine(matrix), alignment.size, shape, alignment.outside,
                     alignment.residual)


def crop_footprint(alignment: Alignment, shape: tuple[int, int], margin: int = 2) -> Box:
    """The photo box (x0, y0, x1, y1) that the aligned crop samples from, clipped to the photo."""
    s = alignment.size - 0.5
    corners = transform_points(np.array([[-0.5, -0.5], [s, -0.5], [s, s], [-0.5, s]]),
                               alignment.inverse)
    h, w = shape
    x0, y0 = np.floor(corners.min(0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(0)).astype(int) + margin + 1
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def window_alignment(alignment: Alignment, box: Box) -> Alignment:
    """`alignment` for the pixels of `box` cut out of the photo."""
    x0, y0, x1, y1 = box
    return reframe(alignment, (x0, y0), (y1 - y0, x1 - x0))


def cut_crop(pixels: np.ndarray, alignment: Alignment, border: str | None) -> np.ndarray:
    """Cut the aligned crop from `pixels` (the frame `alignment` describes).

    Where the face is larger than the crop, the frame is first reduced with area averaging to
    about the crop's scale, so a phone photo gives a clean crop rather than an aliased one.
    `border` None warps a mask (outside = 0); otherwise it is `inclg.data.align.warp`'s mode.
    """
    if alignment.scale < 0.8:
        h, w = pixels.shape[:2]
        nw, nh = max(1, round(w * alignment.scale)), max(1, round(h * alignment.scale))
        pixels = cv2.resize(pixels, (nw, nh), interpolation=cv2.INTER_AREA)
        alignment = reframe(alignment, (0.0, 0.0), (nh, nw), (nw / w, nh / h))
    if border is None:
        return cv2.warpAffine(pixels, alignment.matrix, (alignment.size, alignment.size),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return warp(pixels, alignment, border)


__all__ = ["Box", "crop_footprint", "cut_crop", "reframe", "window_alignment"]
