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
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from inclg.data import DataError
from inclg.data.align import eye_distance
from inclg.data.imageio import load_mask
from inclg.data.landmarks import REGIONS
from inclg.fileio import atomic_write_text

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


CLEFT_SIDES = ("left", "right", "both")


def cleft_mask(
    landmarks: np.ndarray,
    side: str = "left",
    size: int = 256,
    width: float = 0.18,
    margin: float = 0.06,
) -> np.ndarray:
    """The region a cleft lip occupies: a band from the upper lip's red edge at one philtral column
    up through the lip into the nostril, widening towards the nose.

    `side` is the subject's ("left" is the image's right in an unmirrored photo), or "both" for a
    bilateral cleft; `width` (band width at the lip) and `margin` are in eye distances.
    """
    if side not in CLEFT_SIDES:
        raise DataError(f"unknown cleft side {side!r}; choose one of {', '.join(CLEFT_SIDES)}")
    eyes = eye_distance(landmarks)
    mask = np.zeros((size, size), np.uint8)
    # (inner lip, Cupid's-bow peak, nostril sill) for the subject's right and left sides
    paths = {"right": (61, 50, 32), "left": (63, 52, 34)}
    for which in ("left", "right") if side == "both" else (side,):
        inner, peak, sill = (landmarks[i] for i in paths[which])
        up = landmarks[30] - landmarks[33]  # nose tip above subnasale: "up" along the face
        up = up / (np.linalg.norm(up) + 1e-6)
        lip = (inner + peak) / 2 - up * 0.06 * eyes  # down to the mouth opening
        nostril = sill + up * 0.12 * eyes  # into the nostril
        centre = np.stack([lip, peak, sill, nostril])  # [4, 2]
        widths = (width * eyes * np.array([1.0, 1.1, 1.4, 1.6])).tolist()
        for (a, b), (wa, wb) in zip(pairwise(centre), pairwise(widths)):
            normal = np.array([-(b - a)[1], (b - a)[0]]) / (np.linalg.norm(b - a) + 1e-6)
            quad = np.stack(
                [a + normal * wa / 2, b + normal * wb / 2, b - normal * wb / 2, a - normal * wa / 2]
            )
            cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 1)
            cv2.circle(mask, tuple(int(v) for v in np.round(b)), round(wb / 2), 1, -1)
        cv2.circle(mask, tuple(int(v) for v in np.round(lip)), round(widths[0] / 2), 1, -1)
    return _dilate(mask, margin * eyes).astype(np.float32)


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


LANDMARK_MASKS = ("lip", "cleft-left", "cleft-right", "cleft-both", *REGION_MASKS)


def landmark_mask(kind: str, landmarks: np.ndarray, size: int = 256) -> np.ndarray:
    """One of `LANDMARK_MASKS` for a face with these crop landmarks."""
    if kind == "lip":
        return lip_mask(landmarks, size)
    if kind.startswith("cleft-"):
        return cleft_mask(landmarks, kind.removeprefix("cleft-"), size)
    if kind in REGION_MASKS:
        return region_mask(landmarks, kind, size)
    raise DataError(
        f"unknown mask kind {kind!r}; choose one of free-form, {', '.join(LANDMARK_MASKS)}"
    )


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
    from inclg.data.imageio import save_image
    from inclg.data.landmarks import load_landmarks

    out = Path(out).resolve()
    written: list[Path] = []
    if kind == "free-form":
        rng = np.random.default_rng(seed)
        for i in range(count):
            written.append(out / f"{i:05d}.png")
            save_image(written[-1], free_form_mask(size, rng, ratio))
    elif kind in LANDMARK_MASKS:
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
    else:
        raise DataError(
            f"unknown mask kind {kind!r}; choose one of free-form, {', '.join(LANDMARK_MASKS)}"
        )
    write_flist(out / "masks.flist", written)
    return written
