"""End-to-end speed of `inclg predict` on a 1024 x 1024 photo on the CPU, written as JSON.

Run:  python benchmarks/predict_speed.py --out benchmarks/results/predict_speed_cpu.json
End to end = what `inclg predict PHOTO` does per photo once the model is loaded: read and hash
the file, detect the face (on a <= 640 px copy), align, run the network on the 256 x 256 crop,
paste back at full resolution, draw the before/after and landmark images, encode and write all
four files. Also measured: the network alone in each memory layout / precision / thread count,
detection at full size against the 640 px copy, the one-off start-up (model + dlib), a whole
`inclg predict` process, how far bf16 output moves from fp32, and the same end-to-end run with
the paper-size network (`speedup_vs_paper`: the ratio carries over to other machines; absolute
seconds do not). The machine may be shared: every figure is the median of --repeats runs, and
the load average and the CPU model are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from inclg.infer.batch import MaskSpec, PredictJob
from inclg.infer.pipeline import DETECT_SIDE, Predictor
from inclg.io.images import load_rgb
from inclg.machine import describe
from inclg.model.generator import window_box
from inclg.model.masking import masked_input
from inclg.weights import UNTRAINED_ID, LoadedModel, state_checksum, untrained_generator

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "infer" / "fixtures" / "face_300x240.jpg"


def make_photo(src: Path, size: int, path: Path) -> Path:
    """A size x size JPEG: `src` scaled so its short side is `size`, centre-cropped."""
    image = load_rgb(src)
    h, w = image.shape[:2]
    scale = size / min(h, w)
    image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    image = image[y0:y0 + size, x0:x0 + size]
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def paper_size_model() -> LoadedModel:
    """The paper's generator (random weights: the cost does not depend on them)."""
    generator = untrained_generator()
    return LoadedModel(generator.eval(), UNTRAINED_ID, state_checksum(generator), False,
                       "paper-size reference")


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


