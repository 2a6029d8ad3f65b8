"""Photo in, prediction out: the path an ordinary phone photo takes through INCLG.

1. Read the photo upright (EXIF orientation applied; greyscale, RGBA and 16-bit files converted).
2. Detect the face on a copy at most 640 px wide (detection cost does not grow with the photo) and
   scale the 68 landmarks back; a face that is small in that copy is re-detected at full detail.
3. Align it with the same template and fit as the training data (`inclg.data.align`), cutting the
   256 x 256 crop from the face region only.
4. Bring the user's mask (drawn on the photo) into the crop, or draw one from the landmarks (a
   `MaskKind`), and check that the landmark fit and such a mask look plausible (`quality.py`).
5. Run the network and paste its output back at the photo's full resolution with a feathered
   seam; outside the slightly dilated mask the photo's pixels are copied bit for bit.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from inclg.data import DataError
from inclg.data.align import (
    Alignment,
    eye_distance,
    fit,
    invert_affine,
    transform_points,
    unwarp,
    warp,
)
from inclg.data.landmarks import Face, LandmarkDetector, create_detector
from inclg.data.masks import MaskKind, landmark_mask, mask_limit
from inclg.infer.blend import Window, feather_alpha, mask_window, paste
from inclg.infer.inputs import ImageInput, Photo, PredictError, name_of, read_mask, read_photo
from inclg.infer.quality import FitQuality, fit_quality
from inclg.model.generator import window_box
from inclg.model.masking import masked_input
from inclg.weights import LoadedModel, load_model

DETECT_SIDE = 640  # faces are detected on a copy whose longest side is at most this
REFINE_EYE_DISTANCE = 64.0  # re-detect at full detail if the eyes are closer in the copy
MAX_FACE_FRACTION = 0.6  # a mask may cover at most this much of the face (landmark hull)
FEATHER = 4.0  # width of the feathered seam (and of the mask's dilation), in crop pixels
AUTO_MASKS: tuple[MaskKind, ...] = tuple(MaskKind)  # what `auto_mask=` / --auto-mask accept
USER_MASK = "mask"  # the mask kind recorded for a mask the user drew
Precision = Literal["fp32", "bf16"]
Backend = Literal["torch", "onnx"]


@dataclass(frozen=True)
class PredictResult:
    """Everything one prediction produced; coordinates are (x, y) pixels of the upright photo."""

    image: np.ndarray  # [H, W, 3] uint8: the photo with the prediction pasted in
    landmarks: np.ndarray  # [68, 2] the network's landmarks, clamped to the photo
    crop_box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive): where the aligned crop lies
    trained: bool  # False: untrained weights, the masked region is noise (see `warning`)
    warning: str | None
    model_id: str
    checksum: str
    photo: Photo
    face_index: int  # which detected face (0 = largest)
    faces: tuple[Face, ...]  # every face found, largest first
    alignment: Alignment  # photo -> 256 x 256 crop
    window: tuple[int, int, int, int]  # x0, y0, x1, y1: the photo box around the mask
    mask: np.ndarray  # [window h, w] bool: the region asked for (within the crop)
    alpha: np.ndarray  # [window h, w] float32 blend weight, 0 outside the dilated mask
    crop: np.ndarray  # [256, 256, 3] uint8 aligned input
    crop_mask: np.ndarray  # [256, 256] bool: the hole given to the network
    crop_output: np.ndarray  # [256, 256, 3] uint8 network output (before compositing)
    crop_landmarks: np.ndarray  # [68, 2] the network's landmarks in the crop
    seed: int
    mask_source: str  # "auto:<kind>" or the mask's name
    mask_stats: dict[str, float | int]
    landmarks_outside: int  # network landmarks that fell outside the photo (before clamping)
    mask_kind: str = USER_MASK  # a `MaskKind` value, or "mask" for a mask the user drew
    fit: FitQuality | None = None  # how plausible the landmark fit (and automatic mask) look
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def face(self) -> Face:
        return self.faces[self.face_index]

    def changed_region(self) -> np.ndarray:
        """[H, W] bool: the only pixels that may differ from the photo (the dilated mask)."""
        h, w = self.image.shape[:2]
        region = np.zeros((h, w), bool)
        x0, y0, x1, y1 = self.window
        region[y0:y1, x0:x1] = self.alpha > 0
        return region


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


# --- geometry -----------------------------------------------------------------------------------


def _reframe(alignment: Alignment, origin: tuple[float, float], shape: tuple[int, int],
             scale: tuple[float, float] = (1.0, 1.0)) -> Alignment:
    """`alignment` re-expressed for a window of the photo at `origin` (x, y) of `shape` (h, w),
    optionally resized by `scale` (fx, fy) with cv2.resize's pixel-centre convention."""
    inv = np.diag([1.0 / scale[0], 1.0 / scale[1]])  # window px -> photo px, before the offset
    offset = 0.5 / np.asarray(scale) - 0.5 + np.asarray(origin, np.float64)
    matrix = np.empty((2, 3))
    matrix[:, :2] = alignment.matrix[:, :2] @ inv
    matrix[:, 2] = alignment.matrix[:, :2] @ offset + alignment.matrix[:, 2]
    return Alignment(matrix, invert_affine(matrix), alignment.size, shape, alignment.outside,
                     alignment.residual)


