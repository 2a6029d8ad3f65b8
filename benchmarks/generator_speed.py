"""Generator forward cost: GFLOP per image and latency / throughput, written as JSON.

Run:  python benchmarks/generator_speed.py --device cpu --out benchmarks/results/generator_cpu.json
The original implementation's figures (ARCHITECTURE.md): 162 GFLOP per image; batch 1 on a
2-core CPU 2.05 s; on one H100 16 ms (batch 1) and 108 images/s (batch 32).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from inclg import Generator, masked_input
from inclg.machine import cpu_name


def gflop_per_image(generator: Generator, size: int) -> float:
    image, mask = torch.rand(1, 3, size, size), torch.ones(1, 1, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():  # the module tracker needs autograd metadata
        generator(masked_input(image, mask), mask)
    return counter.get_total_flops() / 1e9


def time_forward(generator: Generator, batch: int, size: int, device: torch.device, dtype: str,
                 channels_last: bool, repeats: int) -> dict[str, float]:
    image = torch.rand(batch, 3, size, size, device=device)
    mask = (torch.rand(batch, 1, size, size, device=device) > 0.8).float()
    x = masked_input(image, mask)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    times = []
    with torch.inference_mode(), autocast:
        for i in range(repeats + 2):  # two warm-up runs
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            generator(x, mask)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"batch": batch, "dtype": dtype, "channels_last": channels_last,
            "median_s": round(median, 5), "images_per_s": round(batch / median, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/generator_speed.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    generator = Generator().eval()
    result: dict = {
        "benchmark": "generator_forward",
        "size": args.size,
        "gflop_per_image": round(gflop_per_image(generator, args.size), 1),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "runs": [],
    }
    generator = generator.to(device)
    batches = args.batches or ([1, 32] if device.type == "cuda" else [1])
    for channels_last in (False, True):
        net = generator.to(memory_format=torch.channels_last) if channels_last else generator
        for dtype in ("fp32", "bf16"):
            for batch in batches:
                result["runs"].append(time_forward(net, batch, args.size, device, dtype,
                                                   channels_last, args.repeats))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
