"""Measurements from landmarks: units, scale, points, mirror symmetry, pose, mask flags, output."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

import inclg
from inclg.data import DataError
from inclg.data.align import template
from inclg.data.landmarks import flip_landmarks
from inclg.measurements import (
    MEASUREMENT_NAMES,
    MEASUREMENTS,
    Measurements,
    compare,
    estimate_pose,
    measure,
)
from inclg.measurements_figure import measurement_figure

ROOT = Path(__file__).resolve().parents[1]
SIZE = 256
# (right, left) pairs that a mirror image swaps, and the signed values it negates.
PAIRS = [("cupid_bow_peak_height_right", "cupid_bow_peak_height_left"),
         ("upper_lip_height_right", "upper_lip_height_left"),
         ("nostril_width_right", "nostril_width_left")]
SIGNED = [spec.name for spec in MEASUREMENTS if spec.signed]
CENTRAL = ["mouth_width", "philtrum_length", "lip_asymmetry"]


def asymmetric_face(seed: int = 0) -> np.ndarray:
    """The template with noise and a cleft-like distortion on the subject's left."""
    points = template(SIZE) + np.random.default_rng(seed).normal(0, 1.0, (68, 2))
    points[52] += (3.0, -6.0)  # left Cupid's bow peak pulled up and out
    points[35] += (5.0, 0.0)  # left nostril widened
    points[30] += (-3.0, 0.0)  # nose tip towards the subject's right
    return points


def rotate(points: np.ndarray, degrees: float, scale: float = 1.0,
           shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Points turned `degrees` anticlockwise as displayed (OpenCV's convention), scaled, moved."""
    matrix = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), degrees, scale)
    return points @ matrix[:, :2].T + matrix[:, 2] + shift


def yawed(points: np.ndarray, degrees: float) -> np.ndarray:
    """The template as a vertical cylinder (nose in front) turned towards the subject's left."""
    x = points[:, 0] - (SIZE - 1) / 2
    depth = np.sqrt(np.clip(95.0**2 - x**2, 0, None))
    depth[27:36] += (5, 10, 15, 25, 12, 15, 18, 15, 12)  # the nose stands out
    angle = math.radians(degrees)
    turned = points.copy()
    turned[:, 0] = x * math.cos(angle) + depth * math.sin(angle) + (SIZE - 1) / 2
    return turned


def values(m: Measurements, unit: str = "iod") -> dict[str, float]:
    return {name: getattr(m[name], unit) for name in MEASUREMENT_NAMES}


def test_symmetric_template_has_no_asymmetry() -> None:
    m = measure(template(SIZE))
    for name in SIGNED:
        assert abs(m[name].iod) < 1e-9, name
    assert m["lip_asymmetry"].iod < 1e-9
    for right, left in PAIRS:
        assert m[right].iod == pytest.approx(m[left].iod, abs=1e-9)
    assert abs(m.pose.yaw_deg) < 1e-6 and abs(m.pose.roll_deg) < 1e-6
    assert m.warnings == ()


def test_units_are_the_outer_eye_corner_distance() -> None:
    points = asymmetric_face()
    m = measure(points)
    iod = np.linalg.norm(points[45] - points[36])
    assert m.eye_distance_px == pytest.approx(iod)
    assert m["mouth_width"].px == pytest.approx(np.linalg.norm(points[54] - points[48]))
    assert m["mouth_width"].iod == pytest.approx(m["mouth_width"].px / iod)
    assert m["philtrum_length"].px == pytest.approx(np.linalg.norm(points[51] - points[33]))
    assert m["upper_lip_height_left"].px == pytest.approx(np.linalg.norm(points[52] - points[34]))
    assert m["nostril_width_left"].px == pytest.approx(np.linalg.norm(points[35] - points[33]))
    assert m["nostril_width_difference"].iod == pytest.approx(
        m["nostril_width_right"].iod - m["nostril_width_left"].iod)
    # The pulled-up left peak and the widened left nostril read as such.
    assert m["cupid_bow_peak_height_difference"].iod < -0.03
    assert m["nostril_width_difference"].iod < -0.02
    assert m["nose_tip_midline_deviation"].iod < -0.02  # towards the subject's right
    assert all(v.mm is None and v.observed is None for v in m.values.values())


