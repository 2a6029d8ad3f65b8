"""Lip and nose measurements a surgeon plans a lip repair with, from 68 iBUG landmarks.

`measure` turns one face's landmarks (photo pixels) into the 2D distances of `MEASUREMENTS`: in
units of the outer eye-corner distance (points 36-45, "iod", the inter-ocular distance that the
300-W benchmark normalises by), and in millimetres when the caller gives a scale. `compare` sets
the face as it is (the detector's landmarks on the input photo) against the predicted non-cleft
face (the network's landmarks). docs/MEASUREMENTS.md defines every measurement and its limits.

Left and right are the subject's, as in iBUG: points 36-41 are the subject's right eye, on the
image's left in an unmirrored photo (a mirrored selfie swaps them). Differences are right minus
left; midline deviations are positive towards the subject's left.

The facial frame comes from the four eye corners (36, 39, 42, 45) only, so a deviated nose or a
cleft lip cannot bend the midline it is measured against: the midline passes through the corners'
mean, perpendicular to the line from the right eye's corners to the left eye's corners.

Only numpy: importing this module costs nothing beyond the landmark definitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from inclg.data import DataError
from inclg.data.landmarks import IBUG68_FLIP, NUM_POINTS

EYE_CORNERS: tuple[int, ...] = (36, 39, 42, 45)  # the facial frame: midline and axes
UNIT_POINTS: tuple[int, int] = (36, 45)  # 1 iod = the distance between these
OUTER_LIP: tuple[int, ...] = tuple(range(48, 60))
RIGHT_CONTOUR: tuple[int, ...] = (0, 1, 2)  # jaw line beside the right eye and cheek
LEFT_CONTOUR: tuple[int, ...] = (14, 15, 16)

# Beyond these angles a 2D photo misrepresents the face: a turned head foreshortens one side
# (left/right differences and midline deviations are biased); a strongly tilted head usually is
# turned or pitched as well, and landmark detectors are less accurate on it.
MAX_YAW_DEG = 10.0
MAX_ROLL_DEG = 15.0


@dataclass(frozen=True)
class MeasurementSpec:
    """What one measurement is: its name, the iBUG-68 points it is computed from, and whether it
    is signed (a difference or a deviation) rather than a length."""

    name: str
    points: tuple[int, ...]
    signed: bool
    description: str


# The order of the JSON, the CSV columns and the figure's table.
MEASUREMENTS: tuple[MeasurementSpec, ...] = (
    MeasurementSpec("mouth_width", (48, 54), False, "cheilion to cheilion"),
    MeasurementSpec(
        "cupid_bow_peak_height_right", (48, 50, 54), False,
        "right Cupid's bow peak above the mouth corners' mid-point, along the face's vertical",
    ),
    MeasurementSpec(
        "cupid_bow_peak_height_left", (48, 52, 54), False,
        "left Cupid's bow peak above the mouth corners' mid-point, along the face's vertical",
    ),
    MeasurementSpec(
        "cupid_bow_peak_height_difference", (50, 52), True,
        "right minus left peak height: how much higher the right peak sits",
    ),
    MeasurementSpec(
        "upper_lip_height_right", (32, 50), False,
        "right nostril sill to the right Cupid's bow peak on the vermilion border",
    ),
    MeasurementSpec(
        "upper_lip_height_left", (34, 52), False,
        "left nostril sill to the left Cupid's bow peak on the vermilion border",
    ),
    MeasurementSpec(
        "upper_lip_height_difference", (32, 34, 50, 52), True, "right minus left upper-lip height"
    ),
    MeasurementSpec("philtrum_length", (33, 51), False, "subnasale to the Cupid's bow centre"),
    MeasurementSpec(
        "nostril_width_right", (31, 33), False, "right alar base to subnasale (half nasal base)"
    ),
    MeasurementSpec(
        "nostril_width_left", (33, 35), False, "subnasale to the left alar base (half nasal base)"
    ),
    MeasurementSpec(
        "nostril_width_difference", (31, 33, 35), True, "right minus left nostril width"
    ),
    MeasurementSpec(
        "cupid_bow_midline_deviation", (51,), True,
        "Cupid's bow centre from the facial midline, positive towards the subject's left",
    ),
    MeasurementSpec(
        "nose_tip_midline_deviation", (30,), True,
        "nose tip from the facial midline, positive towards the subject's left",
    ),
    MeasurementSpec(
        "lip_asymmetry", OUTER_LIP, False,
        "lip-symmetry score: RMS distance of the outer-lip points from their mirror-symmetric "
        "positions about the facial midline (0 = perfectly symmetric)",
    ),
)
MEASUREMENT_NAMES: tuple[str, ...] = tuple(spec.name for spec in MEASUREMENTS)


@dataclass(frozen=True, eq=False)
class FacialFrame:
    """The face's own axes in photo pixels, from the eye corners only."""

    origin: np.ndarray  # [2] mean of the four eye corners: a point of the facial midline
    across: np.ndarray  # [2] unit vector from the subject's right eye to the left eye
    up: np.ndarray  # [2] unit vector along the midline towards the forehead
    eye_distance_px: float  # outer eye corners 36-45: 1 iod

    def deviation(self, point: np.ndarray) -> float:
        """Signed distance of `point` from the midline, positive towards the subject's left."""
        return float((point - self.origin) @ self.across)

    def mirror(self, points: np.ndarray) -> np.ndarray:
        """`points` [N, 2] reflected about the midline."""
        offset = (points - self.origin) @ self.across  # [N]
        return points - 2 * offset[:, None] * self.across


