"""What each part of a training step costs per image on this machine: generator widths and depths,
discriminator widths, feature-network depths; fp32 NCHW, fp32 channels-last and bf16 autocast.

The compact CPU recipe (configs/compact_cpu.yaml) was chosen from these numbers:
    python benchmarks/part_costs.py --size 128 --batch 16 --out benchmarks/results/part_costs_cpu.json

Each figure is the median of `--repeats` timed forward+backward passes on random tensors (after one
warm-up) divided by the batch; the first entry, the paper-size generator at the same size, is the
reference the others are stated against, so runs on machines of different speed compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from inclg.config import DiscriminatorConfig, GeneratorConfig
from inclg.machine import describe
from inclg.model.discriminator import Discriminator
from inclg.model.generator import Generator, parameter_count
from inclg.model.masking import masked_input
from inclg.model.vgg import VGGFeatures


def timed(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up: allocations, oneDNN primitive creation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def layouts(module: torch.nn.Module, x: torch.Tensor, mode: str) -> tuple[torch.Tensor, object]:
    """Module and input in the layout of `mode`, and the autocast context to run under."""
    if mode in ("channels_last", "bf16"):
        module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        module.to(memory_format=torch.contiguous_format)
    return x, torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16")


def generator_cost(config: GeneratorConfig, batch: int, size: int, mode: str,
                   repeats: int) -> dict:
    torch.manual_seed(0)
    g = Generator(config)
    image = torch.rand(batch, 3, size, size)
    mask = (torch.rand(batch, 1, size, size) > 0.8).float()
    x, autocast = layouts(g, masked_input(image, mask), mode)

    def step() -> None:
        with autocast:
            out, points = g(x, mask)
            loss = out.float().mean() + points.float().mean()
        loss.backward()
        g.zero_grad(set_to_none=True)

    return {"part": "generator", "channels": config.channels,
            "residual_blocks": config.residual_blocks, "parameters": parameter_count(g),
            "mode": mode, "s_per_image": timed(step, repeats) / batch}


def discriminator_cost(channels: int, batch: int, size: int, mode: str, repeats: int) -> dict:
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(channels=channels))
    x, autocast = layouts(d, torch.rand(2 * batch, 3, size, size), mode)

    def step() -> None:  # the D phase scores real + fake (2B), the G phase B more
        with autocast:
            loss = d(x).float().mean() + d(x[:batch]).float().mean()
        loss.backward()
        d.zero_grad(set_to_none=True)

    return {"part": "discriminator", "channels": channels, "mode": mode,
            "parameters": parameter_count(d), "s_per_image": timed(step, repeats) / batch}


def feature_cost(layers: tuple[str, ...], batch: int, size: int, mode: str, repeats: int) -> dict:
    torch.manual_seed(0)
    net = VGGFeatures("vgg16", layers)
    x, autocast = layouts(net, torch.rand(2 * batch, 3, size, size), mode)
    pred = x.clone().requires_grad_(True)

    def step() -> None:  # targets once without grad, predictions once with grad, as the loss does
        with autocast:
            with torch.no_grad():
                net(x)
            loss = sum(f.float().mean() for f in net(pred).values())
        loss.backward()
        pred.grad = None

    return {"part": "feature_net", "deepest": layers[-1], "mode": mode,
            "s_per_image": timed(step, repeats) / batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--modes", nargs="+", default=["fp32", "channels_last", "bf16"])
    parser.add_argument("--generators", nargs="+", default=["64x7", "16x2", "24x3", "32x2", "32x4"],
                        help="CHANNELSxRESIDUAL_BLOCKS of each generator to measure")
    parser.add_argument("--discriminators", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--features", nargs="+", default=["relu2_1", "relu3_1", "relu4_1"],
                        help="deepest VGG16 layer of each feature-network variant")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/part_costs_cpu.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for spec in args.generators:
        channels, blocks = (int(v) for v in spec.split("x"))
        modes = ["channels_last"] if (channels, blocks) == (64, 7) else args.modes
        for mode in modes:
            rows.append(generator_cost(GeneratorConfig(channels=channels, residual_blocks=blocks),
                                       args.batch, args.size, mode, args.repeats))
            print(json.dumps(rows[-1]), flush=True)
    for channels in args.discriminators:
        for mode in args.modes:
            rows.append(discriminator_cost(channels, args.batch, args.size, mode, args.repeats))
            print(json.dumps(rows[-1]), flush=True)
    for deepest in args.features:
        chain = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
        layers = chain[: chain.index(deepest) + 1] if deepest in chain else ("relu1_1", deepest)
        for mode in args.modes:
            rows.append(feature_cost(layers, args.batch, args.size, mode, args.repeats))
            print(json.dumps(rows[-1]), flush=True)
    reference = rows[0]["s_per_image"]
    for row in rows:
        row["s_per_image"] = round(row["s_per_image"], 5)
        row["relative_to_paper_generator"] = round(row["s_per_image"] / reference, 4)
    result = {**describe(), "size": args.size, "batch": args.batch, "reference": "paper-size generator "
              "(channels 64, 7 residual blocks) fwd+bwd at the same size, channels-last fp32",
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
