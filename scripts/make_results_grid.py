#!/usr/bin/env python3
"""A small PNG of held-out faces with lip and cleft masks: masked input | INCLG output.

    python3 scripts/make_results_grid.py --images /work/prepared/faces/lists/test_images.flist \
        --weights default --out docs/results_grid.png

`--count` faces (default 16) are drawn with a seeded generator from an image list of aligned
crops (``inclg data faces`` layout: landmarks are read from ``landmarks/<src>/<name>.txt``).
Each face gets two masks built from its landmarks: the lip, and a unilateral cleft alternating
left / right (the subject's side). Two faces per row, four cells per face:
``lip: masked | output``, ``cleft: masked | output``; outputs are composited (the input's own
pixels outside the hole). The PNG is colour-quantised until it is under `--max-kb`.
An untrained model gets a red banner saying so: never commit such a grid as a result.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

HEADER = 18


def load_cases(images: list[Path], count: int, seed: int):
    from inclg.data.imageio import load_rgb
    from inclg.data.landmarks import load_landmarks
    from inclg.data.masks import landmark_mask
    from inclg.evaluate.runner import landmarks_path_for

    chosen = sorted(random.Random(seed).sample(range(len(images)), min(count, len(images))))
    cases = []
    for n, index in enumerate(chosen):
        path = images[index]
        rgb = load_rgb(path)
        if rgb.shape[:2] != (256, 256):
            rgb = np.asarray(Image.fromarray(rgb).resize((256, 256), Image.BICUBIC))
        marks = load_landmarks(landmarks_path_for(path))
        cleft = "cleft-left" if n % 2 == 0 else "cleft-right"
        masks = {kind: landmark_mask(kind, marks, 256) for kind in ("lip", cleft)}
        cases.append((path, rgb, masks))
    return cases


@torch.no_grad()
def run_model(generator, rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from inclg.model.masking import composite, masked_input

    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    hole = torch.from_numpy((mask > 0.5).astype(np.float32))[None, None]
    masked = masked_input(image, hole)
    out, _ = generator(masked, hole)
    result = composite(out.float().clamp(0, 1), image, hole)
    return _to_u8(masked), _to_u8(result)


def _to_u8(tensor: torch.Tensor) -> np.ndarray:
    return (tensor[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def encode_png(sheet: Image.Image, max_kb: int) -> bytes:
    for colours in (256, 192, 128, 96, 64):
        quantised = sheet.quantize(colours, method=Image.Quantize.MEDIANCUT,
                                   dither=Image.Dither.FLOYDSTEINBERG)
        buf = io.BytesIO()
        quantised.save(buf, "PNG", optimize=True)
        if buf.tell() <= max_kb * 1024:
            return buf.getvalue()
    raise SystemExit(f"error: the grid does not fit in {max_kb} KB; use a smaller --cell")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True, help="held-out image list (.flist)")
    parser.add_argument("--weights", default="default", help="model folder or `default`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cell", type=int, default=96, help="pixels per cell")
    parser.add_argument("--max-kb", type=int, default=480)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from inclg.data.filelists import read_flist
    from inclg.weights import load_model

    torch.manual_seed(args.seed)
    model = load_model(args.weights, args.device)
    cases = load_cases(read_flist(args.images), args.count, args.seed)
    per_row, cells = 2, 4
    cell = args.cell
    rows = -(-len(cases) // per_row)
    banner = HEADER if model.trained else 2 * HEADER
    sheet = Image.new("RGB", (per_row * cells * cell, banner + rows * cell), "white")
    draw = ImageDraw.Draw(sheet)
    if not model.trained:
        draw.rectangle([0, 0, sheet.width, HEADER], fill=(200, 0, 0))
        draw.text((4, 3), f"UNTRAINED MODEL ({model.model_id}): the filled region is noise",
                  fill="white")
    labels = ["lip: masked", "lip: INCLG", "cleft: masked", "cleft: INCLG"]
    for column in range(per_row * cells):
        draw.text((column * cell + 4, banner - HEADER + 3), labels[column % cells], fill="black")
    generator = model.generator
    records = []
    for n, (path, rgb, masks) in enumerate(cases):
        x0 = (n % per_row) * cells * cell
        y0 = banner + (n // per_row) * cell
        tiles = []
        for mask in masks.values():
            masked, result = run_model(generator, rgb, mask)
            tiles += [masked, result]
        for k, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile).resize((cell, cell), Image.LANCZOS),
                        (x0 + k * cell, y0))
        records.append({"image": str(path), "masks": list(masks)})
    data = encode_png(sheet, args.max_kb)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(json.dumps({"out": str(args.out), "bytes": len(data), "size": sheet.size,
                      "model_id": model.model_id, "checksum": model.checksum,
                      "trained": model.trained, "faces": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