def facial_frame(points: np.ndarray) -> FacialFrame:
    """The facial frame of 68 landmarks [68, 2]; raises DataError when the eyes coincide."""
    right = points[[36, 39]].mean(0)
    left = points[[42, 45]].mean(0)
    across = left - right
    eye_distance = float(np.linalg.norm(points[UNIT_POINTS[1]] - points[UNIT_POINTS[0]]))
    if np.linalg.norm(across) < 1e-6 or eye_distance < 1e-6:
        raise DataError("landmarks: the eye corners coincide, so the face has no scale or axes")
    across = across / np.linalg.norm(across)
    up = np.array([across[1], -across[0]])  # across turned 90 degrees; y runs down the image
    return FacialFrame(points[list(EYE_CORNERS)].mean(0), across, up, eye_distance)


@dataclass(frozen=True)
class Pose:
    """Head pose estimated from 2D landmarks, in degrees.

    roll: the eye line's angle in the image, positive when the subject's left eye is lower
    (the face turned clockwise as displayed). yaw: the face treated as a vertical cylinder whose
    silhouette is the jaw line beside the eyes (points 0-2 and 14-16) and whose midline (the eye
    corners' mean) lies on its front, so the midline's offset between the two silhouettes is the
    sine of the turn; positive when the subject looks towards their left. A rough estimate, good
    enough to warn, not to correct; a face that is itself asymmetric (e.g. hemifacial
    microsomia) reads as turned. Pitch is not estimated.
    """

    yaw_deg: float
    roll_deg: float

    def to_dict(self) -> dict[str, float]:
        return {"yaw_deg": _round(self.yaw_deg, 1), "roll_deg": _round(self.roll_deg, 1)}


def estimate_pose(points: np.ndarray) -> Pose:
    """Yaw and roll of a face from its 68 landmarks [68, 2] (see `Pose`)."""
    points = _check_landmarks(points)
    frame = facial_frame(points)
    roll = math.degrees(math.atan2(frame.across[1], frame.across[0]))
    to_right = -frame.deviation(points[list(RIGHT_CONTOUR)].mean(0))  # midline to right cheek
    to_left = frame.deviation(points[list(LEFT_CONTOUR)].mean(0))
    total = to_right + to_left
    sine = (to_right - to_left) / total if total > 1e-6 else 0.0
    return Pose(math.degrees(math.asin(min(max(sine, -1.0), 1.0))), roll)


@dataclass(frozen=True)
class Measurement:
    """One measured distance: in photo pixels, in iod, in mm when a scale was given, and whether
    its points were observed (None: no mask given; False: a point lies in the mask or outside
    the photo, so the value describes landmarks that were not seen there)."""

    name: str
    points: tuple[int, ...]
    px: float
    iod: float
    mm: float | None
    observed: bool | None

    def to_dict(self) -> dict[str, object]:
        return {"points": list(self.points), "px": _round(self.px, 2), "iod": _round(self.iod, 4),
                "mm": _round_or_none(self.mm, 2), "observed": self.observed}


