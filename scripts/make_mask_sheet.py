#!/usr/bin/env python3
"""A contact sheet of every landmark mask kind on faces of all ages: docs/cleft_masks.png.

    python3 scripts/make_mask_sheet.py --images /work/prepared/faces/lists/test_images.flist \
        --out docs/cleft_masks.png

Faces come from an image list of aligned crops (``inclg data faces`` layout: landmarks are read
from ``landmarks/<src>/<name>.txt``). Only UTKFace crops are used (their file names start with the
age): `--count` faces (default 20) spread over the age bands of `inclg.evaluate.report`, taking
the most open mouth of each band's share first, then an evenly spaced other face, so smiling and
open-mouth faces of children and adults are on the sheet. Each row is one face, cut to the
nose-and-mouth region: the photo with the upper lip's lower edge (yellow, iBUG points 48, 60-64,
54), then one cell per `MaskKind` (translucent fill, outlined). The row label gives the age and how
open the mouth is (inner-lip gap in eye distances). The PNG is colour-quantised until it is under
`--max-kb`. No model is run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

REGION = (40, 92, 216, 224)  # x0, y0, x1, y1 of the aligned 256 crop: nose and mouth
COLOURS = {"lip": (230, 60, 60), "cleft-left": (40, 120, 255), "cleft-right": (0, 190, 120),
           "cleft-bilateral": (200, 60, 230), "nose": (255, 150, 0)}
LABEL_W, HEADER = 64, 16


def openness(points: np.ndarray) -> float:
    """Gap between the inner lips (points 61-63 vs 65-67) in eye distances."""
    from inclg.data.align import eye_distance

    return float((points[65:68, 1].mean() - points[61:64, 1].mean()) / eye_distance(points))


def pick_faces(images: list[Path], count: int) -> list[tuple[Path, np.ndarray, int]]:
    """(image, landmarks, age) of `count` UTKFace crops spread over the age bands."""
    from inclg.data.landmarks import load_landmarks
    from inclg.evaluate.report import AGE_BANDS, age_band, age_of
    from inclg.evaluate.runner import landmarks_path_for

    by_band: dict[str, list[tuple[Path, np.ndarray, int]]] = {b: [] for b, _, _ in AGE_BANDS}
    for path in images:
        age = age_of(path)
        marks = landmarks_path_for(path)
        if age is None or not marks.is_file():
            continue
        by_band[age_band(age)].append((path, load_landmarks(marks), age))
    bands = [b for b in by_band.values() if b]
    if not bands:
        raise SystemExit("error: no UTKFace crops (AGE_GENDER_RACE_... names) in the list")
    share = [count // len(bands) + (i < count % len(bands)) for i in range(len(bands))]
    chosen = []
    for faces, n in zip(bands, share):
        faces.sort(key=lambda f: f[0].name)
        ranked = sorted(range(len(faces)), key=lambda i: -openness(faces[i][1]))
        picks = ranked[: (n + 1) // 2]  # the most open mouths of the band
        rest = [i for i in range(len(faces)) if i not in picks]
        step = max(1, len(rest) // max(1, n - len(picks)))
        picks += rest[::step][: n - len(picks)]  # and evenly spaced others
        chosen += sorted((faces[i] for i in picks), key=lambda f: f[2])
    return chosen


def cell(rgb: np.ndarray, mask: np.ndarray | None, colour: tuple[int, int, int],
         points: np.ndarray | None, width: int) -> Image.Image:
    """The nose-and-mouth region with `mask` filled and outlined (or the lip edge drawn)."""
    from inclg.data.masks import UPPER_LIP_EDGE

    x0, y0, x1, y1 = REGION
    scale = width / (x1 - x0)
    big = cv2.resize(rgb[y0:y1, x0:x1], (width, round((y1 - y0) * scale)),
                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if mask is not None:
        m = cv2.resize(mask[y0:y1, x0:x1].astype(np.uint8), big.shape[1::-1],
                       interpolation=cv2.INTER_NEAREST)
        tint = np.array(colour, np.float32)
        big = np.where(m[..., None] > 0, 0.6 * big + 0.4 * tint, big).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(big, contours, -1, colour, 1, cv2.LINE_AA)
    if points is not None:
        edge = (points[list(UPPER_LIP_EDGE)] - np.array([x0, y0]) + 0.5) * scale - 0.5
        cv2.polylines(big, [np.round(edge * 4).astype(np.int32)], False, (255, 230, 0), 1,
                      cv2.LINE_AA, 2)
    return Image.fromarray(big)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True, help="image list (.flist)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--count", type=int, default=20, help="faces (rows)")
    parser.add_argument("--cell", type=int, default=112, help="cell width in pixels")
    parser.add_argument("--max-kb", type=int, default=350, help="size limit of the PNG")
    args = parser.parse_args(argv)

    from inclg.data.filelists import read_flist
    from inclg.data.masks import MaskKind, landmark_mask
    from inclg.data.preview import small_png
    from inclg.io.files import atomic_write_bytes
    from inclg.io.images import load_rgb

    faces = pick_faces(read_flist(args.images), args.count)
    x0, y0, x1, y1 = REGION
    height = round((y1 - y0) * args.cell / (x1 - x0))
    columns = ["photo", *(k.value for k in MaskKind)]
    sheet = Image.new("RGB", (LABEL_W + len(columns) * args.cell, HEADER + len(faces) * height),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(columns):
        draw.text((LABEL_W + c * args.cell + 4, 2), name, fill=COLOURS.get(name, (0, 0, 0)))
    records = []
    for r, (path, points, age) in enumerate(faces):
        rgb = load_rgb(path)
        top = HEADER + r * height
        gap = openness(points)
        draw.text((4, top + height // 2 - 12), f"{age} y", fill="black")
        draw.text((4, top + height // 2 + 2), f"open {gap:.2f}", fill=(90, 90, 90))
        sheet.paste(cell(rgb, None, (0, 0, 0), points, args.cell), (LABEL_W, top))
        for c, kind in enumerate(MaskKind, start=1):
            mask = landmark_mask(kind, points, rgb.shape[0]) > 0.5
            sheet.paste(cell(rgb, mask, COLOURS[kind.value], None, args.cell),
                        (LABEL_W + c * args.cell, top))
        records.append({"image": path.name, "age": age, "openness": round(gap, 3)})
    data = small_png(sheet, args.max_kb, dither=False)
    atomic_write_bytes(args.out, data)
    print(json.dumps({"out": str(args.out), "bytes": len(data), "size": sheet.size,
                      "faces": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
