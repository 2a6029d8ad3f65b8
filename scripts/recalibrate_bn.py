#!/usr/bin/env python3
"""Recompute a saved generator's BatchNorm statistics on training faces and show what it changes.

    python3 scripts/recalibrate_bn.py CHECKPOINT/generator_ema --config configs/compact_cpu.yaml \
        --out /tmp/recalibrated

For generators saved before training recomputed them itself (`train.bn_calibration_images`,
`inclg.train.calibration`): the landmark head's running statistics belong to the live weights of
the moment, not to the saved (averaged) ones. The statistics are averaged over the same fixed
training faces as training uses (`--images` of them, augmented and masked as in training with the
config's seed);
the landmark NME on the first `--test` test faces with lip masks is printed before and after,
with the mean error of the jaw points along x (the symptom: a sideways shift).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def lip_nme(generator: torch.nn.Module, faces: torch.Tensor, masks: torch.Tensor,
            truth: torch.Tensor) -> dict[str, float]:
    from inclg.evaluate import metrics

    with torch.no_grad():
        points = torch.cat([generator.inpaint(faces[i:i + 8], masks[i:i + 8])[1]
                            for i in range(0, len(faces), 8)])
    return {"nme": round(float(metrics.nme(points, truth).mean()), 4),
            "jaw_x_shift_px": round(float((points - truth)[:, :17, 0].mean()), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generator", type=Path, help="a save_pretrained generator folder")
    parser.add_argument("--config", type=Path, required=True, help="its training config")
    parser.add_argument("--out", type=Path, required=True, help="folder for the recalibrated copy")
    parser.add_argument("--images", type=int, default=256, help="training faces to average over")
    parser.add_argument("--test", type=int, default=60, help="test faces for the NME (0: skip)")
    parser.add_argument("--lists", type=Path, default=Path("prepared/faces/lists"))
    args = parser.parse_args()

    from inclg.config import load_config
    from inclg.data.filelists import read_flist
    from inclg.evaluate import privacy
    from inclg.evaluate.runner import landmarks_path_for
    from inclg.model.generator import Generator
    from inclg.train.calibration import calibration_batches, recalibrate_batchnorm
    from inclg.train.loop import build_datasets

    generator = Generator.from_pretrained(args.generator).eval()
    report: dict = {"generator": str(args.generator)}
    test = None
    if args.test:
        paths = read_flist(args.lists / "test_images.flist")[:args.test]
        faces, truth = privacy.load_faces(paths, [landmarks_path_for(p) for p in paths])
        masks = privacy.landmark_audit_masks(truth, ["lip"], faces.shape[-1])[:, 0]
        test = (faces, masks, truth)
        report["before"] = lip_nme(generator, *test)
    config = load_config(args.config)
    train, _ = build_datasets(config)
    batches = calibration_batches(train, args.images, config.train.batch_size, config.train.seed)
    report["images"] = recalibrate_batchnorm(generator, batches)
    if test is not None:
        report["after"] = lip_nme(generator, *test)
    generator.save_pretrained(args.out)
    report["out"] = str(args.out)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