@dataclass(frozen=True, eq=False)
class Measurements:
    """Every measurement of one face, with the pose, scale and warnings that qualify them."""

    values: dict[str, Measurement]  # in MEASUREMENTS order
    pose: Pose
    eye_distance_px: float
    mm_per_iod: float | None  # millimetres in one iod; None without a scale
    warnings: tuple[str, ...]
    landmarks: np.ndarray  # [68, 2] photo pixels, what the figure draws on

    def __getitem__(self, name: str) -> Measurement:
        return self.values[name]

    @property
    def frame(self) -> FacialFrame:
        return facial_frame(self.landmarks)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: units, scale, pose, warnings and every measurement with its points."""
        return {
            "units": {"iod": "outer eye-corner distance (iBUG points 36-45)", "mm": "millimetres",
                      "px": "photo pixels"},
            "eye_distance_px": _round(self.eye_distance_px, 2),
            "mm_per_iod": _round_or_none(self.mm_per_iod, 3),
            "pose": self.pose.to_dict(),
            "warnings": list(self.warnings),
            "values": {name: value.to_dict() for name, value in self.values.items()},
        }

    @staticmethod
    def field_names(prefix: str = "") -> list[str]:
        """CSV column names of `to_row` (the same whether or not a scale was given)."""
        columns = [f"{prefix}{name}_{unit}" for name in MEASUREMENT_NAMES for unit in ("iod", "mm")]
        return [*columns, f"{prefix}yaw_deg", f"{prefix}roll_deg", f"{prefix}not_observed",
                f"{prefix}warnings"]

    def to_row(self, prefix: str = "") -> dict[str, float | str | None]:
        """One flat CSV row: each measurement in iod and mm (None without a scale), the pose, the
        names of unobserved measurements and the warnings (both joined by "; ")."""
        row: dict[str, float | str | None] = {}
        for name, value in self.values.items():
            row[f"{prefix}{name}_iod"] = _round(value.iod, 4)
            row[f"{prefix}{name}_mm"] = _round_or_none(value.mm, 2)
        row[f"{prefix}yaw_deg"] = _round(self.pose.yaw_deg, 1)
        row[f"{prefix}roll_deg"] = _round(self.pose.roll_deg, 1)
        row[f"{prefix}not_observed"] = "; ".join(
            name for name, value in self.values.items() if value.observed is False)
        row[f"{prefix}warnings"] = "; ".join(self.warnings)
        return row


def measure(
    landmarks: np.ndarray,
    *,
    eye_distance_mm: float | None = None,
    mm_per_px: float | None = None,
    mask: np.ndarray | None = None,
) -> Measurements:
    """Measure one face from its 68 iBUG landmarks [68, 2] in photo pixels.

    The scale for millimetres is either the subject's outer eye-corner distance in mm (measured
    on the patient) or the photo's mm per pixel (from a ruler in the photo), not both. `mask`
    [H, W] (nonzero = inside, in the same pixels) marks what was not observed, e.g. the region
    a prediction replaces: each measurement with a point inside it is flagged `observed=False`.
    """
    points = _check_landmarks(landmarks)
    if eye_distance_mm is not None and mm_per_px is not None:
        raise DataError("give either eye_distance_mm or mm_per_px as the scale, not both")
    frame = facial_frame(points)
    if eye_distance_mm is not None:
        mm_per_iod: float | None = _positive(eye_distance_mm, "eye_distance_mm")
    elif mm_per_px is not None:
        mm_per_iod = _positive(mm_per_px, "mm_per_px") * frame.eye_distance_px
    else:
        mm_per_iod = None
    hidden = _hidden_points(points, mask) if mask is not None else None

    lengths = _lengths_px(points, frame)
    values = {}
    for spec in MEASUREMENTS:
        px = lengths[spec.name]
        iod = px / frame.eye_distance_px
        observed = None if hidden is None else not any(hidden[i] for i in spec.points)
        values[spec.name] = Measurement(spec.name, spec.points, px, iod,
                                        None if mm_per_iod is None else iod * mm_per_iod, observed)

    pose = estimate_pose(points)
    warnings = []
    if abs(pose.yaw_deg) > MAX_YAW_DEG:
        warnings.append(
            f"head turned about {pose.yaw_deg:+.0f} degrees (yaw, more than {MAX_YAW_DEG:.0f}): "
            "left/right differences and midline deviations are biased in a 2D photo; "
            "use a face-on photo")
    if abs(pose.roll_deg) > MAX_ROLL_DEG:
        warnings.append(
            f"head tilted about {pose.roll_deg:+.0f} degrees in the image (roll, more than "
            f"{MAX_ROLL_DEG:.0f}): measured in the face's own axes, but a tilted head is often "
            "turned too and its landmarks are less accurate; use an upright face-on photo")
    if hidden is not None and any(hidden[i] for i in EYE_CORNERS):
        warnings.append(
            f"eye corners (points {', '.join(map(str, EYE_CORNERS))}) are inside the mask or "
            "outside the photo: the scale and the facial midline are not observed")
    return Measurements(values, pose, frame.eye_distance_px, mm_per_iod, tuple(warnings), points)


def _lengths_px(p: np.ndarray, frame: FacialFrame) -> dict[str, float]:
    """Every measurement of MEASUREMENTS in photo pixels (signed ones in the facial frame)."""

    def dist(i: int, j: int) -> float:
        return float(np.linalg.norm(p[i] - p[j]))

    corners = (p[48] + p[54]) / 2

    def height(i: int) -> float:  # above the mouth corners' mid-point along the face's vertical
        return float((p[i] - corners) @ frame.up)

    lip = p[list(OUTER_LIP)]  # [12, 2]
    partners = frame.mirror(p[[IBUG68_FLIP[i] for i in OUTER_LIP]])  # [12, 2]
    # Each point's distance from the symmetric lip (the mean of the lip and its mirror image).
    asymmetry = float(np.sqrt((((lip - partners) / 2) ** 2).sum(1).mean()))
    return {
        "mouth_width": dist(48, 54),
        "cupid_bow_peak_height_right": height(50),
        "cupid_bow_peak_height_left": height(52),
        "cupid_bow_peak_height_difference": height(50) - height(52),
        "upper_lip_height_right": dist(32, 50),
        "upper_lip_height_left": dist(34, 52),
        "upper_lip_height_difference": dist(32, 50) - dist(34, 52),
        "philtrum_length": dist(33, 51),
        "nostril_width_right": dist(31, 33),
        "nostril_width_left": dist(33, 35),
        "nostril_width_difference": dist(31, 33) - dist(33, 35),
        "cupid_bow_midline_deviation": frame.deviation(p[51]),
        "nose_tip_midline_deviation": frame.deviation(p[30]),
        "lip_asymmetry": asymmetry,
    }


@dataclass(frozen=True)
class Difference:
    """Predicted minus input for one measurement; mm is None unless both sides have a scale."""

    px: float
    iod: float
    mm: float | None


@dataclass(frozen=True, eq=False)
class Comparison:
    """The face as it is (input) against the predicted non-cleft face, measurement by
    measurement; differences are predicted minus input."""

    input: Measurements
    predicted: Measurements

    def difference(self, name: str) -> Difference:
        """Predicted minus input of one measurement."""
        a, b = self.input[name], self.predicted[name]
        return Difference(b.px - a.px, b.iod - a.iod,
                          None if a.mm is None or b.mm is None else b.mm - a.mm)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: both sets and the differences (with the input side's observed flags)."""
        difference = {}
        for name in MEASUREMENT_NAMES:
            diff = self.difference(name)
            difference[name] = {"px": _round(diff.px, 2), "iod": _round(diff.iod, 4),
                                "mm": _round_or_none(diff.mm, 2),
                                "input_observed": self.input[name].observed}
        return {"input": self.input.to_dict(), "predicted": self.predicted.to_dict(),
                "difference": difference}

    @staticmethod
    def field_names() -> list[str]:
        """CSV column names of `to_row`."""
        differences = [f"difference_{name}_{unit}" for name in MEASUREMENT_NAMES
                       for unit in ("iod", "mm")]
        return [*Measurements.field_names("input_"), *Measurements.field_names("predicted_"),
                *differences]

    def to_row(self) -> dict[str, float | str | None]:
        """One flat CSV row: input_*, predicted_* and difference_* columns."""
        row = {**self.input.to_row("input_"), **self.predicted.to_row("predicted_")}
        for name in MEASUREMENT_NAMES:
            diff = self.difference(name)
            row[f"difference_{name}_iod"] = _round(diff.iod, 4)
            row[f"difference_{name}_mm"] = _round_or_none(diff.mm, 2)
        return row


