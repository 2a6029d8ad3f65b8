"""Photo in, prediction out: the path an ordinary phone photo takes through INCLG.

`Predictor.__call__` is three steps, each a method a caller may also use alone:

1. `prepare`: read the photo upright (`inclg.io.images`) and the mask; detect the face on a copy
   at most 640 px wide (detection cost does not grow with the photo) and re-detect a face that is
   small there at full detail; align it with the same template and fit as the training data
   (`inclg.data.align`, `inclg.data.crop`), cutting the 256 x 256 crop from the face region only;
   bring the user's mask into the crop, or draw one from the landmarks (a `MaskKind`)
   (`region.py`), and check that the landmark fit and such a mask look plausible (`quality.py`).
2. `run`: the network on the aligned crop (on its window, for a windowed model).
3. `postprocess`: paste the output back at the photo's full resolution with a feathered seam;
   outside the slightly dilated mask the photo's pixels are copied bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
import torch

from inclg.data.align import Alignment, eye_distance, fit, transform_points, unwarp
from inclg.data.crop import Box, crop_footprint, cut_crop, window_alignment
from inclg.data.kinds import MaskKind
from inclg.data.landmarks import Face, LandmarkDetector, create_detector
from inclg.data.masks import landmark_mask, mask_limit
from inclg.errors import DataError, PredictError
from inclg.infer.blend import paste
from inclg.infer.quality import FitQuality, fit_quality
from inclg.infer.region import Region, face_fraction, region_from_crop, region_from_photo
from inclg.io.images import ImageInput, Photo, read_mask, read_photo
from inclg.model.generator import Generator, window_box
from inclg.model.masking import masked_input
from inclg.weights import LoadedModel, load_model

if TYPE_CHECKING:
    from inclg.measurements import Comparison

DETECT_SIDE = 640  # faces are detected on a copy whose longest side is at most this
REFINE_EYE_DISTANCE = 64.0  # re-detect at full detail if the eyes are closer in the copy
MAX_FACE_FRACTION = 0.6  # a mask may cover at most this much of the face (landmark hull)
AUTO_MASKS: tuple[MaskKind, ...] = tuple(MaskKind)  # what `auto_mask=` / --auto-mask accept
USER_MASK = "mask"  # the mask kind recorded for a mask the user drew
Precision = Literal["fp32", "bf16"]
Backend = Literal["torch", "onnx"]


@dataclass(frozen=True)
class ChangedRegion:
    """Where the photo changed: the region asked for and its feathered seam, in a window."""

    window: Box  # x0, y0, x1, y1: the photo box around the mask and its seam
    mask: np.ndarray  # [window h, w] bool: the region asked for (within the crop)
    alpha: np.ndarray  # [window h, w] float32 blend weight, 0 outside the dilated mask

    def on_photo(self, shape: tuple[int, int], dilated: bool = False) -> np.ndarray:
        """[H, W] bool on a photo of `shape`: the region asked for, or (`dilated`) every pixel
        that may differ from the photo."""
        full = np.zeros(shape, bool)
        x0, y0, x1, y1 = self.window
        full[y0:y1, x0:x1] = self.alpha > 0 if dilated else self.mask
        return full


@dataclass(frozen=True)
class CropPass:
    """What the network saw and returned, in the aligned crop."""

    alignment: Alignment  # photo -> crop
    image: np.ndarray  # [S, S, 3] uint8 aligned input
    hole: np.ndarray  # [S, S] bool: the hole given to the network
    output: np.ndarray  # [S, S, 3] uint8 network output (before compositing)
    landmarks: np.ndarray  # [68, 2] float32 the network's landmarks in the crop


@dataclass(frozen=True)
class Details:
    """How a prediction was made: what the report, the batch runner and the app show beyond the
    result itself."""

    faces: tuple[Face, ...]  # every face found, largest first
    face_index: int  # which of them was predicted (0 = largest)
    mask_source: str  # "auto:<kind>" or the mask's name
    mask_stats: dict[str, float | int]
    region: ChangedRegion
    crop: CropPass
    landmarks_outside: int  # network landmarks outside the photo (before clamping)


@dataclass(frozen=True)
class PredictResult:
    """One prediction; coordinates are (x, y) pixels of the upright photo."""

    image: np.ndarray  # [H, W, 3] uint8: the photo with the prediction pasted in
    landmarks: np.ndarray  # [68, 2] the network's landmarks, clamped to the photo
    face: Face  # the detected face: its box and the detector's landmarks, which placed the crop
    crop_box: Box  # where the aligned crop lies (x1, y1 exclusive)
    trained: bool  # False: untrained weights, the masked region is noise (see `warning`)
    warning: str | None
    model_id: str
    checksum: str
    seed: int
    mask_kind: str  # a `MaskKind` value, or "mask" for a mask the user drew
    fit: FitQuality  # how plausible the landmark fit (and automatic mask) look
    photo: Photo
    details: Details
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def changed_region(self) -> np.ndarray:
        """[H, W] bool: the only pixels that may differ from the photo (the dilated mask)."""
        return self.details.region.on_photo(self.image.shape[:2], dilated=True)

    def measurements(self, *, eye_distance_mm: float | None = None,
                     mm_per_px: float | None = None) -> Comparison:
        """The face as it is (the detector's landmarks on the input photo) measured against the
        predicted face (the network's landmarks in photo pixels): `inclg.measurements.compare`.
        Input-side measurements with a point inside the mask are marked not observed. Give at
        most one scale for millimetres."""
        from inclg.measurements import compare, measure

        crop = self.details.crop
        predicted = transform_points(crop.landmarks, crop.alignment.inverse)  # [68, 2] unclamped
        hidden = self.details.region.on_photo(self.image.shape[:2])
        before = measure(self.face.landmarks, eye_distance_mm=eye_distance_mm,
                         mm_per_px=mm_per_px, mask=hidden)
        after = measure(predicted, eye_distance_mm=eye_distance_mm, mm_per_px=mm_per_px)
        return compare(before, after)


@dataclass(frozen=True)
class Prepared:
    """A photo ready for the network (`Predictor.prepare`)."""

    photo: Photo
    faces: tuple[Face, ...]
    face_index: int
    alignment: Alignment  # photo -> crop
    crop_box: Box  # the part of the photo the crop samples
    crop: np.ndarray  # [S, S, 3] uint8
    region: Region
    kind: MaskKind | None  # None: a mask the user drew
    mask_source: str
    fit: FitQuality
    face_fraction: float
    timings: dict[str, float]


def parse_kind(kind: str | MaskKind) -> MaskKind:
    """`kind` as a `MaskKind`, or a `PredictError` naming the choices (or a retired name's new
    one)."""
    try:
        return MaskKind.parse(kind, "automatic mask")
    except DataError as err:
        raise PredictError(str(err)) from None


def seed_for(seed: int, name: str) -> int:
    """Per-photo seed from one run seed and the photo's file name (stable across machines)."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def name_of(src: Any) -> str:
    """How a mask argument is named in messages and in the JSON."""
    return str(src) if isinstance(src, (str, Path)) else type(src).__name__


def _scale_face(face: Face, sx: float, sy: float) -> Face:
    """A face found in a copy resized by (sx, sy), in the original's pixels."""
    scale = np.array([sx, sy])
    points = ((face.landmarks + 0.5) / scale - 0.5).astype(np.float32)
    x0, y0, x1, y1 = face.box
    box = ((x0 + 0.5) / sx - 0.5, (y0 + 0.5) / sy - 0.5, (x1 + 0.5) / sx - 0.5,
           (y1 + 0.5) / sy - 0.5)
    return Face(tuple(float(v) for v in box), points, face.score, face.method)


@cache
def cached_detector(name: str) -> LandmarkDetector:
    """One detector per backend and process (dlib's predictor takes ~0.5 s to load)."""
    return create_detector(name)


def describe_faces(faces: tuple[Face, ...] | list[Face]) -> str:
    """"0: box (x0,y0)-(x1,y1), 212 px; 1: ..." for messages (sizes as in `Face.size`)."""
    return "; ".join(f"{i}: box ({f.box[0]:.0f},{f.box[1]:.0f})-({f.box[2]:.0f},{f.box[3]:.0f}), "
                     f"{f.size:.0f} px" for i, f in enumerate(faces))


def check_device(device: str | torch.device, backend: Backend = "torch") -> torch.device:
    """`device` as a torch device this machine has (and the back-end can use), or a
    `PredictError` saying why not, in one line."""
    try:
        where = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise PredictError(f"--device {str(device)!r} is not a device torch knows ({err}); use "
                           "cpu, cuda or cuda:N") from None
    if where.type == "cuda" and not torch.cuda.is_available():
        raise PredictError(f"--device {device}: torch {torch.__version__} sees no CUDA GPU on "
                           "this machine; use --device cpu")
    if where.type == "cuda" and where.index is not None and \
            where.index >= torch.cuda.device_count():
        raise PredictError(f"--device {device}: there are only {torch.cuda.device_count()} CUDA "
                           "devices")
    if where.type == "mps" and not torch.backends.mps.is_available():
        raise PredictError(f"--device {device}: Apple's MPS is not available here; use --device "
                           "cpu")
    if backend == "onnx" and where.type != "cpu":
        raise PredictError("--backend onnx runs on the CPU; leave out --device")
    return where


def _ready_for_inference(generator: Generator) -> bool:
    return not generator.training and all(
        p.is_contiguous(memory_format=torch.channels_last) for p in generator.parameters()
        if p.dim() == 4)


def inference_generator(generator: Generator) -> Generator:
    """`generator` in eval mode with channels-last weights (faster convolutions on the CPU): the
    module itself if it already is, else a converted copy; the caller's module is not changed."""
    if _ready_for_inference(generator):
        return generator
    return copy.deepcopy(generator).eval().to(memory_format=torch.channels_last)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to `threads` inside the block and restored after it (None: leave
    them as they are)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Predictor:
    """Photo + mask -> the photo with the region inpainted, and 68 landmarks.

    >>> predictor = Predictor.from_pretrained()              # the bundled model
    >>> result = predictor("photo.jpg", auto_mask="cleft-left")
    >>> result.image, result.landmarks, result.crop_box, result.trained
    """

    def __init__(self, model: LoadedModel, detector: LandmarkDetector | str = "dlib",
                 precision: Precision = "fp32", border: str = "blur", backend: Backend = "torch",
                 onnx_path: str | Path | None = None, threads: int | None = None) -> None:
        """`model`'s generator is used as it is when it is in eval mode with channels-last
        weights (as `from_pretrained` loads it), else a converted copy: the caller's module is
        never changed. `threads` sets torch's CPU threads for the network call only (None:
        torch's setting); onnxruntime gets as many."""
        if precision not in ("fp32", "bf16"):
            raise PredictError(f"precision must be fp32 or bf16, not {precision!r}")
        if backend not in ("torch", "onnx"):
            raise PredictError(f"backend must be torch or onnx, not {backend!r}")
        if backend == "onnx" and precision != "fp32":
            raise PredictError("the onnx backend runs fp32 only; use --precision fp32")
        if threads is not None and threads < 1:
            raise PredictError(f"threads must be at least 1, not {threads}")
        self.backend = backend
        self.onnx = None
        if backend == "onnx":  # onnxruntime on the CPU; exported to the cache if no file given
            from inclg.export.onnx import OnnxGenerator

            self.onnx = (OnnxGenerator.cached(model, threads) if onnx_path is None
                         else OnnxGenerator(onnx_path, model, threads))
        generator = inference_generator(model.generator)
        self.model = model if generator is model.generator else LoadedModel(
            generator, model.model_id, model.checksum, model.trained, model.source)
        self.generator = generator
        self.device = next(generator.parameters()).device
        self.detector = cached_detector(detector) if isinstance(detector, str) else detector
        self.precision = precision
        self.border = border
        self.threads = threads

    @classmethod
    def from_pretrained(cls, path: str | Path | None = "default", *, detector: str = "dlib",
                        precision: Precision = "fp32", threads: int | None = None,
                        device: str | torch.device = "cpu", backend: Backend = "torch",
                        onnx_path: str | Path | None = None) -> Predictor:
        """Load a model: "default"/None for the bundled one, or a folder written by
        `save_pretrained` or `inclg weights import-original`. `threads`: CPU threads for the
        network (see `__init__`). `backend="onnx"` runs the network with onnxruntime from
        `onnx_path`, which must be an export of the same model, or from a cached export made on
        first use."""
        model = load_model(path, check_device(device, backend))
        model.generator.to(memory_format=torch.channels_last)  # ours: converted in place
        return cls(model, detector, precision, backend=backend, onnx_path=onnx_path,
                   threads=threads)

    @property
    def trained(self) -> bool:
        return self.model.trained

    def __call__(self, image: ImageInput | Photo, mask: Any = None, *,
                 auto_mask: str | MaskKind | None = None, face: int | None = None,
                 seed: int = 0, name: str | None = None,
                 mask_name: str | None = None) -> PredictResult:
        """Inpaint the region given by `mask` (on the full photo: a file, bytes, array or PIL
        image; what is painted is the region, see `inclg.io.images`) or drawn from the landmarks
        (`auto_mask`: a `MaskKind` or its name) in the photo `image`.

        Several faces are refused unless `face` picks one (0 = the largest). `seed` seeds torch
        for the network call; `name` and `mask_name` name the photo and the mask in messages.
        Raises `PredictError` (or another `DataError`) with the reason. A landmark fit that looks
        implausible is not an error: `result.fit.warnings` says what looks wrong.
        """
        start = time.perf_counter()
        prepared = self.prepare(image, mask, auto_mask=auto_mask, face=face, name=name,
                                mask_name=mask_name)
        tick = time.perf_counter()
        output, points = self.run(prepared.crop, prepared.region.hole, seed)
        model_seconds = time.perf_counter() - tick
        tick = time.perf_counter()
        result = self.postprocess(prepared, output, points, seed)
        timings = {**prepared.timings, "model": model_seconds,
                   "paste": time.perf_counter() - tick, "total": time.perf_counter() - start}
        return _with_timings(result, timings)

    # --- 1. prepare ---------------------------------------------------------------------------

    def prepare(self, image: ImageInput | Photo, mask: Any = None, *,
                auto_mask: str | MaskKind | None = None, face: int | None = None,
                name: str | None = None, mask_name: str | None = None) -> Prepared:
        """Read, detect, align and map the mask into the crop; refuse what cannot be predicted
        (see `__call__`)."""
        times: dict[str, float] = {}
        tick = time.perf_counter()
        photo = image if isinstance(image, Photo) else read_photo(image, name)
        if (mask is None) == (auto_mask is None):
            given = "both" if mask is not None else "neither"
            raise PredictError(f"{photo.name}: give either a mask or an automatic mask "
                               f"({', '.join(AUTO_MASKS)}), not {given}")
        kind = None if auto_mask is None else parse_kind(auto_mask)
        mask_label = mask_name or name_of(mask)
        if mask is not None and not isinstance(mask, (str, Path)) and mask_name is None:
            mask_label = f"the mask for {photo.name}"
        user_mask = None if mask is None else read_mask(mask, photo, mask_label)
        times["read"] = time.perf_counter() - tick

        tick = time.perf_counter()
        faces, index = self._choose_face(photo, face)
        times["detect"] = time.perf_counter() - tick

        tick = time.perf_counter()
        h, w = photo.pixels.shape[:2]
        alignment = fit(faces[index].landmarks, (h, w))  # the template and fit of the training data
        box = crop_footprint(alignment, (h, w))
        crop = cut_crop(photo.pixels[box[1]:box[3], box[0]:box[2]],
                        window_alignment(alignment, box), self.border)
        crop_points = transform_points(faces[index].landmarks, alignment.matrix)  # [68, 2]
        if kind is not None:
            drawn = landmark_mask(kind, crop_points, alignment.size)
            region = region_from_crop(photo.name, (drawn * 255).astype(np.uint8), alignment, box,
                                      mask_limit(kind, crop_points, alignment.size))
            source, whose = f"auto:{kind.value}", photo.name
            fit_check = fit_quality(crop_points, kind, drawn)
        else:
            region = region_from_photo(mask_label, user_mask, alignment, box)
            source, whose = (name_of(mask) if mask_name is None else mask_name), mask_label
            fit_check = fit_quality(crop_points)
        covered = face_fraction(region.crop_mask, crop_points)
        if covered > MAX_FACE_FRACTION:
            raise PredictError(f"{whose}: the mask covers {covered:.0%} of the face, "
                               f"more than {MAX_FACE_FRACTION:.0%}: too little of the face in "
                               f"{photo.name} is left to predict from (white = region to "
                               "predict; is the mask inverted?)")
        self._check_window(region.hole, whose)
        times["align"] = time.perf_counter() - tick
        return Prepared(photo, faces, index, alignment, box, crop, region, kind, source,
                        fit_check, covered, times)

    def _check_window(self, hole: np.ndarray, whose: str) -> None:
        """Refuse a hole reaching outside a windowed model's region (it would stay unfilled)."""
        x0, y0, side = window_box(self.generator.config, hole.shape[0])
        outside = int(hole.sum() - hole[y0:y0 + side, x0:x0 + side].sum())
        if outside:
            raise PredictError(
                f"{whose}: the mask reaches outside the region model {self.model.model_id!r} "
                f"fills ({outside} px of the aligned face lie outside the nose-and-mouth window, "
                f"crop x {x0}-{x0 + side - 1}, y {y0}-{y0 + side - 1}); draw the mask around the "
                "lips and the nose base only")

    def detect(self, pixels: np.ndarray) -> list[Face]:
        """Every face in the photo, largest first, in the photo's pixels.

        The detector sees a copy at most `DETECT_SIDE` px wide, so an 8000 x 6000 photo costs what
        a 640 px one does.
        """
        h, w = pixels.shape[:2]
        s = min(1.0, DETECT_SIDE / max(h, w))
        if s == 1.0:
            return self.detector.detect(pixels)
        small = cv2.resize(pixels, (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA)
        sx, sy = small.shape[1] / w, small.shape[0] / h
        return [_scale_face(f, sx, sy) for f in self.detector.detect(small)]

    def refine(self, pixels: np.ndarray, face: Face) -> Face:
        """Re-detect `face` on a window of the photo where its eyes are ~100 px apart, if the
        detection copy showed it smaller than the crop (its landmarks would be imprecise)."""
        h, w = pixels.shape[:2]
        eyes = eye_distance(face.landmarks)
        copy_scale = min(1.0, DETECT_SIDE / max(h, w))
        if copy_scale == 1.0 or eyes * copy_scale >= REFINE_EYE_DISTANCE:
            return face
        x0, y0, x1, y1 = face.box
        pad = 0.75 * max(x1 - x0, y1 - y0)
        wx0, wy0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
        wx1, wy1 = min(w, int(np.ceil(x1 + pad)) + 1), min(h, int(np.ceil(y1 + pad)) + 1)
        r = min(1.0, 100.0 / max(eyes, 1e-6))
        region = pixels[wy0:wy1, wx0:wx1]
        nw, nh = max(1, round((wx1 - wx0) * r)), max(1, round((wy1 - wy0) * r))
        if r < 1.0:
            region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        sx, sy = nw / (wx1 - wx0), nh / (wy1 - wy0)
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        best = None
        for found in self.detector.detect(region):
            found = _scale_face(found, sx, sy)
            found = Face((found.box[0] + wx0, found.box[1] + wy0, found.box[2] + wx0,
                          found.box[3] + wy0), found.landmarks + np.float32([wx0, wy0]),
                         found.score, f"{found.method}-refined")
            moved = np.hypot(*(np.array([(found.box[0] + found.box[2]) / 2,
                                         (found.box[1] + found.box[3]) / 2]) - centre))
            if moved < 0.5 * face.size and (best is None or moved < best[0]):
                best = (moved, found)
        return face if best is None else best[1]

    def _choose_face(self, photo: Photo, face: int | None) -> tuple[tuple[Face, ...], int]:
        """Every face found (largest first, the chosen one refined) and the chosen index."""
        faces = tuple(self.detect(photo.pixels))
        if not faces:
            raise PredictError(f"{photo.name}: no face found ({self.detector.name}); use a "
                               "photo where the whole face, eyes to chin, is visible and upright")
        if face is None and len(faces) > 1:
            raise PredictError(f"{photo.name}: {len(faces)} faces found, largest first: "
                               f"{describe_faces(faces)}; choose one with --face N")
        index = 0 if face is None else face
        if not 0 <= index < len(faces):
            raise PredictError(f"{photo.name}: there is no face {index}; found {len(faces)}, "
                               f"largest first: {describe_faces(faces)}")
        chosen = self.refine(photo.pixels, faces[index])
        return faces[:index] + (chosen,) + faces[index + 1:], index

    def draw_auto_mask(self, image: ImageInput | Photo, kind: str | MaskKind, *,
                       face: int | None = None) -> np.ndarray:
        """The automatic mask `kind` (a `MaskKind`) drawn from the detected landmarks as [H, W]
        bool on the upright photo, for a user to adjust and pass back as `mask`."""
        return self.propose_mask(image, kind, face=face)[0]

    def propose_mask(self, image: ImageInput | Photo, kind: str | MaskKind, *,
                     face: int | None = None) -> tuple[np.ndarray, FitQuality]:
        """`draw_auto_mask`'s mask and the plausibility of the fit it was drawn from (the app's
        mask buttons show the warnings)."""
        kind = parse_kind(kind)
        photo = image if isinstance(image, Photo) else read_photo(image)
        faces, index = self._choose_face(photo, face)
        alignment = fit(faces[index].landmarks, photo.pixels.shape[:2])
        crop_points = transform_points(faces[index].landmarks, alignment.matrix)  # [68, 2]
        drawn = landmark_mask(kind, crop_points, alignment.size)  # [S, S] in crop
        mask = unwarp((drawn * 255).astype(np.uint8), alignment) >= 128
        return mask, fit_quality(crop_points, kind, drawn)

    # --- 2. run -------------------------------------------------------------------------------

    def run(self, crop: np.ndarray, hole: np.ndarray, seed: int = 0) -> tuple[np.ndarray,
                                                                              np.ndarray]:
        """The network on one aligned crop [S, S, 3] uint8 with its hole [S, S] bool: the output
        [S, S, 3] uint8 and the landmarks [68, 2] in crop pixels. A windowed model runs on its
        window; the rest of the output is the crop. `seed` seeds torch for this call only."""
        x0, y0, side = window_box(self.generator.config, crop.shape[0])
        window = crop[y0:y0 + side, x0:x0 + side]
        image = torch.from_numpy(window).to(self.device).permute(2, 0, 1)[None].float() / 255
        part = hole[y0:y0 + side, x0:x0 + side]
        mask = torch.from_numpy(part).to(self.device, torch.float32)[None, None]  # [1, 1, s, s]
        x = masked_input(image, mask).contiguous(memory_format=torch.channels_last)
        if self.onnx is not None:
            out_np, points_np = self.onnx(x.cpu().numpy(), mask.cpu().numpy())
            out_u8 = (np.clip(out_np[0], 0, 1) * 255).round().astype(np.uint8)  # [3, s, s]
            out_window, points = out_u8.transpose(1, 2, 0), points_np[0].astype(np.float32)
        else:
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                      enabled=self.precision == "bf16")
            devices = [self.device] if self.device.type == "cuda" else []
            with (torch_threads(self.threads), torch.random.fork_rng(devices=devices),
                  torch.inference_mode(), autocast):
                torch.manual_seed(seed)
                out, lmk = self.generator(x, mask)
            out = (out[0].float().clamp(0, 1) * 255).round().to(torch.uint8)  # [3, s, s]
            out_window, points = out.permute(1, 2, 0).cpu().numpy(), lmk[0].float().cpu().numpy()
        output = crop.copy()
        output[y0:y0 + side, x0:x0 + side] = out_window
        return output, points + np.float32([x0, y0])

    # --- 3. postprocess -----------------------------------------------------------------------

    def postprocess(self, prepared: Prepared, output: np.ndarray, points: np.ndarray,
                    seed: int = 0) -> PredictResult:
        """Paste the network's `output` crop back into the photo (only the dilated mask changes)
        and map its landmarks `points` [68, 2] to photo pixels."""
        region, alignment = prepared.region, prepared.alignment
        pixels = prepared.photo.pixels
        h, w = pixels.shape[:2]
        composite = np.where(region.hole[..., None], output, prepared.crop)  # [S, S, 3] uint8
        image = paste(pixels, unwarp(composite, region.frame), region.alpha, region.window)
        photo_points = transform_points(points, alignment.inverse)  # [68, 2]
        limit = np.array([w - 1, h - 1], np.float64)
        outside = int(np.count_nonzero(((photo_points < 0) | (photo_points > limit)).any(axis=1)))
        inside = int(np.count_nonzero(region.mask))
        stats: dict[str, float | int] = {
            "area_px": region.total,
            "dilated_area_px": int(np.count_nonzero(region.alpha > 0)),
            "face_fraction": round(prepared.face_fraction, 4),
            "crop_fraction": round(float(region.crop_mask.mean()), 4),
            "outside_crop_fraction": round(1.0 - inside / region.total, 4),
            "feather_px": round(region.radius, 2),
        }
        details = Details(
            faces=prepared.faces,
            face_index=prepared.face_index,
            mask_source=prepared.mask_source,
            mask_stats=stats,
            region=ChangedRegion(region.window, region.mask, region.alpha),
            crop=CropPass(alignment, prepared.crop, region.hole, output,
                          points.astype(np.float32)),
            landmarks_outside=outside,
        )
        return PredictResult(
            image=image,
            landmarks=np.clip(photo_points, 0, limit).astype(np.float32),
            face=prepared.faces[prepared.face_index],
            crop_box=prepared.crop_box,
            trained=self.model.trained,
            warning=self.model.warning,
            model_id=self.model.model_id,
            checksum=self.model.checksum,
            seed=seed,
            mask_kind=USER_MASK if prepared.kind is None else prepared.kind.value,
            fit=prepared.fit,
            photo=prepared.photo,
            details=details,
        )


def _with_timings(result: PredictResult, timings: dict[str, float]) -> PredictResult:
    return replace(result, timings={k: round(v, 4) for k, v in timings.items()})


__all__ = ["AUTO_MASKS", "USER_MASK", "ChangedRegion", "CropPass", "Details", "PredictResult",
           "Predictor", "Prepared", "check_device", "inference_generator", "parse_kind",
           "seed_for", "torch_threads"]