def network_runs(predictor: Predictor, repeats: int, threads: list[int]) -> list[dict[str, object]]:
    """The network alone on one input (its window, or the 256 x 256 crop), per layout,
    precision and thread count."""
    generator = predictor.generator
    side = window_box(generator.config)[2]
    image = torch.rand(1, 3, side, side)
    mask = torch.zeros(1, 1, side, side)
    mask[..., side // 2:side * 3 // 4, side // 4:side * 3 // 4] = 1
    runs = []
    for n in threads:
        torch.set_num_threads(n)
        for layout in ("contiguous", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            generator.to(memory_format=fmt)
            x = masked_input(image, mask).contiguous(memory_format=fmt)
            for precision in ("fp32", "bf16"):
                autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
                for mode in ("inference_mode", "no_grad"):
                    if mode == "no_grad" and (layout, precision) != ("channels_last", "fp32"):
                        continue
                    context = torch.inference_mode if mode == "inference_mode" else torch.no_grad

                    def step(context=context, autocast=autocast, x=x) -> None:
                        with context(), autocast:
                            generator(x, mask)

                    runs.append({"threads": n, "layout": layout, "precision": precision,
                                 "mode": mode, "median_ms": median_ms(step, repeats)})
    generator.to(memory_format=torch.channels_last)
    return runs


def end_to_end(predictor: Predictor, photo: Path, repeats: int) -> dict[str, object]:
    """Median per-stage seconds of PredictJob.process (outputs written to a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        job = PredictJob(photo, predictor, MaskSpec(auto="cleft-left"), Path(tmp))
        item = job.items[0]
        records = []
        for _ in range(repeats + 1):
            item.outputs["json"].unlink(missing_ok=True)
            outcome = job.process(item)
            if outcome.status != "ok":
                raise SystemExit(f"benchmark photo failed: {outcome.reason}")
            records.append(outcome.record)
    first, rest = records[0]["timings_s"], [r["timings_s"] for r in records[1:]]
    stages = {key: round(statistics.median(t[key] for t in rest), 4) for key in rest[0]}
    return {"first_call_s": first["end_to_end"], "median_s": stages["end_to_end"],
            "stages_median_s": stages,
            "all_s": [t["end_to_end"] for t in rest]}


def bf16_difference(weights: str, photo: Path) -> dict[str, float]:
    """How far bf16 autocast moves the output from fp32 on the same aligned crop."""
    results = {p: Predictor.from_pretrained(weights, precision=p)(photo, auto_mask="cleft-left")
               for p in ("fp32", "bf16")}
    a, b = (results[p].details.crop.output.astype(np.float64) for p in ("fp32", "bf16"))
    hole = results["fp32"].details.crop.hole
    points = np.abs(results["fp32"].details.crop.landmarks - results["bf16"].details.crop.landmarks)
    return {"mean_abs_in_hole_0_255": round(float(np.abs(a - b)[hole].mean()), 3),
            "max_abs_in_hole_0_255": round(float(np.abs(a - b)[hole].max()), 1),
            "landmarks_mean_abs_px": round(float(points.mean()), 3),
            "landmarks_max_abs_px": round(float(points.max()), 3)}


def process_wall(photo: Path, weights: str) -> float:
    """Wall seconds of a whole `inclg predict` process (Python start, model, dlib, one photo)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        command = [sys.executable, "-c", "from inclg.cli import app; app()", "predict",
                   str(photo), "--auto-mask", "cleft-left", "--weights", weights, "-o", tmp]
        subprocess.run(command, check=True, capture_output=True)
        return round(time.perf_counter() - start, 2)


def photo_arguments(description: str, out_name: str) -> argparse.ArgumentParser:
    """The options every end-to-end photo benchmark shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--photo", type=Path, default=FIXTURE, help="face photo to enlarge")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--weights", default="default")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / out_name)
    return parser


def main() -> None:
    args = photo_arguments(__doc__.splitlines()[0], "predict_speed_cpu.json").parse_args()
    load_before = os.getloadavg()
    result: dict[str, object] = {"benchmark": "predict_end_to_end", "photo_size": args.size,
                                 "weights": args.weights, "repeats": args.repeats, **describe()}
    with tempfile.TemporaryDirectory() as tmp:
        photo = make_photo(args.photo, args.size, Path(tmp) / "photo.jpg")
        start = time.perf_counter()
        predictor = Predictor.from_pretrained(args.weights)
        predictor.detector.detect(np.zeros((8, 8, 3), np.uint8))
        result["startup_s"] = round(time.perf_counter() - start, 3)
        result["model_id"] = predictor.model.model_id
        pixels = load_rgb(photo)
        small = cv2.resize(pixels, (DETECT_SIDE, DETECT_SIDE), interpolation=cv2.INTER_AREA)
        detect = predictor.detector.detect
        result["detect_ms"] = {
            f"full_{args.size}": median_ms(lambda: detect(pixels), args.repeats),
            f"copy_{DETECT_SIDE}": median_ms(lambda: detect(small), args.repeats),
        }
        result["network"] = network_runs(predictor, args.repeats, args.threads)
        runs = []
        for n in args.threads:
            torch.set_num_threads(n)
            for precision in ("fp32", "bf16"):
                predictor.precision = precision
                runs.append({"threads": n, "precision": precision,
                             **end_to_end(predictor, photo, args.repeats)})
        predictor.precision = "fp32"
        torch.set_num_threads(max(args.threads))
        result["end_to_end"] = runs
        # The same pipeline with the paper-size network, in this run: the ratio is what carries
        # over to other machines (machines of one kind differ 2x in absolute speed).
        paper = Predictor(paper_size_model(), predictor.detector)
        ours = end_to_end(predictor, photo, args.repeats)
        theirs = end_to_end(paper, photo, args.repeats)
        result["paper_size_reference"] = {"threads": max(args.threads), "precision": "fp32",
                                          "ours_median_s": ours["median_s"],
                                          "paper_median_s": theirs["median_s"],
                                          "paper_stages_median_s": theirs["stages_median_s"]}
        result["speedup_vs_paper"] = round(theirs["median_s"] / ours["median_s"], 2)
        result["bf16_vs_fp32"] = bf16_difference(args.weights, photo)
        result["process_wall_s"] = process_wall(photo, args.weights)
    result["load_average"] = {"before": [round(v, 2) for v in load_before],
                              "after": [round(v, 2) for v in os.getloadavg()]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