def compare(input_measurements: Measurements, predicted_measurements: Measurements) -> Comparison:
    """Set the detector's measurements on the input photo against the network's (predicted)."""
    return Comparison(input_measurements, predicted_measurements)


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (NUM_POINTS, 2):
        raise DataError(f"landmarks: expected {NUM_POINTS} (x, y) points [68, 2], "
                        f"got shape {list(points.shape)}")
    if not np.isfinite(points).all():
        raise DataError("landmarks: contain NaN or infinite coordinates")
    return points


def _hidden_points(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[68] True for each point inside `mask` [H, W] (at its nearest pixel) or outside it."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DataError(f"mask: expected one [H, W] plane, got shape {list(mask.shape)}")
    cols, rows = np.round(points).astype(np.int64).T  # [68] each
    inside = (cols >= 0) & (rows >= 0) & (cols < mask.shape[1]) & (rows < mask.shape[0])
    hidden = ~inside
    hidden[inside] = mask[rows[inside], cols[inside]] != 0
    return hidden


def _positive(value: float, name: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise DataError(f"{name} must be a positive number, got {value}")
    return float(value)


def _round(value: float, digits: int) -> float:
    return round(value, digits) + 0.0  # + 0.0: no "-0.0" in the JSON


def _round_or_none(value: float | None, digits: int) -> float | None:
    return None if value is None else _round(value, digits)


__all__ = [
    "MEASUREMENTS",
    "MEASUREMENT_NAMES",
    "Comparison",
    "Difference",
    "FacialFrame",
    "Measurement",
    "MeasurementSpec",
    "Measurements",
    "Pose",
    "compare",
    "estimate_pose",
    "facial_frame",
    "measure",
]
