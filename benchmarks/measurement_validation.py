"""How far measurements from the network's landmarks are from the detector's, by age band.

The validation protocol of docs/MEASUREMENTS.md. For each held-out aligned crop, the detector's
landmarks on the unmasked face are the reference; the lip (or --mask KIND) is masked around them,
the network inpaints the crop and predicts the 68 landmarks, and every measurement of
`inclg.measurements` is taken on both. Reported per measurement and age band (UTKFace file names begin
with the age; other faces count as "age not given"): the mean absolute error in % of the outer
eye-corner distance with a 95 % bootstrap CI. Mirror consistency: the same on the mirrored crop
and mask; a mirror-consistent model gives the mirrored face's right value as the face's left
value and negates every signed one, and the table gives the mean absolute departure from that.

Run:  python benchmarks/measurement_validation.py --limit 5          (a smoke test, CPU)
      python benchmarks/measurement_validation.py --weights DIR \\
          --out benchmarks/results/measurement_validation.json        (all test faces)
Writes the JSON to --out and the markdown tables beside it (.md).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from inclg.data.filelists import read_flist
from inclg.data.landmarks import load_landmarks
from inclg.data.masks import LANDMARK_MASKS, landmark_mask
from inclg.io.images import load_rgb
from inclg.measurements import MEASUREMENT_NAMES, MEASUREMENTS, Measurements, measure
from inclg.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
LISTS = ROOT / "prepared" / "faces" / "lists"
SIZE = 256
BANDS = ((0, 1, "0-1"), (2, 5, "2-5"), (6, 12, "6-12"), (13, 19, "13-19"), (20, 39, "20-39"),
         (40, 59, "40-59"), (60, 200, "60+"))
NO_AGE = "age not given"
UTKFACE_NAME = re.compile(r"^(\d+)_\d+_\d+_\d+")  # age_gender_race_date.jpg
SIGNED = {spec.name for spec in MEASUREMENTS if spec.signed}


def age_band(path: Path) -> str:
    """The age band of a UTKFace crop from its file name; NO_AGE for any other face."""
    match = UTKFACE_NAME.match(path.name)
    if not match:
        return NO_AGE
    age = int(match.group(1))
    return next(label for low, high, label in BANDS if low <= age <= high)


def mirror_expected(m: Measurements, name: str) -> float:
    """What `name` should read on the mirror image of the face measured by `m`."""
    if name in SIGNED:
        return -m[name].iod
    for this, other in (("_right", "_left"), ("_left", "_right")):
        if name.endswith(this):
            return m[name.removesuffix(this) + other].iod
    return m[name].iod


def mae_ci(errors: np.ndarray, resamples: int, rng: np.random.Generator) -> dict[str, float]:
    """Mean absolute error with a 95 % percentile-bootstrap CI, in % of the eye distance."""
    errors = np.abs(errors) * 100
    picks = rng.integers(0, len(errors), (resamples, len(errors)))  # [R, N]
    means = errors[picks].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mae": round(float(errors.mean()), 3), "ci_low": round(float(low), 3),
            "ci_high": round(float(high), 3), "n": int(len(errors))}


def summarise(errors: dict[str, list[float]], bands: list[str], resamples: int,
              seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """{measurement: {band or "all": mae_ci}} from per-face errors in face order."""
    rng = np.random.default_rng(seed)
    order = [*(label for *_, label in BANDS), NO_AGE, "all"]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name in MEASUREMENT_NAMES:
        values = np.array(errors[name])
        table[name] = {}
        for band in order:
            chosen = values if band == "all" else values[[b == band for b in bands]]
            if len(chosen):
                table[name][band] = mae_ci(chosen, resamples, rng)
    return table


def markdown(table: dict[str, dict[str, dict[str, float]]], title: str) -> str:
    bands = list(next(iter(table.values())))
    counts = {band: table[MEASUREMENT_NAMES[0]][band]["n"] for band in bands}
    lines = [f"#### {title}", "",
             "| measurement | " + " | ".join(f"{b} (n={counts[b]})" for b in bands) + " |",
             "|---|" + "---|" * len(bands)]
    for name, row in table.items():
        cells = [f"{row[b]['mae']:.2f} [{row[b]['ci_low']:.2f}, {row[b]['ci_high']:.2f}]"
                 for b in bands]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default", help="model folder, or the bundled one")
    parser.add_argument("--images", type=Path, default=LISTS / "test_images.flist")
    parser.add_argument("--landmarks", type=Path, default=LISTS / "test_landmarks.flist")
    parser.add_argument("--mask", default="lip", choices=LANDMARK_MASKS)
    parser.add_argument("--limit", type=int, default=0, help="a seeded random subset (0 = all)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "measurement_validation.json")
    args = parser.parse_args()

    images, marks = read_flist(args.images), read_flist(args.landmarks)
    if len(images) != len(marks):
        parser.error(f"{args.images} has {len(images)} entries, {args.landmarks} {len(marks)}")
    chosen = np.arange(len(images))
    if 0 < args.limit < len(images):
        rng = np.random.default_rng(args.seed)
        chosen = np.sort(rng.choice(len(images), args.limit, replace=False))
    model = load_model(args.weights, args.device)
    started = time.perf_counter()

    errors: dict[str, list[float]] = {name: [] for name in MEASUREMENT_NAMES}
    mirror: dict[str, list[float]] = {name: [] for name in MEASUREMENT_NAMES}
    bands: list[str] = []
    for start in range(0, len(chosen), args.batch):
        part = chosen[start:start + args.batch]
        crops = np.stack([load_rgb(images[i]) for i in part])  # [B, S, S, 3]
        if crops.shape[1:] != (SIZE, SIZE, 3):
            parser.error(f"{images[part[0]]}: the images must be aligned {SIZE}x{SIZE} crops")
        points = [load_landmarks(marks[i]) for i in part]
        masks = np.stack([landmark_mask(args.mask, p, SIZE) for p in points])  # [B, S, S]
        image = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255).to(args.device)
        hole = torch.from_numpy(masks)[:, None].to(args.device)  # [B, 1, S, S]
        with torch.no_grad():
            _, predicted = model.generator.inpaint(image, hole)
            _, mirrored = model.generator.inpaint(image.flip(-1), hole.flip(-1))
        for k, i in enumerate(part):
            reference = measure(points[k])
            ours = measure(predicted[k].float().cpu().numpy())
            ours_mirrored = measure(mirrored[k].float().cpu().numpy())
            for name in MEASUREMENT_NAMES:
                errors[name].append(ours[name].iod - reference[name].iod)
                mirror[name].append(ours_mirrored[name].iod - mirror_expected(ours, name))
            bands.append(age_band(images[i]))

    result = {
        "model": {"id": model.model_id, "checksum": model.checksum, "trained": model.trained,
                  "source": model.source},
        "images": str(args.images), "mask": args.mask, "faces": len(bands),
        "device": args.device, "seconds": round(time.perf_counter() - started, 1),
        "unit": "% of the outer eye-corner distance (iBUG 36-45)",
        "error": summarise(errors, bands, args.resamples, args.seed),
        "mirror_consistency": summarise(mirror, bands, args.resamples, args.seed),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    trained = "" if model.trained else " — UNTRAINED MODEL, numbers meaningless"
    header = (f"Model `{model.model_id}`{trained}; {len(bands)} faces from `{args.images.name}`, "
              f"mask `{args.mask}`. MAE in % of the outer eye-corner distance, [95 % CI].\n\n")
    text = header + markdown(result["error"], "Predicted (masked) vs detector (unmasked)") + "\n"
    text += markdown(result["mirror_consistency"], "Mirror consistency of the predictions")
    args.out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
