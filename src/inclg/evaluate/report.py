"""Write an evaluation's `metrics.json`, `report.md` and `figure.png` (all atomically)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from inclg.data.imageio import save_image
from inclg.evaluate.runner import METRICS, EvalResult
from inclg.fileio import atomic_write_text

LABELS = {
    "psnr": "PSNR ↑", "psnr_hole": "PSNR hole ↑", "ssim": "SSIM ↑", "ssim_hole": "SSIM hole ↑",
    "l1": "L1 ↓", "l1_hole": "L1 hole ↓", "lpips": "LPIPS ↓", "nme": "NME ↓", "fid": "FID ↓",
}
FIGURE_NAME = "figure.png"


def to_json(result: EvalResult, command: str) -> dict[str, Any]:
    """The metrics.json document."""
    return {
        "command": command,
        "image_size": result.image_size,
        "color": "RGB",
        "methods": {m.name: m.describe() for m in result.methods},
        "unavailable": result.unavailable,
        "groups": result.groups,
    }


def _cell(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4f}" if metric in ("ssim", "ssim_hole", "l1", "l1_hole", "lpips", "nme") \
        else f"{value:.2f}"


def to_markdown(result: EvalResult, command: str) -> str:
    """The report.md text: command, models, one table per group, unavailable metrics, figure."""
    lines = ["# INCLG evaluation", "", f"Command: `{command}`", "",
             (f"Images: aligned {result.image_size}x{result.image_size} crops. PSNR and SSIM are "
             "on **RGB** (all three channels, data range 1); \"hole\" columns are measured inside the "
             "mask only; L1 is the mean absolute error in [0, 1]; NME is the landmark error "
             "normalised by the outer-eye-corner distance (predicted vs. the detector's landmarks "
             "of the ground truth). Outputs are composited (input pixels outside the hole)."), "",
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
        lines += ["", f"## {group} — {entry['count']} images", "",
                  "| method | " + " | ".join(LABELS[k] for k in present) + " |",
                  "|---|" + "---:|" * len(present)]
        for name, row in entry["methods"].items():
            lines.append(f"| {name} | " + " | ".join(_cell(row.get(k), k) for k in present) + " |")
        for key, note in entry.get("notes", {}).items():
            lines.append(f"\n{key.upper()}: {note}.")
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
    """Write metrics.json, report.md and (if any examples) figure.png into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "report": out / "report.md"}
    if result.figure:
        paths["figure"] = out / FIGURE_NAME
        save_image(paths["figure"], figure_grid(result))
    atomic_write_text(paths["metrics"], json.dumps(to_json(result, command), indent=2) + "\n")
    atomic_write_text(paths["report"], to_markdown(result, command))
    return paths
