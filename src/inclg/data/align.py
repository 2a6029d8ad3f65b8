"""Face alignment to a fixed 68-point template with a similarity transform (rotation, uniform scale,
translation), shared by data preparation and by inference on user photos.

The 2 x 3 matrix maps source pixels to crop pixels (OpenCV's `warpAffine` convention: pixel centres
at integer coordinates); its inverse maps a generated crop back into the original photo, so
inference can paste the result back exactly where the face was.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inclg.data import DataError

TEMPLATE_SIZE = 256

# Mean iBUG-68 shape of ~3,000 dlib detections (1,500 CelebA + 1,500 UTKFace, one face each),
# Procrustes-aligned, averaged with its mirror image so it is exactly symmetric, then placed in a
# 256 x 256 crop: centred, brows' top at 18 % and chin at 86 % of the height (the face, brows to
# chin, covers 68 %; forehead and chin keep a margin). Eye centres are 80 px apart at y = 75.
# Written with pixel edges at integers (centre x = 128); `template` converts to pixel centres.
_TEMPLATE_256 = np.array(
    [
        (37.9, 76.4),
        (38.6, 100.2),
        (41.3, 124.0),
        (45.7, 147.3),
        (54.4, 169.1),
        (68.4, 188.1),
        (85.8, 204.0),
        (105.6, 216.6),
        (128.0, 220.2),
        (150.4, 216.6),
        (170.2, 204.0),
        (187.6, 188.1),
        (201.6, 169.1),
        (210.3, 147.3),
        (214.7, 124.0),
        (217.4, 100.2),
        (218.1, 76.4),
        (54.1, 57.9),
        (65.7, 48.4),
        (81.3, 46.1),
        (97.3, 48.6),
        (112.4, 54.9),
        (143.6, 54.9),
        (158.7, 48.6),
        (174.7, 46.1),
        (190.3, 48.4),
        (201.9, 57.9),
        (128.0, 73.8),
        (128.0, 89.3),
        (128.0, 104.8),
        (128.0, 120.5),
        (110.3, 130.8),
        (118.8, 133.9),
        (128.0, 136.7),
        (137.2, 133.9),
        (145.7, 130.8),
        (72.2, 75.7),
        (82.1, 69.9),
        (94.1, 70.2),
        (104.3, 78.2),
        (93.1, 80.2),
        (81.3, 80.0),
        (151.7, 78.2),
        (161.9, 70.2),
        (173.9, 69.9),
        (183.8, 75.7),
        (174.7, 80.0),
        (162.9, 80.2),
        (91.7, 158.0),
        (105.1, 152.9),
        (118.4, 150.4),
        (128.0, 152.6),
        (137.6, 150.4),
        (150.9, 152.9),
        (164.3, 158.0),
        (151.6, 171.8),
        (138.4, 177.8),
        (128.0, 178.9),
        (117.6, 177.8),
        (104.4, 171.8),
        (97.3, 159.0),
        (118.3, 158.4),
        (128.0, 159.4),
        (137.7, 158.4),
        (158.7, 159.0),
        (137.9, 165.5),
        (128.0, 166.7),
        (118.1, 165.5),
    ],
    dtype=np.float64,
)  # [68, 2]

# Points that fit the transform: nose, eyes and mouth corners move least with expression and
# pose; the jaw line and lips (which a cleft distorts) are left out.
ALIGN_POINTS: tuple[int, ...] = (*range(27, 48), 48, 54)

BORDERS = ("blur", "reflect", "replicate", "constant")


def template(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The 68 template points [68, 2] for a size x size crop.

    Pixel centres sit at integer coordinates, so the crop's vertical axis is x = (size - 1) / 2:
    the template is symmetric about it and a flipped crop keeps the face where it was.
    """
    return _TEMPLATE_256 * (size / TEMPLATE_SIZE) - 0.5


def eye_distance(points: np.ndarray) -> float:
    """Distance between the two eye centres: the face's scale in `points`' pixels."""
    return float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform [2, 3] taking points `src` onto `dst` (Umeyama, 1991).

    Closed form, so identical inputs always give identical crops (OpenCV's robust estimators
    sample randomly); with landmarks there are no gross outliers to be robust against.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var = (s0**2).sum() / len(src)
    if var < 1e-12:
        raise DataError("cannot align: the landmarks are all at one point")
    u, d, vt = np.linalg.svd(d0.T @ s0 / len(src))
    sign = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign)) / var
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2 x 3 affine matrix, as a 2 x 3 matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 affine matrix to points [N, 2]."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


