"""Write an evaluation's `metrics.json`, `report.md`, `per_image.csv` and `figure.png` (all
atomically). Means come with their 95 % confidence half-width; when image names carry ages
(UTKFace: ``AGE_GENDER_RACE_DATE...``) the report adds a table per age band."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from inclg.evaluate.runner import METRICS, EvalResult, ci95
from inclg.io.files import atomic_write_text
from inclg.io.images import save_image

LABELS = {
    "psnr": "PSNR ↑", "psnr_hole": "PSNR hole ↑", "ssim": "SSIM ↑", "ssim_hole": "SSIM hole ↑",
    "l1": "L1 ↓", "l1_hole": "L1 hole ↓", "lpips": "LPIPS ↓", "nme": "NME ↓", "fid": "FID ↓",
}
FIGURE_NAME = "figure.png"
CSV_NAME = "per_image.csv"
# Age bands for UTKFace-named images (infants, the usual age of a lip repair's follow-up, school
# children, teenagers, adults): (label, first age, last age).
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("0-2", 0, 2), ("3-5", 3, 5), ("6-12", 6, 12), ("13-19", 13, 19), ("20-39", 20, 39),
    ("40-59", 40, 59), ("60+", 60, 200),
)
_UTKFACE = re.compile(r"^(\d{1,3})_[01]_(?:[0-4]_)?\d{8}")  # AGE_GENDER_RACE_DATE...


def age_of(path: str | Path) -> int | None:
    """The age a UTKFace file name starts with (``AGE_GENDER_RACE_DATE...``), else None."""
    found = _UTKFACE.match(Path(path).name)
    return int(found.group(1)) if found else None


def age_band(age: int) -> str:
    """The `AGE_BANDS` label holding `age`."""
    for label, lo, hi in AGE_BANDS:
        if lo <= age <= hi:
            return label
    return AGE_BANDS[-1][0]


def age_bands(result: EvalResult) -> dict[str, dict[str, Any]]:
    """Per mask group and `AGE_BANDS` band: {"count", "methods": {name: {metric: mean}},
    "ci95": {name: {metric: half-width}}}; empty when no image name carries an age."""
    values: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list))
    counts: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in result.per_image:
        age = age_of(row["image"])
        if age is None:
            continue
        band = age_band(age)
        for group in row["groups"]:
            counts[(group, band)].add(f"{row['image']}|{row['mask']}")
            for metric in METRICS:
                if isinstance(row.get(metric), float):
                    values[(group, band, row["method"])][metric].append(row[metric])
    out: dict[str, dict[str, Any]] = {}
    for group in result.groups:
        bands = {}
        for band, _, _ in AGE_BANDS:
            if (group, band) not in counts:
                continue
            entry: dict[str, Any] = {"count": len(counts[(group, band)]), "methods": {},
                                     "ci95": {}}
            for m in result.methods:
                scores = values[(group, band, m.name)]
                entry["methods"][m.name] = {k: float(np.nanmean(v)) for k, v in scores.items()}
                entry["ci95"][m.name] = {k: ci95(v) for k, v in scores.items()}
            bands[band] = entry
        if bands:
            out[group] = bands
    return out


def to_json(result: EvalResult, command: str) -> dict[str, Any]:
    """The metrics.json document."""
    doc = {
        "command": command,
        "image_size": result.image_size,
        "color": "RGB",
        "methods": {m.name: m.describe() for m in result.methods},
        "unavailable": result.unavailable,
        "groups": result.groups,
        "confidence": "ci95: half-width of the 95 % confidence interval of the mean over images "
                      "(Student's t)",
    }
    bands = age_bands(result)
    if bands:
        doc["age_bands"] = bands
    return doc


def per_image_csv(result: EvalResult) -> str:
    """One row per image, mask and method: hole ratio, groups, age (if in the name), metrics."""
    present = [k for k in METRICS if k != "fid" and k not in result.unavailable]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "mask", "hole_ratio", "groups", "age", "method", *present])
    for row in result.per_image:
        age = age_of(row["image"])
        writer.writerow([row["image"], row["mask"], row["hole_ratio"], ";".join(row["groups"]),
                         "" if age is None else age, row["method"],
                         *("" if row.get(k) is None else f"{row[k]:.6g}" for k in present)])
    return buffer.getvalue()


def _cell(value: float | None, metric: str, half: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    digits = 4 if metric in ("ssim", "ssim_hole", "l1", "l1_hole", "lpips", "nme") else 2
    text = f"{value:.{digits}f}"
    return text if half is None or math.isnan(half) else f"{text} ± {half:.{digits}f}"


def _table(present: list[str], rows: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[str]:
    lines = ["| method | " + " | ".join(LABELS[k] for k in present) + " |",
             "|---|" + "---:|" * len(present)]
    for name, row, half in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(row.get(k), k, half.get(k))
                                               for k in present) + " |")
    return lines


def to_markdown(result: EvalResult, command: str) -> str:
    """The report.md text: command, models, one table per group, unavailable metrics, figure."""
    lines = ["# INCLG evaluation", "", f"Command: `{command}`", "",
             (f"Images: aligned {result.image_size}x{result.image_size} crops. PSNR and SSIM are "
             "on **RGB** (all three channels, data range 1); \"hole\" columns are measured inside the "
             "mask only; L1 is the mean absolute error in [0, 1]; NME is the landmark error "
             "normalised by the outer-eye-corner distance (predicted vs. the detector's landmarks "
             "of the ground truth). Outputs are composited (input pixels outside the hole). "
             "Values are means over the images ± the half-width of their 95 % confidence "
             f"interval (Student's t); every image's scores are in `{CSV_NAME}`."), "",
             "## Methods", ""]
    for m in result.methods:
        if m.kind == "model":
            flag = "trained" if m.trained else "**UNTRAINED** (random weights: its numbers are " \
                                               "not a model's quality)"
            lines.append(f"- `{m.name}`: model `{m.model_id}` from {m.source}, {flag}")
        else:
            lines.append(f"- `{m.name}`: baseline")
    if result.unavailable:
        lines += ["", "## Metrics not computed", ""]
        lines += [f"- **{k.upper()}**: {v}" for k, v in result.unavailable.items()]
    present = [k for k in METRICS if k not in result.unavailable]
    for group, entry in result.groups.items():
        lines += ["", f"## {group} — {entry['count']} images", ""]
        lines += _table(present, [(name, row, entry.get("ci95", {}).get(name, {}))
                                  for name, row in entry["methods"].items()])
        for key, note in entry.get("notes", {}).items():
            lines.append(f"\n{key.upper()}: {note}.")
    bands = age_bands(result)
    if bands:
        per_band = [k for k in present if k != "fid"]
        lines += ["", "## By age", "",
                  "Ages from the UTKFace file names (`AGE_GENDER_RACE_...`); images without an "
                  "age in their name are left out here."]
        for group, by_band in bands.items():
            lines += ["", f"### {group}", "",
                      "| age | images | method | " + " | ".join(LABELS[k] for k in per_band)
                      + " |", "|---|---:|---|" + "---:|" * len(per_band)]
            for band, entry in by_band.items():
                for name, row in entry["methods"].items():
                    half = entry["ci95"][name]
                    lines.append(f"| {band} | {entry['count']} | {name} | " + " | ".join(
                        _cell(row.get(k), k, half.get(k)) for k in per_band) + " |")
    if result.figure:
        columns = " | ".join(["masked input", *[m.name for m in result.methods], "ground truth"])
        lines += ["", "## Examples", "", f"Columns: {columns}.", "", f"![examples]({FIGURE_NAME})"]
    return "\n".join(lines) + "\n"


def _uint8(image: torch.Tensor) -> np.ndarray:
    return (image.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _label(cell: np.ndarray, text: str) -> np.ndarray:
    """A 16 px caption bar on top of `cell`."""
    bar = np.full((16, cell.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text[: max(1, cell.shape[1] // 7)], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, cell])


def figure_grid(result: EvalResult, gap: int = 2) -> np.ndarray:
    """Rows of masked input | each method | ground truth, captioned, H x W x 3 uint8."""
    names = [m.name for m in result.methods]
    rows = []
    for row in result.figure:
        cells = [_label(_uint8(row["input"]), row["label"])]
        cells += [_label(_uint8(row["outputs"][n]), n) for n in names]
        cells.append(_label(_uint8(row["truth"]), "ground truth"))
        spacer = np.full((cells[0].shape[0], gap, 3), 255, np.uint8)
        line = [cells[0]]
        for cell in cells[1:]:
            line += [spacer, cell]
        rows.append(np.concatenate(line, axis=1))
    spacer = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    out = [rows[0]]
    for row in rows[1:]:
        out += [spacer, row]
    return np.concatenate(out)


def write_report(result: EvalResult, out: str | Path, command: str) -> dict[str, Path]:
    """Write metrics.json, report.md, per_image.csv and (if any examples) figure.png into
    `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "report": out / "report.md", "csv": out / CSV_NAME}
    atomic_write_text(paths["csv"], per_image_csv(result))
    if result.figure:
        paths["figure"] = out / FIGURE_NAME
        save_image(paths["figure"], figure_grid(result))
    atomic_write_text(paths["metrics"], json.dumps(to_json(result, command), indent=2) + "\n")
    atomic_write_text(paths["report"], to_markdown(result, command))
    return paths