def test_iod_values_ignore_photo_scale_rotation_and_position() -> None:
    points = asymmetric_face()
    base = measure(points)
    moved = measure(rotate(points, 20.0, scale=3.5, shift=(400.0, -50.0)))
    for name in MEASUREMENT_NAMES:
        assert moved[name].iod == pytest.approx(base[name].iod, abs=1e-9), name
        assert moved[name].px == pytest.approx(base[name].px * 3.5, abs=1e-6), name


def test_millimetres_from_either_scale() -> None:
    points = asymmetric_face()
    by_eyes = measure(points, eye_distance_mm=92.0)
    by_ruler = measure(points, mm_per_px=0.25)
    for name in MEASUREMENT_NAMES:
        assert by_eyes[name].mm == pytest.approx(by_eyes[name].iod * 92.0)
        assert by_ruler[name].mm == pytest.approx(by_ruler[name].px * 0.25)
    assert by_eyes.mm_per_iod == 92.0
    assert by_ruler.mm_per_iod == pytest.approx(0.25 * by_ruler.eye_distance_px)
    with pytest.raises(DataError, match="not both"):
        measure(points, eye_distance_mm=90.0, mm_per_px=0.2)
    for bad in (0.0, -3.0, math.nan):
        with pytest.raises(DataError, match="positive"):
            measure(points, eye_distance_mm=bad)


def test_every_measurement_names_its_points() -> None:
    assert len(set(MEASUREMENT_NAMES)) == len(MEASUREMENTS)
    m = measure(template(SIZE))
    assert list(m.values) == list(MEASUREMENT_NAMES)
    doc = (ROOT / "docs" / "MEASUREMENTS.md").read_text(encoding="utf-8")
    for spec in MEASUREMENTS:
        assert spec.points and all(0 <= i < 68 for i in spec.points), spec.name
        assert m[spec.name].points == spec.points
        assert m.to_dict()["values"][spec.name]["points"] == list(spec.points)
        assert f"`{spec.name}`" in doc, f"docs/MEASUREMENTS.md does not define {spec.name}"


