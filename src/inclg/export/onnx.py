"""The generator as one self-contained ONNX file, and an onnxruntime backend that runs it.

`export_onnx` traces the eval-mode generator with torch's dynamo exporter (spectral norm is then a
fixed division by the stored sigma estimate, SDPA a MatMul-Softmax-MatMul, the landmark map a
ScatterElements) with a dynamic batch axis, writes it atomically as a single file (no external
weight data) and checks it against PyTorch on random inputs before the file appears. The model's
id, checksum and trained flag travel in the file's metadata_props, so an ONNX file can never be
mistaken for another model, and an untrained one still says so.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import inclg
from inclg.io.files import atomic_path
from inclg.model.generator import Generator, window_box
from inclg.model.io import WeightsError
from inclg.paths import data_home
from inclg.weights import LoadedModel

OPSET = 18
INPUTS = ("masked_image", "mask")  # [N, 3, 256, 256] float32 in [0, 1]; [N, 1, 256, 256], 1 = hole
OUTPUTS = ("image", "landmarks")  # [N, 3, 256, 256] in [0, 1]; [N, 68, 2] (x, y) pixels
# Measured (paper-size untrained model; onnxruntime 1.32 CPU, onnx 1.23, torch 2.13): up to
# 1.1e-4 on the image with large white holes (1.3e-5 with pixel-noise masks) and 4e-5 px on the
# landmarks. The image error is fp32 summation order amplified by the unscaled (scale=1)
# 4096-way softmax of the attention; changing torch's own memory layout alone moves the output
# by 1e-5. The limits leave ~5x / 25x headroom; 5e-4 is 1/8 of one 8-bit level, so the saved
# uint8 images differ by at most one level at a few pixels.
IMAGE_TOLERANCE = 5e-4  # max |onnx - torch| of the image in [0, 1]
LANDMARK_TOLERANCE = 1e-3  # max |onnx - torch| of the landmarks, pixels
CHECK_BATCHES = (1, 3)  # batch sizes verified after export (3: the batch axis is dynamic)
META_PREFIX = "inclg."


class ExportError(WeightsError):
    """The model cannot be exported, the ONNX file is unusable, or it belongs to another model."""


def _require(module: str) -> Any:
    """Import an optional dependency or say which extra installs it."""
    try:
        return __import__(module)
    except ImportError:
        raise ExportError(f"ONNX needs the {module} package: pip install 'inclg[onnx]'") from None


@dataclass(frozen=True)
class Check:
    """How far onnxruntime's outputs are from PyTorch's for one batch size."""

    batch: int
    image_max_abs: float
    landmarks_max_abs: float

    @property
    def ok(self) -> bool:
        return (self.image_max_abs <= IMAGE_TOLERANCE
                and self.landmarks_max_abs <= LANDMARK_TOLERANCE)


def metadata(model: LoadedModel) -> dict[str, str]:
    """The metadata_props written into the file (all strings, as ONNX requires)."""
    return {
        f"{META_PREFIX}model_id": model.model_id,
        f"{META_PREFIX}checksum": model.checksum,
        f"{META_PREFIX}trained": "true" if model.trained else "false",
        f"{META_PREFIX}warning": model.warning or "",
        f"{META_PREFIX}version": inclg.__version__,
        f"{META_PREFIX}torch": torch.__version__,
    }


def input_size(generator: Generator) -> int:
    """The network's input side (its window, or the whole 256 crop); the graph is fixed to it."""
    return window_box(generator.config)[2]