def crop_footprint(alignment: Alignment, shape: tuple[int, int], margin: int = 2) -> Window:
    """The photo box (x0, y0, x1, y1) that the aligned crop samples from, clipped to the photo."""
    s = alignment.size - 0.5
    corners = transform_points(np.array([[-0.5, -0.5], [s, -0.5], [s, s], [-0.5, s]]),
                               alignment.inverse)
    h, w = shape
    x0, y0 = np.floor(corners.min(0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(0)).astype(int) + margin + 1
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def _into_crop(pixels: np.ndarray, alignment: Alignment, border: str | None) -> np.ndarray:
    """Cut the aligned crop from `pixels` (the frame `alignment` describes).

    Where the face is larger than the crop, the frame is first reduced with area averaging to
    about the crop's scale, so a phone photo gives a clean crop rather than an aliased one.
    `border` None warps a mask (outside = 0); otherwise it is `inclg.data.align.warp`'s mode.
    """
    if alignment.scale < 0.8:
        h, w = pixels.shape[:2]
        nw, nh = max(1, round(w * alignment.scale)), max(1, round(h * alignment.scale))
        pixels = cv2.resize(pixels, (nw, nh), interpolation=cv2.INTER_AREA)
        alignment = _reframe(alignment, (0.0, 0.0), (nh, nw), (nw / w, nh / h))
    if border is None:
        return cv2.warpAffine(pixels, alignment.matrix, (alignment.size, alignment.size),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return warp(pixels, alignment, border)


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


@dataclass(frozen=True)
class _Region:
    """The region to predict, in a window of the photo around it and in the crop."""

    window: Window  # photo box around the mask and its seam
    frame: Alignment  # photo -> crop, for the window's pixels
    mask: np.ndarray  # [wh, ww] bool: the region asked for (inside the crop)
    alpha: np.ndarray  # [wh, ww] float32 blend weight; > 0 exactly on the dilated mask
    hole: np.ndarray  # [S, S] bool: the hole given to the network (covers the dilated mask)
    crop_mask: np.ndarray  # [S, S] bool: the region asked for, in the crop
    total: int  # photo pixels of the whole mask (some may lie outside the crop)
    radius: float  # seam width in photo pixels


def _no_overlap(name: str) -> PredictError:
    return PredictError(f"{name}: the mask does not touch the face (it lies outside the region "
                        "around the detected face); draw it on the face")


def _region(name: str, window: Window, alignment: Alignment, mask_of: Any,
            total: int | None, limit: np.ndarray | None = None) -> _Region:
    """Feather the region `mask_of(frame, covered)` returns for `window` and take it into the
    crop. The seam is `FEATHER` crop pixels wide: scaled to the photo, so a high-resolution photo
    gets a seam as soft as the prediction's own resolution. `limit` ([S, S] bool, in the crop)
    bounds the seam too: a cleft mask's seam stops at the upper lip's lower edge."""
    x0, y0, x1, y1 = window
    if x0 >= x1 or y0 >= y1:
        raise _no_overlap(name)
    frame = _reframe(alignment, (x0, y0), (y1 - y0, x1 - x0))
    size = alignment.size
    covered = unwarp(np.ones((size, size), np.float32), frame) > 0.999  # [wh, ww] inside the crop
    mask = mask_of(frame, covered)
    inside = int(np.count_nonzero(mask))
    if inside == 0:
        raise _no_overlap(name)
    radius = _seam(alignment)
    alpha = feather_alpha(mask, radius) * covered  # 0 outside the dilated mask
    if limit is not None:
        alpha *= unwarp(limit.astype(np.uint8) * 255, frame) >= 128
    hole = _into_crop((alpha > 0).astype(np.uint8) * 255, frame, None) > 0
    hole = cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # bilinear reach
    crop_mask = _into_crop(mask.astype(np.uint8) * 255, frame, None) >= 128
    return _Region(window, frame, mask, alpha, hole, crop_mask,
                   inside if total is None else total, radius)


def _seam(alignment: Alignment) -> float:
    return max(2.0, FEATHER / alignment.scale)


def _region_from_photo(name: str, mask: np.ndarray, alignment: Alignment, box: Window) -> _Region:
    """The region of a mask drawn on the full photo."""
    found = mask_window(mask, int(np.ceil(_seam(alignment))) + 2)
    assert found is not None  # read_mask refuses empty masks
    window = (max(found[0], box[0]), max(found[1], box[1]),
              min(found[2], box[2]), min(found[3], box[3]))
    x0, y0, x1, y1 = window
    return _region(name, window, alignment,
                   lambda frame, covered: mask[y0:y1, x0:x1] & covered,
                   int(np.count_nonzero(mask)))


def _region_from_crop(name: str, drawn: np.ndarray, alignment: Alignment, box: Window,
                      limit: np.ndarray | None = None) -> _Region:
    """The region of a mask drawn in the crop (uint8, 255 = region), mapped onto the photo."""
    ys, xs = np.nonzero(drawn)
    corners = np.array([[xs.min() - 1, ys.min() - 1], [xs.max() + 1, ys.min() - 1],
                        [xs.max() + 1, ys.max() + 1], [xs.min() - 1, ys.max() + 1]], np.float64)
    points = transform_points(corners, alignment.inverse)
    grow = int(np.ceil(_seam(alignment))) + 2
    x0, y0 = np.floor(points.min(0)).astype(int) - grow
    x1, y1 = np.ceil(points.max(0)).astype(int) + grow + 1
    window = (max(int(x0), box[0]), max(int(y0), box[1]),
              min(int(x1), box[2]), min(int(y1), box[3]))
    return _region(name, window, alignment,
                   lambda frame, covered: unwarp(drawn, frame) >= 128, None, limit)


def _face_fraction(crop_mask: np.ndarray, crop_points: np.ndarray) -> float:
    """How much of the face (the hull of its 68 landmarks, in the crop) the mask covers."""
    hull = np.zeros(crop_mask.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(crop_points).astype(np.int32)), 1)
    return float(np.count_nonzero(crop_mask & (hull > 0)) / max(1, np.count_nonzero(hull)))


# --- the predictor --------------------------------------------------------------------------------


class Predictor:
    """Photo + mask -> the photo with the region inpainted, and 68 landmarks.

    >>> predictor = Predictor.from_pretrained()              # the bundled model
    >>> result = predictor("photo.jpg", auto_mask="cleft-left")
    >>> result.image, result.landmarks, result.crop_box, result.trained
    """

    def __init__(self, model: LoadedModel, detector: LandmarkDetector | str = "dlib",
                 precision: Precision = "fp32", border: str = "blur", backend: Backend = "torch",
                 onnx_path: str | Path | None = None) -> None:
        if precision not in ("fp32", "bf16"):
            raise PredictError(f"precision must be fp32 or bf16, not {precision!r}")
        if backend not in ("torch", "onnx"):
            raise PredictError(f"backend must be torch or onnx, not {backend!r}")
        if backend == "onnx" and precision != "fp32":
            raise PredictError("the onnx backend runs fp32 only; use --precision fp32")
        self.backend = backend
        self.onnx = None
        if backend == "onnx":  # onnxruntime on the CPU; exported to the cache if no file given
            from inclg.export.onnx import OnnxGenerator

            self.onnx = (OnnxGenerator.cached(model) if onnx_path is None
                         else OnnxGenerator(onnx_path, model))
        self.model = model
        self.generator = model.generator.eval().to(memory_format=torch.channels_last)
        self.device = next(self.generator.parameters()).device
        self.detector = cached_detector(detector) if isinstance(detector, str) else detector
        self.precision = precision
        self.border = border

    @classmethod
    def from_pretrained(cls, path: str | Path | None = "default", *, detector: str = "dlib",
                        precision: Precision = "fp32", threads: int | None = None,
                        device: str | torch.device = "cpu", backend: Backend = "torch",
                        onnx_path: str | Path | None = None) -> Predictor:
        """Load a model: "default"/None for the bundled one, or a folder written by
        `save_pretrained` or `inclg weights import-original`. `threads` sets torch's CPU threads
        (for the whole process; onnxruntime uses as many). `backend="onnx"` runs the network
        with onnxruntime from `onnx_path`, which must be an export of the same model, or from a
        cached export made on first use."""
        if threads is not None:
            torch.set_num_threads(threads)
        return cls(load_model(path, device), detector, precision, backend=backend,
                   onnx_path=onnx_path)

    @property
    def trained(self) -> bool:
        return self.model.trained

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

    def __call__(self, image: ImageInput | Photo, mask: Any = None, *,
                 auto_mask: str | MaskKind | None = None, face: int | None = None,
                 seed: int = 0, name: str | None = None,
                 mask_name: str | None = None) -> PredictResult:
        """Inpaint the region given by `mask` (on the full photo: a file, bytes, array or PIL
        image; white or opaque = region) or drawn from the landmarks (`auto_mask`: a `MaskKind`
        or its name) in the photo `image`.

        Several faces are refused unless `face` picks one (0 = the largest). `seed` seeds torch
        for the network call; `name` and `mask_name` name the photo and the mask in messages.
        Raises `PredictError` (or another `DataError`) with the reason. A landmark fit that looks
        implausible is not an error: `result.fit.warnings` says what looks wrong.
        """
        times: dict[str, float] = {}
        start = time.perf_counter()
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
        pixels = photo.pixels
        h, w = pixels.shape[:2]
        times["read"] = time.perf_counter() - start

        tick = time.perf_counter()
        faces, index = self._choose_face(photo, face)
        chosen = faces[index]
        times["detect"] = time.perf_counter() - tick

        tick = time.perf_counter()
        alignment = fit(chosen.landmarks, (h, w))  # the template and fit of the training data
        box = crop_footprint(alignment, (h, w))
        frame = _reframe(alignment, box[:2], (box[3] - box[1], box[2] - box[0]))
        crop = _into_crop(pixels[box[1]:box[3], box[0]:box[2]], frame, self.border)
        crop_points = transform_points(chosen.landmarks, alignment.matrix)  # [68, 2]
        if kind is not None:
            drawn = landmark_mask(kind, crop_points, alignment.size)
            region = _region_from_crop(photo.name, (drawn * 255).astype(np.uint8), alignment, box,
                                       mask_limit(kind, crop_points, alignment.size))
            source = f"auto:{kind.value}"
            fit_check = fit_quality(crop_points, kind, drawn)
        else:
            region = _region_from_photo(mask_label, user_mask, alignment, box)
            source = name_of(mask) if mask_name is None else mask_name
            fit_check = fit_quality(crop_points)
        whose = photo.name if kind is not None else mask_label
        face_fraction = _face_fraction(region.crop_mask, crop_points)
        if face_fraction > MAX_FACE_FRACTION:
            raise PredictError(f"{whose}: the mask covers {face_fraction:.0%} of the face, "
                               f"more than {MAX_FACE_FRACTION:.0%}: too little of the face in "
                               f"{photo.name} is left to predict from (white = region to "
                               "predict; is the mask inverted?)")
        x0, y0, side = window_box(self.generator.config, alignment.size)
        hole = np.asarray(region.hole) > 0
        outside = int(hole.sum() - hole[y0:y0 + side, x0:x0 + side].sum())
        if outside:
            raise PredictError(
                f"{whose}: the mask reaches outside the region model {self.model.model_id!r} "
                f"fills ({outside} px of the aligned face lie outside the nose-and-mouth window, "
                f"crop x {x0}-{x0 + side - 1}, y {y0}-{y0 + side - 1}); draw the mask around the "
                "lips and the nose base only")
        times["align"] = time.perf_counter() - tick

        tick = time.perf_counter()
        output, points = self._run(crop, region.hole, seed)
        times["model"] = time.perf_counter() - tick

        tick = time.perf_counter()
        composite = np.where(region.hole[..., None], output, crop)  # [S, S, 3] uint8
        result = paste(pixels, unwarp(composite, region.frame), region.alpha, region.window)
        photo_points = transform_points(points, alignment.inverse)  # [68, 2]
        limit = np.array([w - 1, h - 1], np.float64)
        outside = int(np.count_nonzero(((photo_points < 0) | (photo_points > limit)).any(axis=1)))
        times["paste"] = time.perf_counter() - tick
        times["total"] = time.perf_counter() - start
        inside = int(np.count_nonzero(region.mask))
        stats: dict[str, float | int] = {
            "area_px": region.total,
            "dilated_area_px": int(np.count_nonzero(region.alpha > 0)),
            "face_fraction": round(face_fraction, 4),
            "crop_fraction": round(float(region.crop_mask.mean()), 4),
            "outside_crop_fraction": round(1.0 - inside / region.total, 4),
            "feather_px": round(region.radius, 2),
        }
        return PredictResult(
            image=result,
            landmarks=np.clip(photo_points, 0, limit).astype(np.float32),
            crop_box=box,
            trained=self.model.trained,
            warning=self.model.warning,
            model_id=self.model.model_id,
            checksum=self.model.checksum,
            photo=photo,
            face_index=index,
            faces=faces,
            alignment=alignment,
            window=region.window,
            mask=region.mask,
            alpha=region.alpha,
            crop=crop,
            crop_mask=region.hole,
            crop_output=output,
            crop_landmarks=points.astype(np.float32),
            seed=seed,
            mask_source=source,
            mask_stats=stats,
            landmarks_outside=outside,
            mask_kind=USER_MASK if kind is None else kind.value,
            fit=fit_check,
            timings={k: round(v, 4) for k, v in times.items()},
        )

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

    def _run(self, crop: np.ndarray, hole: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The network on one aligned crop: output [256, 256, 3] uint8 and landmarks [68, 2] in
        crop pixels. A windowed model runs on its window; the rest of the output is the crop."""
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
            with torch.random.fork_rng(devices=devices), torch.inference_mode(), autocast:
                torch.manual_seed(seed)
                out, lmk = self.generator(x, mask)
            out = (out[0].float().clamp(0, 1) * 255).round().to(torch.uint8)  # [3, s, s]
            out_window, points = out.permute(1, 2, 0).cpu().numpy(), lmk[0].float().cpu().numpy()
        output = crop.copy()
        output[y0:y0 + side, x0:x0 + side] = out_window
        return output, points + np.float32([x0, y0])


__all__ = ["AUTO_MASKS", "USER_MASK", "PredictResult", "Predictor", "parse_kind", "seed_for"]
