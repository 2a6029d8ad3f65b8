"""How far to trust the landmark fit behind a prediction, and the mask drawn from it.

The detector can be wrong without failing: on a laughing infant the jaw and mouth points may sit
on the cheeks and a lip mask drawn from them reach the chin. Every check compares the face, in the
aligned crop, with what 1,924 held-out faces of the prepared CelebA + UTKFace test split (all ages,
many open mouths and turned heads) showed; every limit lies beyond the 99.9th percentile there (or
the 0.5th, for a lower limit), so a warning means "unlike nearly every face we checked", not
"unusual".

- **misfit**: RMS distance of all 68 points to the alignment template, in eye distances (test
  split: median 0.11, 99.9th percentile 0.42);
- **mouth misfit**: the same for the 20 mouth points (median 0.08, 99.9th percentile 0.25);
- **mask area** of a landmark-drawn mask, in squared eye distances, against the kind's range (0.8 x
  the 0.5th to 1.25 x the 99.5th percentile);
- **mask outside**: the fraction of a landmark-drawn mask that lies more than 0.2 eye distances
  away from where that kind lies on the template face (99.5th percentile 4 %, lips only).

`score` is the largest of value / limit over the checks: below 1 the fit looks plausible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import cv2
import numpy as np

from inclg.data.align import eye_distance, template
from inclg.data.masks import MaskKind, landmark_mask

MAX_MISFIT = 0.45  # eye distances, all 68 points
MAX_MOUTH_MISFIT = 0.27  # eye distances, points 48-67
MAX_OUTSIDE = 0.10  # fraction of an automatic mask away from its kind's usual place
ZONE_MARGIN = 0.2  # eye distances around the template's mask that count as the usual place
MASK_AREA: dict[MaskKind, tuple[float, float]] = {  # squared eye distances, (lowest, highest)
    MaskKind.LIP: (0.30, 1.32),
    MaskKind.CLEFT_LEFT: (0.10, 0.31),
    MaskKind.CLEFT_RIGHT: (0.10, 0.31),
    MaskKind.CLEFT_BILATERAL: (0.19, 0.58),
    MaskKind.NOSE: (0.28, 0.82),
}


@dataclass(frozen=True)
class FitQuality:
    """The checks of one face's landmark fit (and automatic mask); see the module docstring."""

    misfit: float
    mouth_misfit: float
    mask_area: float | None = None  # squared eye distances; None for a mask the user drew
    mask_area_range: tuple[float, float] | None = None
    mask_outside: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def score(self) -> float:
        """Largest value / limit over the checks (< 1: plausible)."""
        ratios = [self.misfit / MAX_MISFIT, self.mouth_misfit / MAX_MOUTH_MISFIT]
        if self.mask_outside is not None:
            ratios.append(self.mask_outside / MAX_OUTSIDE)
        if self.mask_area is not None and self.mask_area_range is not None:
            lo, hi = self.mask_area_range
            ratios.append(max(self.mask_area / hi, lo / max(self.mask_area, 1e-6)))
        return float(max(ratios))

    @property
    def plausible(self) -> bool:
        return not self.warnings

    def to_json(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 3),
            "plausible": self.plausible,
            "misfit": round(self.misfit, 4),
            "mouth_misfit": round(self.mouth_misfit, 4),
            "mask_area_eye2": None if self.mask_area is None else round(self.mask_area, 4),
            "mask_area_range_eye2": None if self.mask_area_range is None
            else list(self.mask_area_range),
            "mask_outside_fraction": None if self.mask_outside is None
            else round(self.mask_outside, 4),
            "limits": {"misfit": MAX_MISFIT, "mouth_misfit": MAX_MOUTH_MISFIT,
                       "mask_outside_fraction": MAX_OUTSIDE},
            "warnings": list(self.warnings),
        }


@cache
def _usual_place(kind: MaskKind, size: int) -> np.ndarray:
    """[size, size] bool: where a `kind` mask lies on the template face, grown by ZONE_MARGIN."""
    points = template(size).astype(np.float32)
    zone = landmark_mask(kind, points, size).astype(np.uint8)
    r = round(ZONE_MARGIN * eye_distance(points))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(zone, kernel) > 0


def fit_quality(crop_points: np.ndarray, kind: MaskKind | None = None,
                crop_mask: np.ndarray | None = None) -> FitQuality:
    """Check the landmarks [68, 2] of a face in its aligned crop, and (for an automatic mask of
    `kind`) the mask [S, S] drawn from them. Warnings say what looks wrong and what to do."""
    size = crop_mask.shape[0] if crop_mask is not None else 256
    target = template(size)
    eyes = max(eye_distance(crop_points), 1e-6)
    distance = np.linalg.norm(crop_points - target, axis=1)  # [68]
    misfit = float(np.sqrt((distance ** 2).mean()) / eyes)
    mouth = float(np.sqrt((distance[48:68] ** 2).mean()) / eyes)
    warnings = []
    if misfit > MAX_MISFIT:
        warnings.append(f"the 68 landmarks are far from a typical face (misfit {misfit:.2f} eye "
                        f"distances, limit {MAX_MISFIT}): a turned head or a poor detection")
    if mouth > MAX_MOUTH_MISFIT:
        warnings.append(f"the mouth landmarks are far from a typical mouth (misfit {mouth:.2f} "
                        f"eye distances, limit {MAX_MOUTH_MISFIT})")
    area = area_range = outside = None
    if kind is not None and crop_mask is not None:
        hole = crop_mask > 0.5
        area = float(hole.sum() / eyes ** 2)
        area_range = MASK_AREA[kind]
        outside = float((hole & ~_usual_place(kind, size)).sum() / max(1, hole.sum()))
        if not area_range[0] <= area <= area_range[1]:
            warnings.append(f"the {kind.value} mask is {area:.2f} squared eye distances, outside "
                            f"the usual {area_range[0]}-{area_range[1]}")
        if outside > MAX_OUTSIDE:
            warnings.append(f"{outside:.0%} of the {kind.value} mask lies away from where a "
                            f"{kind.value} mask usually lies (the landmarks may be off)")
    return FitQuality(misfit, mouth, area, area_range, outside, tuple(warnings))


def advice(quality: FitQuality, automatic: bool) -> str:
    """One sentence for the user: what looks wrong and what to do about it."""
    what = "; ".join(quality.warnings)
    if automatic:
        return (f"the landmark fit looks implausible ({what}); check the landmarks image and, if "
                "the mask is off, draw the region yourself (--mask, or paint it in the app)")
    return (f"the landmark fit looks implausible ({what}); the face may be aligned poorly: "
            "check the landmarks image")
