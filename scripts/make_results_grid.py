#!/usr/bin/env python3
"""A small PNG of held-out faces, infants included: masked input | OpenCV Telea | INCLG | truth,
for a lip mask and a cleft mask on each face.

    python3 scripts/make_results_grid.py --images prepared/faces/lists/test_images.flist \
        --weights default --out docs/results_grid.png

Faces come from an image list of aligned crops (``inclg data faces`` layout: landmarks are read
from ``landmarks/<src>/<name>.txt``), drawn with a seeded generator by age band where the file
names carry ages (UTKFace ``AGE_GENDER_RACE_...``): `--infants` faces aged 0-3, then the rest of
`--count` from everyone. Each face gets its lip mask and a cleft mask (left, right and bilateral
in turn; the subject's side); `--kinds` names other pairs, e.g. ``cleft-bilateral,cleft-left`` to
look at one kind on every face. The cells show the nose-and-mouth region (x 64-191, y 100-227 of
the crop, where the masks lie) at full resolution. Outputs are composited (the input's own pixels
outside the hole). The PNG is colour-quantised until it is under `--max-kb`. An untrained model
gets a red banner saying so: never commit such a grid as a result.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

HEADER = 18
VIEW = (64, 100, 128)  # x, y, side of the region shown, in crop pixels
CLEFTS = ("cleft-left", "cleft-right", "cleft-bilateral")
AGE = re.compile(r"^(\d+)_\d+_\d+_")


def age_of(path: Path) -> int | None:
    match = AGE.match(path.name)
    return int(match.group(1)) if match else None


def pick(images: list[Path], count: int, infants: int, seed: int) -> list[Path]:
    """`infants` faces aged 0-3 (as many as exist), the rest from the whole list; seeded."""
    rng = random.Random(seed)
    young = [p for p in images if (a := age_of(p)) is not None and a <= 3]
    chosen = rng.sample(young, min(infants, len(young)))
    rest = [p for p in images if p not in set(chosen)]
    chosen += rng.sample(rest, min(count - len(chosen), len(rest)))
    return chosen


@torch.no_grad()
def fills(generator, rgb: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """masked input, Telea, INCLG and truth [H, W, 3] uint8 for one crop and hole."""
    from inclg.evaluate.baselines import inpaint_baseline
    from inclg.model.masking import composite, masked_input

    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    hole = torch.from_numpy((mask > 0.5).astype(np.float32))[None, None]
    out, _ = generator.inpaint(image, hole)
    tiles = {"masked": masked_input(image, hole), "Telea": inpaint_baseline("telea", image, hole),
             "INCLG": composite(out.float().clamp(0, 1), image, hole), "truth": image}
    return {k: (v[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            for k, v in tiles.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True, help="held-out image list (.flist)")
    parser.add_argument("--weights", default="default", help="model folder or `default`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=12, help="faces (rows)")
    parser.add_argument("--infants", type=int, default=4, help="of which aged 0-3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cell", type=int, default=96, help="pixels per cell")
    parser.add_argument("--max-kb", type=int, default=600)
    parser.add_argument("--kinds", default="lip,cleft",
                        help="the two mask kinds of the column groups; `cleft` takes left, right "
                             "and bilateral in turn")
    args = parser.parse_args(argv)
    from inclg.data.kinds import MaskKind

    names = [k.value for k in MaskKind]
    groups = args.kinds.split(",")
    if len(groups) != 2 or any(k != "cleft" and k not in names for k in groups):
        parser.error(f"--kinds takes two of cleft, {', '.join(names)} (got {args.kinds!r})")

    from inclg.data.filelists import read_flist
    from inclg.data.landmarks import load_landmarks
    from inclg.data.masks import landmark_mask
    from inclg.data.preview import small_png
    from inclg.evaluate.runner import landmarks_path_for
    from inclg.io.files import atomic_write_bytes
    from inclg.io.images import load_rgb
    from inclg.weights import load_model

    torch.manual_seed(args.seed)
    model = load_model(args.weights)
    faces = pick(read_flist(args.images), args.count, args.infants, args.seed)
    columns = ["masked", "Telea", "INCLG", "truth"]
    cell, x, y, side = args.cell, *VIEW
    banner = HEADER if model.trained else 2 * HEADER
    sheet = Image.new("RGB", (2 * len(columns) * cell, banner + len(faces) * cell), "white")
    draw = ImageDraw.Draw(sheet)
    if not model.trained:
        draw.rectangle([0, 0, sheet.width, HEADER], fill=(200, 0, 0))
        draw.text((4, 3), f"UNTRAINED MODEL ({model.model_id}): the filled region is noise",
                  fill="white")
    for k, label in enumerate([f"{g}: {c}" for g in groups for c in columns]):
        draw.text((k * cell + 4, banner - HEADER + 3), label, fill="black")
    records = []
    for row, path in enumerate(faces):
        rgb = load_rgb(path)
        points = load_landmarks(landmarks_path_for(path))
        kinds = [CLEFTS[row % len(CLEFTS)] if g == "cleft" else g for g in groups]
        tiles = []
        scale = rgb.shape[0] / 256  # the view scales with the crop (tests use tiny crops)
        vx, vy, vs = round(x * scale), round(y * scale), round(side * scale)
        for kind in kinds:
            cells = fills(model.generator, rgb, landmark_mask(kind, points, rgb.shape[0]))
            tiles += [cells[c][vy:vy + vs, vx:vx + vs] for c in columns]
        for k, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile).resize((cell, cell), Image.LANCZOS),
                        (k * cell, banner + row * cell))
        age = age_of(path)
        draw.text((4, banner + row * cell + 2), f"{age} y" if age is not None
                  else path.parent.name, fill="white")
        records.append({"image": str(path), "age": age_of(path), "masks": kinds})
    data = small_png(sheet, args.max_kb)
    atomic_write_bytes(args.out, data)
    print(json.dumps({"out": str(args.out), "bytes": len(data), "size": sheet.size,
                      "model_id": model.model_id, "checksum": model.checksum,
                      "trained": model.trained, "faces": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
