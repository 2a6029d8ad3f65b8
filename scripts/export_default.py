#!/usr/bin/env python3
"""Export a trained generator as the bundled default model: fp16 safetensors shards + config.json.

    python3 scripts/export_default.py --run /tmp/run --out $OUT/default \
        --gpu-seconds-file /tmp/run/gpu_seconds.txt
    python3 scripts/export_default.py --checkpoint /tmp/run/checkpoints/iter_00004000 --out DIR

`--run` takes the checkpoint named by the run's ``checkpoints/best.json`` (lowest validation
loss), or the latest one if no validation ran, and from it the averaged weights
(``generator_ema/``) when the run kept them; `--checkpoint` names one; `--generator` a bare
``generator/`` folder (then images seen / config come from its parent if it is a checkpoint).
config.json's ``metadata`` records ``"trained": true`` (what `inclg.weights.load_model` reads),
``model_id``, iteration, images seen, GPU time, the source run and checkpoint, the validation
figures and the full training config. The folder is re-loaded and checked before this exits;
the printed checksum is the one `inclg predict` reports for the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

MIB = 1024 * 1024


def pick_checkpoint(run: Path) -> Path:
    from inclg.train.checkpoint import best_checkpoint, latest_checkpoint

    best = best_checkpoint(run)
    if best is not None and (run / "checkpoints" / best["checkpoint"]).is_dir():
        return run / "checkpoints" / best["checkpoint"]
    latest = latest_checkpoint(run)
    if latest is None:
        raise SystemExit(f"error: {run} has no checkpoint")
    return latest


def gpu_seconds(path: Path | None) -> float | None:
    """Sum of the numbers in a file with one line per training call (seconds)."""
    if path is None or not path.is_file():
        return None
    return sum(float(x.split()[0]) for x in path.read_text().splitlines() if x.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="run folder: its best (else latest) checkpoint")
    src.add_argument("--checkpoint", type=Path, help="a checkpoints/iter_* folder")
    src.add_argument("--generator", type=Path, help="a save_pretrained generator folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model-id", default="inclg-default-v1")
    parser.add_argument("--max-shard-mib", type=float, default=15.0,
                        help="tensor bytes per shard (the file adds its small JSON header)")
    parser.add_argument("--max-file-mib", type=float, default=16.0,
                        help="refuse the export if a file is bigger (what $OUT can return)")
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    parser.add_argument("--gpu-seconds-file", type=Path,
                        help="file with the wall seconds of each training call, one per line")
    parser.add_argument("--gpu-minutes", type=float, help="GPU time, if not from a file")
    parser.add_argument("--note", default=None, help="free text stored in the metadata")
    args = parser.parse_args(argv)

    from inclg.model.generator import Generator
    from inclg.weights import load_model

    if args.run is not None:
        checkpoint: Path | None = pick_checkpoint(args.run)
    elif args.checkpoint is not None:
        checkpoint = args.checkpoint
    else:
        parent = args.generator.parent
        checkpoint = parent if (parent / "info.json").is_file() else None
    from inclg.train.checkpoint import inference_generator_dir

    generator_dir = args.generator or inference_generator_dir(checkpoint)
    generator = Generator.from_pretrained(generator_dir).eval()

    meta: dict = {"model_id": args.model_id, "trained": True}
    if checkpoint is not None:
        info = json.loads((checkpoint / "info.json").read_text())
        config = yaml.safe_load((checkpoint / "config.yaml").read_text())
        iteration = int(info["iteration"])
        images = iteration * int(config["train"]["batch_size"])
        validation = info.get("validation")
        state_path = checkpoint / "state.pt"
        if state_path.is_file():
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            images = int(state.get("samples_seen", images))
            if "train_seconds" in state:  # wall time in `fit` over the run, resumes included
                meta["train_hours"] = round(float(state["train_seconds"]) / 3600, 3)
            if validation is None:  # a checkpoint saved between validations: the latest one
                validation = next((v for v in reversed(state.get("validation_history", []))
                                   if v.get("iteration", 0) <= iteration), None)
        if checkpoint.parent.name == "checkpoints":  # inside a run folder, not a copied one
            meta["source_run"] = str(checkpoint.parent.parent.resolve())
        meta.update({
            "iteration": iteration,
            "images_seen": images,
            "source_checkpoint": checkpoint.name,
            "weights": generator_dir.name,  # generator_ema: the moving average of the weights
            "selected_by": ("best.json (lowest validation loss)" if args.run is not None
                            and (args.run / "checkpoints" / "best.json").is_file() else
                            "latest checkpoint" if args.run is not None else "given"),
            "validation": validation,
            "config": config,
        })
    seconds = gpu_seconds(args.gpu_seconds_file)
    minutes = args.gpu_minutes if args.gpu_minutes is not None else (
        None if seconds is None else seconds / 60)
    if minutes is not None:
        meta["gpu_minutes"] = round(minutes, 2)
    if torch.cuda.is_available():  # exported where it trained: the GPU run's own machine
        meta["gpu"] = torch.cuda.get_device_name(0)
    meta["torch"] = torch.__version__
    if args.note:
        meta["note"] = args.note

    dtype = getattr(torch, args.dtype)
    generator.save_pretrained(args.out, dtype=dtype,
                              max_shard_bytes=int(args.max_shard_mib * MIB), metadata=meta)

    loaded = load_model(args.out)  # checks every file's sha256 and rebuilds the network
    if not loaded.trained:
        raise SystemExit("error: the exported model does not load as trained")
    reference = generator.state_dict()
    worst = 0.0
    for key, tensor in loaded.generator.state_dict().items():
        if tensor.is_floating_point():
            worst = max(worst, (tensor.float() - reference[key].float()).abs().max().item())
    files = sorted(p.name for p in args.out.iterdir())
    sizes = {p.name: p.stat().st_size for p in args.out.iterdir()}
    too_big = [n for n, s in sizes.items() if s > args.max_file_mib * MIB]
    if too_big:
        raise SystemExit(f"error: files over {args.max_file_mib} MiB: {too_big}")
    print(json.dumps({"out": str(args.out), "model_id": loaded.model_id, "checksum": loaded.checksum,
                      "trained": loaded.trained, "files": files, "bytes": sum(sizes.values()),
                      "max_abs_diff_vs_checkpoint": worst,
                      **{k: meta.get(k) for k in ("iteration", "images_seen", "gpu_minutes",
                                                   "train_hours",
                                                   "source_checkpoint", "selected_by")}},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