def test_mirrored_face_swaps_sides_and_flips_signs() -> None:
    points = asymmetric_face()
    m = measure(points)
    mirrored = measure(flip_landmarks(points, SIZE))
    for right, left in PAIRS:
        assert mirrored[right].iod == pytest.approx(m[left].iod, abs=1e-5)
        assert mirrored[left].iod == pytest.approx(m[right].iod, abs=1e-5)
    for name in SIGNED:
        assert mirrored[name].iod == pytest.approx(-m[name].iod, abs=1e-5), name
    for name in CENTRAL:
        assert mirrored[name].iod == pytest.approx(m[name].iod, abs=1e-5), name
    assert mirrored.pose.yaw_deg == pytest.approx(-m.pose.yaw_deg, abs=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_face_averaged_with_its_mirror_has_no_asymmetry(seed: int) -> None:
    points = asymmetric_face(seed)
    symmetric = (points + flip_landmarks(points, SIZE)) / 2
    m = measure(rotate(symmetric, 12.0))  # symmetric about its own midline, not the image's
    for name in SIGNED:
        assert abs(m[name].iod) < 1e-5, name
    assert m["lip_asymmetry"].iod < 1e-5
    assert measure(points)["lip_asymmetry"].iod > 0.01


def test_roll_is_the_eye_line_angle_and_warns_when_large() -> None:
    assert measure(rotate(template(SIZE), -5.0)).warnings == ()
    m = measure(rotate(template(SIZE), -30.0))  # clockwise as displayed
    assert m.pose.roll_deg == pytest.approx(30.0, abs=1e-6)
    assert any("tilted" in w for w in m.warnings)
    assert estimate_pose(rotate(template(SIZE), 30.0)).roll_deg == pytest.approx(-30.0, abs=1e-6)


def test_turned_face_warns() -> None:
    assert abs(estimate_pose(yawed(template(SIZE), 0.0)).yaw_deg) < 1e-6
    assert 0 < estimate_pose(yawed(template(SIZE), 10.0)).yaw_deg
    m = measure(yawed(template(SIZE), 40.0))
    assert m.pose.yaw_deg > 15.0  # towards the subject's left is positive
    assert any("turned" in w for w in m.warnings)
    assert measure(yawed(template(SIZE), -40.0)).pose.yaw_deg < -15.0


def test_mask_flags_measurements_with_unseen_points() -> None:
    points = template(SIZE)
    mask = np.zeros((SIZE, SIZE), bool)
    (x0, y0), (x1, y1) = np.round(points[48:60].min(0)), np.round(points[48:60].max(0))
    mask[int(y0) - 2: int(y1) + 3, int(x0) - 2: int(x1) + 3] = True
    m = measure(points, mask=mask)
    unseen = {name for name, v in m.values.items() if v.observed is False}
    assert unseen == {spec.name for spec in MEASUREMENTS if set(spec.points) & set(range(48, 60))}
    assert m["nostril_width_left"].observed is True
    assert m["nose_tip_midline_deviation"].observed is True
    assert m.warnings == ()
    assert m.to_row()["not_observed"].split("; ") == [n for n in MEASUREMENT_NAMES if n in unseen]

    eyes = np.zeros((SIZE, SIZE), np.uint8)
    eyes[60:90, :] = 255
    assert any("eye corners" in w for w in measure(points, mask=eyes).warnings)
    small = np.zeros((140, SIZE), bool)  # the mouth lies below this photo
    assert measure(points, mask=small)["mouth_width"].observed is False
    assert measure(points, mask=small)["nostril_width_right"].observed is True


def test_bad_landmarks_raise() -> None:
    with pytest.raises(DataError, match="68"):
        measure(np.zeros((5, 2)))
    nan = template(SIZE)
    nan[3, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        measure(nan)
    with pytest.raises(DataError, match="coincide"):
        measure(np.zeros((68, 2)))


def test_compare_json_and_csv_row() -> None:
    before = measure(asymmetric_face(), eye_distance_mm=90.0, mask=np.zeros((SIZE, SIZE), bool))
    after = measure(template(SIZE), eye_distance_mm=90.0)
    c = compare(before, after)
    for name in MEASUREMENT_NAMES:
        assert c.difference(name).iod == pytest.approx(after[name].iod - before[name].iod)
        assert c.difference(name).mm == pytest.approx(after[name].mm - before[name].mm)
    data = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert set(data) == {"input", "predicted", "difference"}
    assert set(data["difference"]) == set(MEASUREMENT_NAMES)
    assert data["input"]["values"]["mouth_width"]["observed"] is True
    assert data["predicted"]["values"]["mouth_width"]["observed"] is None
    row = c.to_row()
    assert list(row) == c.field_names()
    assert row["difference_nostril_width_difference_mm"] == pytest.approx(
        after["nostril_width_difference"].mm - before["nostril_width_difference"].mm, abs=0.01)
    # The columns do not depend on whether a scale was given; a missing mm is empty.
    unscaled = measure(template(SIZE)).to_row()
    assert list(unscaled) == Measurements.field_names()
    assert unscaled["mouth_width_mm"] is None
    assert compare(measure(template(SIZE)), after).difference("mouth_width").mm is None


def test_figure_is_an_rgb_image() -> None:
    photo = np.full((300, 240, 3), 128, np.uint8)
    points = template(SIZE) * 0.8 + (10.0, 30.0)
    m = measure(points, eye_distance_mm=90.0)
    copy = photo.copy()
    single = measurement_figure(photo, m, panel=256)
    assert single.dtype == np.uint8 and single.ndim == 3 and single.shape[2] == 3
    assert single.shape[1] == 256 and single.shape[0] > 256
    assert np.array_equal(photo, copy)
    turned = measure(rotate(points, 40.0))
    both = measurement_figure(photo, turned, predicted=m, predicted_image=photo[..., ::-1])
    assert both.dtype == np.uint8 and both.shape[1] == 1024 and both.shape[0] > 512
    calm = measurement_figure(photo, m, predicted=m)
    assert calm.shape[1] == 1024 and both.shape[0] > calm.shape[0]  # the tilt warning adds lines


def test_package_export_and_numpy_only_module() -> None:
    assert inclg.measure is measure
    source = (ROOT / "src" / "inclg" / "measurements.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= {"__future__", "math", "dataclasses", "numpy", "inclg.data",
                        "inclg.data.landmarks"}, imported
