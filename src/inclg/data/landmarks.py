"""68-point landmark detection behind one small interface, plus the iBUG-68 point semantics.

Backends: ``dlib`` (HOG detector + the iBUG 300-W shape predictor shipped by
``face_recognition_models``; offline, the default), ``fan`` (the ``face-alignment`` package, the
paper's choice, used only when its weights are already on disk) and ``stub`` (deterministic and
dependency-free, for tests). Every backend returns points in iBUG-68 order as (x, y) pixels with
pixel centres at integer coordinates (OpenCV's and dlib's convention).

"Left" and "right" in region names are the *subject's* sides, as in iBUG: points 36-41 are the
right eye, which appears on the image's left in an unmirrored photo.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inclg.data import DataError
from inclg.io.files import atomic_path

NUM_POINTS = 68

REGIONS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nostrils": tuple(range(31, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lips": tuple(range(48, 60)),
    "inner_lips": tuple(range(60, 68)),
}

# Index i of a horizontally mirrored face takes point IBUG68_FLIP[i] of the original: the mirror
# image of a right eye corner is a left eye corner, so mirroring must also relabel the points.
IBUG68_FLIP: tuple[int, ...] = (
    *range(16, -1, -1),  # jaw
    *range(26, 16, -1),  # brows
    27,
    28,
    29,
    30,  # nose bridge (on the axis)
    35,
    34,
    33,
    32,
    31,  # nostrils
    45,
    44,
    43,
    42,
    47,
    46,  # right eye <- left eye
    39,
    38,
    37,
    36,
    41,
    40,  # left eye <- right eye
    54,
    53,
    52,
    51,
    50,
    49,
    48,
    59,
    58,
    57,
    56,
    55,  # outer lips
    64,
    63,
    62,
    61,
    60,
    67,
    66,
    65,  # inner lips
)


def flip_landmarks(points: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally mirrored image: x -> width - 1 - x, then iBUG relabelling."""
    mirrored = np.array(points, dtype=np.float32, copy=True)  # [68, 2]
    mirrored[:, 0] = (width - 1) - mirrored[:, 0]
    return mirrored[list(IBUG68_FLIP)]


def save_landmarks(path: str | Path, points: np.ndarray) -> None:
    """Write 68 points as one line of 136 numbers ``x1 y1 x2 y2 ...`` (the original's format)."""
    with atomic_path(path) as tmp:
        tmp.write_text(
            " ".join(f"{v:.2f}" for v in np.asarray(points).reshape(-1)) + "\n", encoding="utf-8"
        )


def load_landmarks(path: str | Path) -> np.ndarray:
    """68 (x, y) points [68, 2] from a text file of 136 whitespace-separated numbers."""
    try:
        values = np.array(Path(path).read_text(encoding="utf-8").split(), dtype=np.float32)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as landmarks ({err})") from None
    if values.size != 2 * NUM_POINTS:
        raise DataError(
            f"{path}: has {values.size} numbers, expected {2 * NUM_POINTS} (x1 y1 ... x68 y68)"
        )
    return values.reshape(NUM_POINTS, 2)


@dataclass(frozen=True)
class Face:
    """One detected face: its box (x0, y0, x1, y1), 68 landmarks [68, 2] and a detector score."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    method: str  # how it was found, e.g. "hog-up0" (recorded in the manifest)

    @property
    def size(self) -> float:
        """Geometric mean of the box sides: what "bigger face" means when several are found."""
        return float(np.sqrt(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0)))


class LandmarkDetector(Protocol):
    """Finds every face in an H x W x 3 uint8 RGB image, biggest first."""

    name: str  # backend and version, recorded in the manifest

    def detect(self, image: np.ndarray) -> list[Face]: ...


class MissingBackendError(DataError):
    """A landmark backend's package or model file is not installed."""


DETECTORS = ("dlib", "fan", "stub")


def create_detector(name: str) -> LandmarkDetector:
    """Build the named backend; a missing package or weight file raises `MissingBackendError`."""
    if name == "dlib":
        return DlibDetector()
    if name == "fan":
        return FanDetector()
    if name == "stub":
        return StubDetector()
    raise DataError(f"unknown landmark detector {name!r}; choose one of {', '.join(DETECTORS)}")


def check_backend(name: str) -> None:
    """Raise the error `create_detector(name)` would raise, without loading any model."""
    if name == "dlib":
        _import_dlib()
        dlib_predictor_path()
    elif name == "fan":
        missing = [str(p) for p in _fan_weight_files(_import_face_alignment()) if not p.is_file()]
        if missing:
            raise MissingBackendError(
                "face-alignment is installed but its weights are not on disk (nothing is "
                f"downloaded at run time); place them at: {', '.join(missing)}"
            )
    elif name != "stub":
        raise DataError(f"unknown landmark detector {name!r}; choose one of {', '.join(DETECTORS)}")


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise MissingBackendError(
            "the dlib backend needs the dlib package; run: pip install 'inclg[dlib]'"
        ) from None
    return dlib


