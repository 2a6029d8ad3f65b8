"""Hole masks (1 = hole): measuring and sampling a mask set by hole ratio, and generating masks.

The paper trains on irregular masks grouped by hole ratio (0-20 %, 20-40 %, 40-60 %), 3,300 per
group for training and 200 for validation. Users without a mask set can generate free-form strokes;
landmark-driven generators give the regions the paper is about (lips, a cleft from lip to nostril)
and the ones it mentions for makeup and plastic-surgery uses (nose, eyebrows, eyes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inclg.data import DataError
from inclg.data.align import eye_distance
from inclg.data.kinds import EXTRA_KINDS, MaskKind
from inclg.data.landmarks import REGIONS
from inclg.io.files import atomic_write_text
from inclg.io.images import load_mask

RATIO_GROUPS: tuple[tuple[float, float], ...] = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6))


def hole_ratio(mask: np.ndarray) -> float:
    """Fraction of hole pixels (mask > 0.5)."""
    return float((np.asarray(mask) > 0.5).mean())


def ratio_group(ratio: float, groups: Sequence[tuple[float, float]] = RATIO_GROUPS) -> int | None:
    """Index of the group (lo, hi] holding `ratio`; None if empty or above every group."""
    for i, (lo, hi) in enumerate(groups):
        if lo < ratio <= hi:
            return i
    return None


def measure_masks(
    paths: Sequence[Path], size: int = 256, progress: Callable[[], None] | None = None
) -> list[float]:
    """Hole ratio of every mask, measured at `size` x `size` (the resolution training sees)."""
    ratios = []
    for path in paths:
        ratios.append(hole_ratio(load_mask(path, size)))
        if progress is not None:
            progress()
    return ratios


@dataclass(frozen=True)
class MaskSelection:
    """Seeded draw of training and validation masks per ratio group (disjoint)."""

    train: list[list[Path]]  # per group
    val: list[list[Path]]
    available: list[int]  # masks per group before drawing
    ungrouped: int  # empty masks and masks above the last group


def select_masks(
    paths: Sequence[Path],
    ratios: Sequence[float],
    train_per_group: int = 3300,
    val_per_group: int = 200,
    seed: int = 0,
    groups: Sequence[tuple[float, float]] = RATIO_GROUPS,
) -> MaskSelection:
    """Draw `train_per_group` + `val_per_group` masks from every group without replacement."""
    members: list[list[Path]] = [[] for _ in groups]
    ungrouped = 0
    for path, ratio in sorted(zip(paths, ratios), key=lambda pr: str(pr[0])):
        g = ratio_group(ratio, groups)
        if g is None:
            ungrouped += 1
        else:
            members[g].append(path)
    need = train_per_group + val_per_group
    for (lo, hi), group in zip(groups, members):
        if len(group) < need:
            raise DataError(
                f"only {len(group)} masks have a hole ratio in ({lo:.0%}, {hi:.0%}], "
                f"{need} are needed; "
                "add masks or lower --train-per-group / --val-per-group"
            )
    rng = np.random.default_rng(seed)
    train, val = [], []
    for group in members:
        order = rng.permutation(len(group))
        train.append(sorted(group[i] for i in order[:train_per_group]))
        val.append(sorted(group[i] for i in order[train_per_group:need]))
    return MaskSelection(train, val, [len(g) for g in members], ungrouped)


def write_mask_lists(
    out: Path,
    selection: MaskSelection,
    paths: Sequence[Path],
    ratios: Sequence[float],
    groups: Sequence[tuple[float, float]] = RATIO_GROUPS,
) -> dict[str, object]:
    """Write train/val lists (all groups and per group), every mask's ratio, and a summary."""
    from inclg.data.filelists import write_flist

    out = Path(out)
    for split, per_group in (("train", selection.train), ("val", selection.val)):
        write_flist(out / f"{split}_masks.flist", [p for group in per_group for p in group])
        for (lo, hi), group in zip(groups, per_group):
            write_flist(out / f"{split}_masks_{round(lo * 100)}-{round(hi * 100)}.flist", group)
    atomic_write_text(
        out / "ratios.csv",
        "path,hole_ratio\n" + "".join(f"{p},{r:.5f}\n" for p, r in zip(paths, ratios)),
    )
    summary = {
        "masks": len(paths),
        "groups": [f"{round(lo * 100)}-{round(hi * 100)}%" for lo, hi in groups],
        "available": selection.available,
        "ungrouped": selection.ungrouped,
        "train_per_group": [len(g) for g in selection.train],
        "val_per_group": [len(g) for g in selection.val],
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


# --- generators -------------------------------------------------------------------------------


def free_form_mask(
    size: int = 256,
    rng: np.random.Generator | None = None,
    ratio: tuple[float, float] | None = None,
) -> np.ndarray:
    """Random brush strokes [size, size] float32 (DeepFill v2's free-form algorithm).

    With `ratio` = (lo, hi) strokes are added until the hole ratio exceeds lo, and the mask is
    redrawn if it overshoots hi, so a user can make masks for each of the paper's ratio groups.
    """
    rng = rng if rng is not None else np.random.default_rng()
    unit = size / 256
    for _ in range(100):
        mask = np.zeros((size, size), np.uint8)
        strokes = rng.integers(1, 6) if ratio is None else 1000
        for _ in range(strokes):
            _stroke(mask, rng, unit)
            if ratio is not None and hole_ratio(mask) > ratio[0]:
                break
        if ratio is None or ratio[0] < hole_ratio(mask) <= ratio[1]:
            return mask.astype(np.float32)
    raise DataError(
        f"could not draw a free-form mask with a hole ratio in {ratio}; widen the range"
    )


def _stroke(mask: np.ndarray, rng: np.random.Generator, unit: float) -> None:
    size = mask.shape[0]
    width = max(1, int(rng.integers(12, 40) * unit))
    point = rng.integers(0, size, 2)
    angle = rng.uniform(0, 2 * np.pi)
    for _ in range(rng.integers(4, 12)):
        angle += rng.uniform(-np.pi / 3, np.pi / 3)
        length = rng.uniform(10, 50) * unit
        end = np.clip(
            point + length * np.array([np.cos(angle), np.sin(angle)]), 0, size - 1
        ).astype(int)
        cv2.line(mask, tuple(int(v) for v in point), tuple(int(v) for v in end), 1, width)
        cv2.circle(mask, tuple(int(v) for v in end), width // 2, 1, -1)
        point = end


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    r = round(radius)
    if r <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask, kernel)


def _hull(mask: np.ndarray, points: np.ndarray) -> None:
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)