def random_inputs(batch: int, seed: int = 0, size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """A reproducible masked image and mask (a rectangle-ish random hole) of `batch` samples."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=gen)
    mask = (torch.rand(batch, 1, size // 16, size // 16, generator=gen) > 0.7).float()
    mask = torch.nn.functional.interpolate(mask, size=(size, size), mode="nearest")
    return image * (1 - mask) + mask, mask  # holes filled with white, as masked_input does


def _to_proto(generator: Generator) -> Any:
    """Trace the generator into an ONNX ModelProto (dynamic batch), silencing the exporter's
    progress prints and warnings (library code never prints)."""
    _require("onnx")
    _require("onnxscript")
    example = random_inputs(2, size=input_size(generator))  # batch 2: export specialises 1
    batch = torch.export.Dim.DYNAMIC
    shapes = {INPUTS[0]: {0: batch}, INPUTS[1]: {0: batch}}
    quiet = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), \
                contextlib.redirect_stderr(quiet), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(generator, example, dynamo=True, verbose=False,
                                        input_names=list(INPUTS), output_names=list(OUTPUTS),
                                        opset_version=OPSET, dynamic_shapes=shapes)
    except Exception as err:
        raise ExportError(f"ONNX export failed ({type(err).__name__}: {str(err)[:500]})") from err
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    return program.model_proto


def _session(path: Path, threads: int | None = None) -> Any:
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = threads or torch.get_num_threads()
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise ExportError(f"{path}: not a usable ONNX model ({err})") from err


def check(session: Any, generator: Generator,
          batches: tuple[int, ...] = CHECK_BATCHES) -> list[Check]:
    """Compare an onnxruntime session with the PyTorch generator on random inputs."""
    results = []
    for n in batches:
        image, mask = random_inputs(n, seed=n, size=input_size(generator))
        with torch.inference_mode():
            ref_image, ref_points = generator(image, mask)
        out_image, out_points = session.run(list(OUTPUTS), {INPUTS[0]: image.numpy(),
                                                            INPUTS[1]: mask.numpy()})
        results.append(Check(n, float(np.abs(out_image - ref_image.float().numpy()).max()),
                             float(np.abs(out_points - ref_points.float().numpy()).max())))
    return results


def export_onnx(model: LoadedModel, path: str | Path,
                batches: tuple[int, ...] = CHECK_BATCHES) -> list[Check]:
    """Write `model`'s generator to `path` as a single ONNX file, checked against PyTorch.

    The file appears only if every check in `batches` is within the tolerances; the checks are
    returned so the caller can report them.
    """
    onnx = _require("onnx")
    generator = copy.deepcopy(model.generator).float().cpu().eval()
    generator = generator.to(memory_format=torch.contiguous_format)
    proto = _to_proto(generator)
    for key, value in metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
        checks = check(_session(tmp), generator, batches)
        bad = [c for c in checks if not c.ok]
        if bad:
            raise ExportError(
                f"the ONNX model differs from PyTorch beyond the tolerance (image "
                f"{IMAGE_TOLERANCE}, landmarks {LANDMARK_TOLERANCE} px): " + ", ".join(
                    f"batch {c.batch}: {c.image_max_abs:.2e} / {c.landmarks_max_abs:.2e} px"
                    for c in bad))
    return checks


def cache_path(model: LoadedModel) -> Path:
    """Where the exported copy of `model` is kept: $INCLG_HOME/onnx/<checksum>-opset<N>.onnx."""
    return data_home() / "onnx" / f"{model.checksum}-opset{OPSET}.onnx"


class OnnxGenerator:
    """The exported generator run by onnxruntime on the CPU, called like `Generator` with numpy.

    The file's metadata must name the same model checksum as `model`, so the id, checksum and
    trained flag the outputs report are the ONNX file's own.
    """

    def __init__(self, path: str | Path, model: LoadedModel, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"{self.path}: no such ONNX file")
        self.session = _session(self.path, threads)
        props = self.session.get_modelmeta().custom_metadata_map
        found = props.get(f"{META_PREFIX}checksum")
        if found != model.checksum:
            raise ExportError(
                f"{self.path} was exported from model {props.get(f'{META_PREFIX}model_id')!r} "
                f"(checksum {found}), not the selected {model.model_id!r} (checksum "
                f"{model.checksum}); export it again with `inclg export onnx`")

    @classmethod
    def cached(cls, model: LoadedModel, threads: int | None = None) -> OnnxGenerator:
        """The model's cached ONNX export, exported (and checked) first if missing or unusable."""
        path = cache_path(model)
        if path.is_file():
            try:
                return cls(path, model, threads)
            except ExportError:
                pass  # a stale or damaged cache entry: export it again below
        export_onnx(model, path)
        return cls(path, model, threads)

    def __call__(self, masked_image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, 3, s, s] and [N, 1, s, s] float32 (s: the network's input side) -> image
        [N, 3, s, s], landmarks [N, 68, 2] in input pixels."""
        image, points = self.session.run(list(OUTPUTS), {
            INPUTS[0]: np.ascontiguousarray(masked_image, np.float32),
            INPUTS[1]: np.ascontiguousarray(mask, np.float32)})
        return image, points


__all__ = [
    "IMAGE_TOLERANCE",
    "LANDMARK_TOLERANCE",
    "Check",
    "ExportError",
    "OnnxGenerator",
    "cache_path",
    "check",
    "export_onnx",
    "metadata",
]
