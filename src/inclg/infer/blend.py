"""Feathered paste-back: how the generated face region goes back into the photo.

The blend weight is 1 on the region the user asked for and falls smoothly to 0 within a few pixels
outside it; wherever it is 0 the photo's pixels are copied, not recomputed, so everything outside
the slightly dilated mask stays identical bit for bit. Plain numpy on a small window around the
mask, so a 48-megapixel photo costs no more than a small one.
"""

from __future__ import annotations

import cv2
import numpy as np

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), in the frame's pixels


def mask_window(mask: np.ndarray, margin: int) -> Window | None:
    """The bounding box of `mask` [H, W] grown by `margin` px and clipped to it; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (max(0, int(cols[0]) - margin), max(0, int(rows[0]) - margin),
            min(w, int(cols[-1]) + 1 + margin), min(h, int(rows[-1]) + 1 + margin))


def feather_alpha(mask: np.ndarray, radius: float) -> np.ndarray:
    """Blend weight [H, W] float32: 1 on `mask`, a smoothstep down to 0 at `radius` px from it.

    A pixel gets a weight above 0 exactly when it lies closer than `radius` to the mask, so
    ``alpha > 0`` is the mask dilated by `radius` (Euclidean distance).
    """
    mask = np.asarray(mask, bool)
    if radius <= 0:
        return mask.astype(np.float32)
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    t = np.clip(1.0 - distance / np.float32(radius), 0.0, 1.0)  # [H, W], 1 on the mask
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def blend(original: np.ndarray, generated: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha * generated + (1 - alpha) * original`` as uint8 [H, W, 3]; pixels with alpha 0 are
    the original's own bytes."""
    weight = alpha[..., None]  # [H, W, 1]
    base = original.astype(np.float32)
    mixed = np.round(base + weight * (generated.astype(np.float32) - base))
    return np.where(weight > 0, np.clip(mixed, 0, 255).astype(np.uint8), original)


def paste(photo: np.ndarray, generated: np.ndarray, alpha: np.ndarray,
          window: Window) -> np.ndarray:
    """A copy of `photo` with `generated` blended in by `alpha` (both the size of `window`)."""
    x0, y0, x1, y1 = window
    out = photo.copy()
    out[y0:y1, x0:x1] = blend(photo[y0:y1, x0:x1], generated, alpha)
    return out
