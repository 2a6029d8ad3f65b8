"""CPU latency of the two network back-ends: PyTorch fp32 against onnxruntime, written as JSON.

Run:  python benchmarks/backend_speed.py --out benchmarks/results/backend_speed_cpu.json
Measured per thread count: the network alone on one 256 x 256 crop (torch as `Predictor` runs it:
channels-last, inference mode; onnxruntime on the exported file) and end to end per photo (what
`inclg predict PHOTO --backend torch|onnx` does once loaded, on a 1024 x 1024 photo), plus the
one-off export. The machine may be shared: every figure is the median of --repeats runs, and the
load average is recorded.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch
from predict_speed import end_to_end, make_photo, median_ms, photo_arguments

from inclg.export.onnx import IMAGE_TOLERANCE, OnnxGenerator, export_onnx
from inclg.machine import describe
from inclg.infer.pipeline import Predictor
from inclg.model.masking import masked_input
from inclg.weights import load_model


def network(predictor: Predictor, repeats: int) -> float:
    """Median ms of one 256 x 256 crop through the predictor's back-end."""
    image = torch.rand(1, 3, 256, 256)
    mask = torch.zeros(1, 1, 256, 256)
    mask[..., 150:200, 90:170] = 1
    x = masked_input(image, mask)
    if predictor.onnx is not None:
        xs, ms = x.numpy(), mask.numpy()
        return median_ms(lambda: predictor.onnx(xs, ms), repeats)
    x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.inference_mode():
            predictor.generator(x, mask)

    return median_ms(step, repeats)


def main() -> None:
    args = photo_arguments(__doc__.splitlines()[0], "backend_speed_cpu.json").parse_args()
    load_before = os.getloadavg()
    model = load_model(args.weights)
    result: dict[str, object] = {"machine": describe(), "weights": args.weights,
                                 "model_id": model.model_id, "trained": model.trained,
                                 "repeats": args.repeats, "image_tolerance": IMAGE_TOLERANCE}
    import onnxruntime

    result["onnxruntime"] = onnxruntime.__version__
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "generator.onnx"
        start = time.perf_counter()
        checks = export_onnx(model, onnx_path)
        result["export_s"] = round(time.perf_counter() - start, 2)
        result["export_checks"] = [vars(c) for c in checks]
        photo = make_photo(args.photo, args.size, Path(tmp) / f"face_{args.size}.jpg")
        rows = []
        for threads in args.threads:
            torch.set_num_threads(threads)
            for backend in ("torch", "onnx"):
                predictor = Predictor(model, backend=backend,  # type: ignore[arg-type]
                                      onnx_path=onnx_path if backend == "onnx" else None)
                if predictor.onnx is not None:
                    predictor.onnx = OnnxGenerator(onnx_path, model, threads)
                e2e = end_to_end(predictor, photo, args.repeats)
                rows.append({"threads": threads, "backend": backend,
                             "network_256_median_ms": network(predictor, args.repeats),
                             "end_to_end_median_s": e2e["median_s"],
                             "model_stage_median_s": e2e["stages_median_s"]["model"]})
        result["rows"] = rows
    for threads in args.threads:
        pair = {r["backend"]: r for r in rows if r["threads"] == threads}
        ratio = pair["torch"]["network_256_median_ms"] / pair["onnx"]["network_256_median_ms"]
        result[f"network_speedup_onnx_{threads}_threads"] = round(ratio, 2)
    result["load_average"] = {"before": [round(v, 2) for v in load_before],
                              "after": [round(v, 2) for v in os.getloadavg()]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
