"""The region to predict, on the photo and in the aligned crop.

A mask drawn on the photo (or drawn from the landmarks in the crop) becomes: a window of the photo
around it, the region itself there, a feathered blend weight whose support is the mask dilated by
the seam, and the hole given to the network in the crop, which covers that whole support. Only
the window is ever processed, so the cost does not grow with the photo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from inclg.data.align import Alignment, transform_points, unwarp
from inclg.data.crop import Box, cut_crop, reframe
from inclg.errors import PredictError
from inclg.infer.blend import feather_alpha, mask_window

FEATHER = 4.0  # width of the feathered seam (and of the mask's dilation), in crop pixels


@dataclass(frozen=True)
class Region:
    """The region to predict, in a window of the photo around it and in the crop."""

    window: Box  # photo box around the mask and its seam
    frame: Alignment  # photo -> crop, for the window's pixels
    mask: np.ndarray  # [wh, ww] bool: the region asked for (inside the crop)
    alpha: np.ndarray  # [wh, ww] float32 blend weight; > 0 exactly on the dilated mask
    hole: np.ndarray  # [S, S] bool: the hole given to the network (covers the dilated mask)
    crop_mask: np.ndarray  # [S, S] bool: the region asked for, in the crop
    total: int  # photo pixels of the whole mask (some may lie outside the crop)
    radius: float  # seam width in photo pixels


def seam(alignment: Alignment) -> float:
    """The seam's width in photo pixels: `FEATHER` crop pixels, so a high-resolution photo gets
    a seam as soft as the prediction's own resolution."""
    return max(2.0, FEATHER / alignment.scale)


def _no_overlap(name: str) -> PredictError:
    return PredictError(f"{name}: the mask does not touch the face (it lies outside the region "
                        "around the detected face); draw it on the face")


def _region(name: str, window: Box, alignment: Alignment,
            mask_of: Callable[[Alignment, np.ndarray], np.ndarray], total: int | None,
            limit: np.ndarray | None = None) -> Region:
    """Feather the region `mask_of(frame, covered)` returns for `window` and take it into the
    crop. `limit` ([S, S] bool, in the crop) bounds the seam too: a cleft mask's seam stops at the
    upper lip's lower edge."""
    x0, y0, x1, y1 = window
    if x0 >= x1 or y0 >= y1:
        raise _no_overlap(name)
    frame = reframe(alignment, (x0, y0), (y1 - y0, x1 - x0))
    size = alignment.size
    covered = unwarp(np.ones((size, size), np.float32), frame) > 0.999  # [wh, ww] inside the crop
    mask = mask_of(frame, covered)
    inside = int(np.count_nonzero(mask))
    if inside == 0:
        raise _no_overlap(name)
    radius = seam(alignment)
    alpha = feather_alpha(mask, radius) * covered  # 0 outside the dilated mask
    if limit is not None:
        alpha *= unwarp(limit.astype(np.uint8) * 255, frame) >= 128
    hole = cut_crop((alpha > 0).astype(np.uint8) * 255, frame, None) > 0
    hole = cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # bilinear reach
    crop_mask = cut_crop(mask.astype(np.uint8) * 255, frame, None) >= 128
    return Region(window, frame, mask, alpha, hole, crop_mask,
                  inside if total is None else total, radius)


def region_from_photo(name: str, mask: np.ndarray, alignment: Alignment, box: Box) -> Region:
    """The region of a mask [H, W] bool drawn on the full photo (not empty), within the crop's
    footprint `box`."""
    found = mask_window(mask, int(np.ceil(seam(alignment))) + 2)
    if found is None:
        raise PredictError(f"{name}: the mask is empty; paint the region to predict in white")
    window = (max(found[0], box[0]), max(found[1], box[1]),
              min(found[2], box[2]), min(found[3], box[3]))
    x0, y0, x1, y1 = window
    return _region(name, window, alignment,
                   lambda frame, covered: mask[y0:y1, x0:x1] & covered,
                   int(np.count_nonzero(mask)))


def region_from_crop(name: str, drawn: np.ndarray, alignment: Alignment, box: Box,
                     limit: np.ndarray | None = None) -> Region:
    """The region of a mask drawn in the crop (uint8 [S, S], 255 = region), mapped onto the
    photo within the crop's footprint `box`."""
    ys, xs = np.nonzero(drawn)
    corners = np.array([[xs.min() - 1, ys.min() - 1], [xs.max() + 1, ys.min() - 1],
                        [xs.max() + 1, ys.max() + 1], [xs.min() - 1, ys.max() + 1]], np.float64)
    points = transform_points(corners, alignment.inverse)
    grow = int(np.ceil(seam(alignment))) + 2
    x0, y0 = np.floor(points.min(0)).astype(int) - grow
    x1, y1 = np.ceil(points.max(0)).astype(int) + grow + 1
    window = (max(int(x0), box[0]), max(int(y0), box[1]),
              min(int(x1), box[2]), min(int(y1), box[3]))
    return _region(name, window, alignment,
                   lambda frame, covered: unwarp(drawn, frame) >= 128, None, limit)


def face_fraction(crop_mask: np.ndarray, crop_points: np.ndarray) -> float:
    """How much of the face (the hull of its 68 landmarks, in the crop) the mask covers."""
    hull = np.zeros(crop_mask.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(crop_points).astype(np.int32)), 1)
    return float(np.count_nonzero(crop_mask & (hull > 0)) / max(1, np.count_nonzero(hull)))


__all__ = ["FEATHER", "Region", "face_fraction", "region_from_crop", "region_from_photo", "seam"]