@dataclass(frozen=True)
class Alignment:
    """How a crop was cut from its source photo."""

    matrix: np.ndarray  # [2, 3] source pixels -> crop pixels
    inverse: np.ndarray  # [2, 3] crop pixels -> source pixels
    size: int  # crop side in pixels
    source_shape: tuple[int, int]  # (height, width) of the source photo
    outside: float  # fraction of the crop that lies outside the source (filled by the border mode)
    residual: float  # RMS template misfit of the fitting points, in eye distances (shape oddity)

    @property
    def scale(self) -> float:
        """Crop pixels per source pixel (> 1: the face was enlarged)."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def outside_mask(matrix: np.ndarray, source_shape: tuple[int, int], size: int) -> np.ndarray:
    """[size, size] float32: 1 where a crop pixel samples outside the source photo, 0 inside."""
    inside = cv2.warpAffine(
        np.ones(source_shape, np.float32),
        np.asarray(matrix, np.float64),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return 1.0 - inside


def fit(
    landmarks: np.ndarray, source_shape: tuple[int, int], size: int = TEMPLATE_SIZE
) -> Alignment:
    """The alignment of a face with these landmarks in a photo of shape (height, width)."""
    target = template(size)
    matrix = estimate_similarity(landmarks[list(ALIGN_POINTS)], target[list(ALIGN_POINTS)])
    fitted = transform_points(landmarks[list(ALIGN_POINTS)], matrix)
    misfit = np.sqrt(((fitted - target[list(ALIGN_POINTS)]) ** 2).sum(1).mean()) / eye_distance(
        target
    )
    outside = float(outside_mask(matrix, source_shape[:2], size).mean())
    return Alignment(
        matrix, invert_affine(matrix), size, tuple(source_shape[:2]), outside, float(misfit)
    )


def warp(image: np.ndarray, alignment: Alignment, border: str = "blur") -> np.ndarray:
    """Cut the aligned size x size crop from `image` (bilinear).

    Where the crop reaches past the photo (tight crops such as UTKFace's), ``blur`` (the default)
    mirrors the photo and fades the mirror into a blur of itself and then its median colour with
    distance from the edge, like the FFHQ alignment script: no hard frame for the network to learn,
    and no sharp mirrored second chin. ``reflect``, ``replicate`` and ``constant`` (black) are
    OpenCV's plain border modes. Pixels inside the photo are never changed.
    """
    if border not in BORDERS:
        raise DataError(f"unknown border mode {border!r}; choose one of {', '.join(BORDERS)}")
    mode = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}.get(
        border, cv2.BORDER_REFLECT_101
    )
    size = alignment.size
    crop = cv2.warpAffine(
        image, alignment.matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode
    )
    if border != "blur" or alignment.outside == 0.0:
        return crop
    outside = outside_mask(alignment.matrix, alignment.source_shape, size) > 0.5
    if not outside.any():
        return crop
    distance = cv2.distanceTransform(outside.astype(np.uint8), cv2.DIST_L2, 5)  # px from the photo
    ramp = 0.125 * size
    fade = np.clip(distance / ramp, 0.0, 1.0)[:, :, None]  # [S, S, 1]
    soft = cv2.GaussianBlur(crop, (0, 0), sigmaX=0.02 * size + 1.0).astype(np.float32)
    median = np.median(crop[~outside], axis=0).astype(np.float32)  # [3]
    blended = crop.astype(np.float32)
    blended += (soft - blended) * np.clip(3.0 * fade, 0.0, 1.0)
    blended += (median - blended) * fade
    return np.where(outside[:, :, None], np.round(blended), crop).astype(np.uint8)


def align(
    image: np.ndarray, landmarks: np.ndarray, size: int = TEMPLATE_SIZE, border: str = "blur"
) -> tuple[np.ndarray, np.ndarray, Alignment]:
    """Aligned crop [size, size, 3], its landmarks in crop pixels [68, 2] and the `Alignment`."""
    alignment = fit(landmarks, image.shape[:2], size)
    crop = warp(image, alignment, border)
    return crop, transform_points(landmarks, alignment.matrix).astype(np.float32), alignment


def unwarp(crop: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Map a (processed) crop back into the source photo's frame; pixels outside the crop are 0.

    Use together with a warped mask to blend an inpainted crop into the original photo.
    """
    h, w = alignment.source_shape
    return cv2.warpAffine(
        crop, alignment.inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
