"""Training throughput: images/s of one full training step (D phase + G phase with all six losses)
at 256x256, written as JSON, with the time of each phase.

GPU (defaults: batch 16 and 64, bf16 autocast, channels-last):
    python benchmarks/train_speed.py --out benchmarks/results/train_speed.json
    python benchmarks/train_speed.py --compile --out benchmarks/results/train_speed_compile.json
CPU smoke run:
    python benchmarks/train_speed.py --device cpu --batches 2 --steps 2 --warmup 1

Data are random tensors already on the device, as in the measurement of the original code
(one H100: 33 img/s at batch 4, 44 img/s at batch 16, fp32, ARCHITECTURE.md), so the number is the
step alone; `--data CONFIG` also measures what the data loader delivers with that config's lists
and `data.num_workers`. The feature network is a randomly initialised VGG19 (the original's):
its weights do not change the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from inclg.config import Config, load_config
from inclg.losses import LOSS_NAMES, feature_layers
from inclg.machine import cpu_name
from inclg.model.generator import window_box
from inclg.model.vgg import VGGFeatures
from inclg.train.loop import PhaseTimer, Trainer, configure_backends

ORIGINAL_H100 = {"batch_4": 33.0, "batch_16": 44.0}


def random_batch(batch: int, size: int, device: torch.device,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images in [0, 1], landmarks in pixels, rectangular holes covering about a quarter."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g)
    landmarks = torch.rand(batch, 68, 2, generator=g) * (size - 1)
    mask = torch.zeros(batch, 1, size, size)
    corners = torch.randint(0, size // 2, (batch, 2), generator=g)
    for i, (top, left) in enumerate(corners.tolist()):
        mask[i, :, top : top + size // 2, left : left + size // 2] = 1
    return image.to(device), landmarks.to(device), mask.to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(config: Config, feature_net: VGGFeatures, device: torch.device, steps: int,
            warmup: int) -> dict:
    """img/s over `steps` timed steps after `warmup` ones, then a per-phase breakdown."""
    timer = PhaseTimer(device)
    trainer = Trainer(config, feature_net=feature_net, checkpoints=False, handle_signals=False,
                      timer=timer)
    batch = trainer.to_device(*random_batch(config.train.batch_size, config.data.image_size,
                                            device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    compile_start = time.perf_counter()
    for _ in range(warmup):
        trainer.train_step(*batch)
    sync(device)
    warmup_s = time.perf_counter() - compile_start
    start = time.perf_counter()
    for _ in range(steps):
        losses = trainer.train_step(*batch)
    sync(device)
    elapsed = time.perf_counter() - start
    finite = bool(torch.stack([v.float() for v in losses.values()]).isfinite().all())
    timer.enabled = True  # a separate run: the synchronisation at phase boundaries costs a little
    for _ in range(steps):
        trainer.train_step(*batch)
    b = config.train.batch_size
    result = {
        "batch": b,
        "images_per_s": round(b * steps / elapsed, 2),
        "step_ms": round(1000 * elapsed / steps, 2),
        "phases_ms": {k: round(1000 * v / steps, 2) for k, v in timer.seconds.items()},
        "warmup_s": round(warmup_s, 2),
        "losses_finite": finite,
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def measure_loader(config_path: Path, batch: int, batches: int) -> dict:
    """Images/s the training loader delivers (decoding, augmentation, masks; no training)."""
    from inclg.train.data import train_loader
    from inclg.train.loop import build_datasets

    config = load_config(config_path)
    dataset, _ = build_datasets(config)
    loader = iter(train_loader(dataset, batch, 0, workers=config.data.num_workers,
                               pin_memory=torch.cuda.is_available()))
    next(loader)  # start the workers
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    elapsed = time.perf_counter() - start
    return {"workers": config.data.num_workers, "batch": batch,
            "images_per_s": round(batch * batches / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (and compilation)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], nargs="+",
                        default=["auto"], help="one run per precision (and layout)")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--both-layouts", action="store_true",
                        help="also run every precision in the other memory layout")
    parser.add_argument("--compile", action="store_true", help="torch.compile G and D")
    parser.add_argument("--vgg", choices=["vgg19", "vgg16"], default="vgg19")
    parser.add_argument("--data", type=Path, default=None,
                        help="also measure the data loader of this training config")
    parser.add_argument("--config", type=Path, default=None,
                        help="measure this training config (its networks, losses and window) "
                        "instead of the paper's; --size is then the config's input side")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_speed.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    configure_backends(device)
    torch.manual_seed(0)
    base = load_config(args.config)
    if args.config is not None:
        args.size = window_box(base.generator)[2]
    feature_net = VGGFeatures(args.vgg, layers=feature_layers(base.loss)).to(device)
    result: dict = {
        "benchmark": "train_step",
        "size": args.size,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "config": str(args.config) if args.config else "paper (configs/default.yaml)",
        "compile": args.compile,
        "feature_net": f"{args.vgg} (random weights), 2 passes per step",
        "losses": {k: getattr(base.loss, k) for k in LOSS_NAMES},
        "adversarial_start": base.loss.adversarial_start,
        "original_h100_fp32_images_per_s": ORIGINAL_H100,
        "runs": [],
    }
    layouts = [not args.no_channels_last] + ([args.no_channels_last] if args.both_layouts else [])
    for batch in args.batches:
        for precision in args.precision:
            for channels_last in layouts:
                config = load_config(args.config, [
                    f"train.batch_size={batch}", f"train.precision={precision}",
                    f"train.device={args.device}", f"data.image_size={args.size}",
                    f"train.channels_last={str(channels_last).lower()}",
                    f"train.compile={str(args.compile).lower()}"])
                run = measure(config, feature_net, device, args.steps, args.warmup)
                result["runs"].append({"precision": precision, "channels_last": channels_last,
                                       **run})
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    reference = result["runs"][0]["images_per_s"]
    for run in result["runs"]:  # ratios carry over to other machines; img/s do not
        run["speed_vs_first_run"] = round(run["images_per_s"] / reference, 3)
    if args.data is not None:
        result["loader"] = measure_loader(args.data, args.batches[0], max(args.steps, 10))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