def _import_face_alignment() -> Any:
    try:
        import face_alignment
    except ImportError:
        raise MissingBackendError(
            "the fan backend needs the face-alignment package: pip install face-alignment, "
            "then place its weights (2DFAN4 .zip and s3fd .pth) in torch hub's checkpoints "
            "folder (~/.cache/torch/hub/checkpoints); or use --detector dlib"
        ) from None
    return face_alignment


def dlib_predictor_path() -> Path:
    """The 68-point predictor file shipped by ``face_recognition_models``.

    Found through the import system without importing the package, whose ``__init__`` needs the
    (removed) ``pkg_resources`` module.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingBackendError(
            "the dlib landmark model is not installed; run: pip install 'inclg[dlib]' "
            "(dlib-bin and face_recognition_models)"
        )
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "models"
        / "shape_predictor_68_face_landmarks.dat"
    )
    if not path.is_file():
        raise MissingBackendError(f"{path} is missing; reinstall face_recognition_models")
    return path


class DlibDetector:
    """dlib's HOG face detector + the iBUG 300-W 68-point shape predictor (offline default).

    Detection escalates only when needed, because each step costs 2-3x the previous one: the plain
    image first; then the image padded by a quarter of its size (tight crops such as UTKFace's,
    where the face touches the border, defeat the sliding window otherwise); then one 2x upsampling
    for faces smaller than dlib's 80-pixel window.
    """

    def __init__(self, pad: float = 0.25) -> None:
        dlib = _import_dlib()
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_predictor_path()))
        self._pad = pad
        self.name = f"dlib-{dlib.__version__} hog + shape_predictor_68_face_landmarks"

    def detect(self, image: np.ndarray) -> list[Face]:
        image = np.ascontiguousarray(image)
        pad = round(self._pad * max(image.shape[:2]))
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        for method, img, offset, upsample in (
            ("hog-up0", image, 0, 0),
            ("hog-pad-up0", padded, pad, 0),
            ("hog-pad-up1", padded, pad, 1),
        ):
            boxes, scores, _ = self._detector.run(img, upsample, 0.0)
            if len(boxes):
                break
        faces = []
        for box, score in zip(boxes, scores):
            shape = self._predictor(img, box)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32) - offset
            rect = (
                box.left() - offset,
                box.top() - offset,
                box.right() - offset,
                box.bottom() - offset,
            )
            faces.append(Face(tuple(map(float, rect)), points, float(score), method))
        return sorted(faces, key=lambda f: -f.size)


def _fan_weight_files(face_alignment: Any) -> list[Path]:
    """Where ``face-alignment`` looks for its two weight files (torch hub's checkpoint folder)."""
    import torch

    sfd_detector = importlib.import_module("face_alignment.detection.sfd.sfd_detector")
    api = face_alignment.api
    minor = torch.__version__.split("+")[0].rsplit(".", 1)[0]
    fan_url = api.models_urls.get(minor, api.default_model_urls)["2DFAN-4"]
    sfd_url = sfd_detector.models_urls["s3fd"]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / url.rsplit("/", 1)[-1] for url in (fan_url, sfd_url)]


class FanDetector:
    """The paper's landmark network: S3FD face detector + 2D-FAN-4 from ``face-alignment`` on CPU.

    It never downloads: the weight files must already be in torch hub's checkpoint folder.
    """

    def __init__(self, device: str = "cpu") -> None:
        check_backend("fan")
        face_alignment = _import_face_alignment()
        self._model = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device=device, face_detector="sfd"
        )
        self.name = f"face-alignment-{face_alignment.__version__} s3fd + 2DFAN-4"

    def detect(self, image: np.ndarray) -> list[Face]:
        points, _, boxes = self._model.get_landmarks_from_image(image, return_bboxes=True)
        if points is None:
            return []
        faces = [
            Face(
                tuple(float(v) for v in box[:4]),
                np.asarray(lmk, np.float32)[:, :2],
                float(box[4]),
                "s3fd",
            )
            for lmk, box in zip(points, boxes)
        ]
        return sorted(faces, key=lambda f: -f.size)


class StubDetector:
    """Deterministic stand-in for tests: assumes a centred, upright face crop.

    A flat image (no texture) has no face; an image more than twice as wide as high holds two
    faces side by side; anything else has one face whose landmarks are the alignment template
    enlarged to fill the frame, like a UTKFace crop (about 30 % of the aligned crop is outside).
    """

    name = "stub"

    def detect(self, image: np.ndarray) -> list[Face]:
        from inclg.data.align import template

        h, w = image.shape[:2]
        if float(image.std()) < 2.0:
            return []
        halves = [(0, w // 2), (w - w // 2, w)] if w > 2 * h else [(0, w)]
        faces = []
        for x0, x1 in halves:
            side = min(x1 - x0, h)
            centre = np.array([(side - 1) / 2, 0.52 * side])  # the template's face centre
            points = (template(side) - centre) * 1.2 + centre  # face fills the frame
            points += np.array([x0 + (x1 - x0 - side) / 2, (h - side) / 2])
            faces.append(
                Face((float(x0), 0.0, float(x1), float(h)), points.astype(np.float32), 1.0, "stub")
            )
        return faces
