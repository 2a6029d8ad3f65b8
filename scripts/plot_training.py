#!/usr/bin/env python3
"""Plot a run's validation curves against training images seen, from its TensorBoard logs and
the validation history its checkpoints carry (which survives a move to a new machine, where the
logs stay behind).

    python3 scripts/plot_training.py runs/compact_cpu --out docs/training_curve.png
    python3 scripts/plot_training.py runs/compact_cpu --checkpoint training/compact_cpu

Top: hole PSNR of the validation faces (the run's own validation set and mask mix, at the network's
input window); bottom: landmark NME. Needs `pip install 'inclg[plots,train]'`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def read_scalars(run: Path, tags: tuple[str, ...]) -> dict[str, list[tuple[int, float]]]:
    """(iteration, value) pairs per tag over every event file of the run (resumes included)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {tag: {} for tag in tags}
    for events in sorted((run / "tb").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in tags:
            if tag in acc.Tags().get("scalars", []):
                series[tag].update({e.step: e.value for e in acc.Scalars(tag)})
    return {tag: sorted(values.items()) for tag, values in series.items()}


def checkpoint_history(checkpoint: Path) -> dict[str, list[tuple[int, float]]]:
    """The same pairs from a checkpoint's ``state.pt`` (`Trainer.validation_history`)."""
    import torch

    state = torch.load(checkpoint / "state.pt", map_location="cpu", weights_only=True)
    history = state.get("validation_history", [])
    return {tag: [(int(h["iteration"]), float(h[tag.removeprefix("val/")])) for h in history]
            for tag in ("val/psnr_hole", "val/nme")}


def telea_psnr(run: Path) -> float:
    """Telea's mean hole PSNR on the run's validation items (the same faces, windows and holes
    its validation scores; `train.val_max_images` of them)."""
    import torch

    from inclg.config import load_config
    from inclg.evaluate import metrics
    from inclg.evaluate.baselines import inpaint_baseline
    from inclg.train.loop import build_datasets

    config = load_config(run / "config.yaml")
    _, val = build_datasets(config)
    if val is None:
        raise SystemExit(f"error: {run / 'config.yaml'} names no validation data")
    count = min(len(val), config.train.val_max_images or len(val))
    items = [val[i] for i in range(count)]
    image = torch.stack([item[0] for item in items])
    mask = torch.stack([item[2] for item in items])
    psnr = metrics.psnr(inpaint_baseline("telea", image, mask), image, mask)
    return float(psnr[~psnr.isnan()].mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="run folder (with tb/ and config.yaml)")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="also take the validation history of this checkpoint folder "
                        "(default: the run's latest); repeatable")
    parser.add_argument("--out", type=Path, default=Path("docs/training_curve.png"))
    parser.add_argument("--telea", action="store_true",
                        help="also draw OpenCV Telea's hole PSNR on the same validation faces and "
                        "holes (from the run's config.yaml; needs its data)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batch = yaml.safe_load((args.run / "config.yaml").read_text())["train"]["batch_size"]
    from inclg.train.checkpoint import latest_checkpoint

    data = read_scalars(args.run, ("val/psnr_hole", "val/nme"))
    latest = latest_checkpoint(args.run)
    for checkpoint in args.checkpoint or ([latest] if latest is not None else []):
        for tag, pairs in checkpoint_history(checkpoint).items():
            data[tag] = sorted({**dict(pairs), **dict(data[tag])}.items())
    if not data["val/psnr_hole"]:
        print(f"error: {args.run} has no validation yet (none in tb/ or its checkpoints)",
              file=sys.stderr)
        return 1
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    for axis, tag, label in ((top, "val/psnr_hole", "hole PSNR (dB)"),
                             (bottom, "val/nme", "landmark NME")):
        steps, values = zip(*data[tag])
        axis.plot([s * batch / 1000 for s in steps], values, marker=".")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    if args.telea:
        top.axhline(telea_psnr(args.run), color="grey", linestyle="--", label="OpenCV Telea")
        top.legend()
    bottom.set_xlabel("training images seen (thousands)")
    top.set_title(f"{args.run.name}: validation during training")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