def lip_mask(landmarks: np.ndarray, size: int = 256, margin: float = 0.15) -> np.ndarray:
    """The mouth (points 48-67) dilated by `margin` eye distances: the region the paper inpaints."""
    mask = np.zeros((size, size), np.uint8)
    _hull(mask, landmarks[48:68])
    return _dilate(mask, margin * eye_distance(landmarks)).astype(np.float32)


CLEFT_SIDES = ("left", "right", "bilateral")
# Per side: (Cupid's-bow peak, lateral upper-lip point, inner upper lip below the peak, nostril
# sill, alar base) in iBUG-68 numbering.
_CLEFT_POINTS = {"right": (50, 49, 61, 32, 31), "left": (52, 53, 63, 34, 35)}
UPPER_LIP_EDGE = (48, 60, 61, 62, 63, 64, 54)  # the upper lip's lower edge, corner to corner
_SUBPIXEL = 4  # cv2 fill precision: 1/16 px, so the lower edge is drawn where the points are


def _fill(mask: np.ndarray, points: np.ndarray, convex: bool = True) -> None:
    """Fill the polygon (convex hull if `convex`) of `points` [N, 2] into `mask` with 1."""
    pts = np.asarray(points, np.float64)
    if convex:
        pts = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)
    fixed = np.round(pts * (1 << _SUBPIXEL)).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 1, cv2.LINE_8, _SUBPIXEL)


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(toward the subject's left, up, eye distance): unit vectors of the face from its eyes, so
    masks follow a tilted head. In an upright unmirrored crop: (1, 0) and (0, -1)."""
    across = landmarks[42:48].mean(0) - landmarks[36:42].mean(0)  # right eye -> left eye
    eyes = float(np.linalg.norm(across)) + 1e-6
    left = across / eyes
    return left, np.array([left[1], -left[0]]), eyes


def upper_lip_region(landmarks: np.ndarray, size: int = 256) -> np.ndarray:
    """[size, size] bool: every pixel whose centre lies above the upper lip's lower edge (mouth
    corner, inner upper lip 60-64, mouth corner, continued sideways), "above" along the face, so a
    tilted head is handled: what a cleft mask may cover. Below lie the mouth opening, the teeth
    and the lower lip, which a cleft lip does not involve."""
    left, up, _ = face_axes(landmarks)
    edge = landmarks[list(UPPER_LIP_EDGE)].astype(np.float64)  # [7, 2]
    across, height = edge @ left, edge @ up  # the edge in face coordinates
    order = np.argsort(across, kind="stable")
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    u = xs * left[0] + ys * left[1]  # [S, S]
    v = xs * up[0] + ys * up[1]
    return v >= np.interp(u, across[order], height[order])  # flat beyond the mouth corners


def cleft_mask(
    landmarks: np.ndarray,
    side: str = "left",
    size: int = 256,
    width: float = 0.18,
    margin: float = 0.06,
) -> np.ndarray:
    """The region a cleft lip involves, [size, size] float32 (1 = hole).

    A unilateral cleft runs through the upper lip at the philtral column of its side, from the
    upper lip's lower edge (the free margin of the red lip, inner-lip points 60-64) up through the
    skin of the lip into the nostril floor, and displaces the alar base: the mask covers that band
    (`width` eye distances wide at the lip, widening towards the nose), the nostril sill and floor
    and the alar base, and stops at the lower edge of the upper lip, so an open mouth, the teeth
    and the lower lip are never masked. "bilateral" is both sides plus the base of the columella
    (not the nose tip). `side` is the subject's; `margin` (eye distances) dilates the region,
    still clipped at the lip's lower edge.
    """
    if side not in CLEFT_SIDES:
        hint = " (a cleft on both sides is 'bilateral')" if side == "both" else ""
        raise DataError(f"unknown cleft side {side!r}; choose one of {', '.join(CLEFT_SIDES)}"
                        f"{hint}")
    left, up, eyes = face_axes(landmarks)
    points = landmarks.astype(np.float64)
    mask = np.zeros((size, size), np.uint8)
    for which in ("left", "right") if side == "bilateral" else (side,):
        peak, lateral_lip, inner, sill, alar = (points[i] for i in _CLEFT_POINTS[which])
        out = left if which == "left" else -left  # away from the midline
        w = width * eyes
        lip = inner - up * 0.1 * eyes  # below the lower edge: the clip draws the edge itself
        axis = peak + (lateral_lip - peak) * 0.1  # the philtral column of the cleft side
        lip = lip + (axis - inner) - up * np.dot(axis - inner, up)  # under the column
        floor = sill + (alar - sill) * 0.25  # where the cleft enters the nostril floor
        nostril = 0.09 * eyes  # height of the nostril opening above the sill line
        medial = points[33] + (sill - points[33]) * 0.35  # the columella's side of the floor
        _fill(mask, np.stack([
            lip - out * w / 2, lip + out * w / 2,  # at the lip's lower edge
            floor - out * 0.7 * w, floor + out * 0.7 * w,  # at the nostril sill
            medial + up * 0.5 * nostril,  # the floor beside the columella
            sill + up * nostril, alar + up * 0.8 * nostril + out * 0.03 * eyes,  # nostril floor
            alar + out * 0.07 * eyes, alar - up * 0.05 * eyes + out * 0.06 * eyes,  # alar base
        ]))
    if side == "bilateral":  # the base of the columella, between the two nostril floors
        half = 0.5 * np.linalg.norm(points[34] - points[32]) / 2
        base = points[33]
        _fill(mask, np.stack([base - left * half, base + left * half,
                              base + up * 0.06 * eyes - left * half * 0.7,
                              base + up * 0.06 * eyes + left * half * 0.7]))
    mask = _dilate(mask, margin * eyes) & upper_lip_region(points, size)
    return mask.astype(np.float32)


REGION_MASKS: dict[str, tuple[tuple[int, ...], ...]] = {
    "nose": (REGIONS["nose_bridge"] + REGIONS["nostrils"],),
    "eyebrows": (REGIONS["right_brow"], REGIONS["left_brow"]),
    "eyes": (REGIONS["right_eye"], REGIONS["left_eye"]),
}


def region_mask(
    landmarks: np.ndarray, region: str, size: int = 256, margin: float = 0.12
) -> np.ndarray:
    """Convex hull of a facial region's points (each brow / eye separately), dilated by `margin`
    eye distances: masks for makeup and plastic-surgery previews."""
    if region not in REGION_MASKS:
        raise DataError(f"unknown region {region!r}; choose one of {', '.join(REGION_MASKS)}")
    mask = np.zeros((size, size), np.uint8)
    for part in REGION_MASKS[region]:
        _hull(mask, landmarks[list(part)])
    return _dilate(mask, margin * eye_distance(landmarks)).astype(np.float32)


LANDMARK_MASKS = (*(k.value for k in MaskKind), *EXTRA_KINDS)


def landmark_mask(kind: str | MaskKind, landmarks: np.ndarray, size: int = 256) -> np.ndarray:
    """The `MaskKind` `kind` (or an extra region: eyebrows, eyes) for a face with these crop
    landmarks, [size, size] float32."""
    if kind in EXTRA_KINDS:
        return region_mask(landmarks, str(kind), size)
    kind = MaskKind.parse(kind, extra=EXTRA_KINDS)
    if kind is MaskKind.LIP:
        return lip_mask(landmarks, size)
    if kind.cleft_side is not None:
        return cleft_mask(landmarks, kind.cleft_side, size)
    return region_mask(landmarks, kind.value, size)


def mask_limit(kind: str | MaskKind, landmarks: np.ndarray, size: int = 256) -> np.ndarray | None:
    """[size, size] bool: where a `kind` mask, and the feathered seam around it, may change the
    face (cleft kinds: above the upper lip's lower edge); None where there is no such limit."""
    if kind not in EXTRA_KINDS and MaskKind.parse(kind).cleft_side is not None:
        return upper_lip_region(landmarks, size)
    return None


def generate_masks(
    kind: str,
    out: str | Path,
    count: int = 1000,
    prepared: str | Path | None = None,
    seed: int = 0,
    size: int = 256,
    ratio: tuple[float, float] | None = None,
) -> list[Path]:
    """Write generated masks as PNG (white = hole) plus ``masks.flist``; returns their paths.

    ``free-form`` draws `count` seeded random size x size masks (`ratio`: hole ratio range); the
    landmark kinds draw one mask per accepted face of a `prepared` folder, at its crop size and
    named like its crop.
    """
    from inclg.data.faces import read_jsonl
    from inclg.data.filelists import write_flist
    from inclg.data.landmarks import load_landmarks
    from inclg.io.images import save_image

    out = Path(out).resolve()
    written: list[Path] = []
    if kind == "free-form":
        rng = np.random.default_rng(seed)
        for i in range(count):
            written.append(out / f"{i:05d}.png")
            save_image(written[-1], free_form_mask(size, rng, ratio))
    else:
        if kind not in EXTRA_KINDS:
            kind = MaskKind.parse(kind, extra=("free-form", *EXTRA_KINDS)).value
        if prepared is None:
            raise DataError(
                f"{kind} masks are drawn from landmarks: name a folder made by `inclg data faces`"
            )
        prepared = Path(prepared)
        manifest = sorted(read_jsonl(prepared / "manifest.jsonl"), key=lambda r: r["key"])
        if not manifest:
            raise DataError(
                f"{prepared} has no accepted faces (manifest.jsonl is empty or missing)"
            )
        crop_size = json.loads((prepared / "settings.json").read_text(encoding="utf-8"))["size"]
        for record in manifest:
            written.append(out / f"{record['key']}.png")
            save_image(
                written[-1],
                landmark_mask(kind, load_landmarks(prepared / record["landmarks"]), crop_size),
            )
    write_flist(out / "masks.flist", written)
    return written
