"""The measurements drawn on the face: what `NAME.measurements.png` shows.

One panel per face (the photo as it is, and beside it the prediction when given), cropped to the
face and scaled to a fixed size so labels are readable on any photo; every drawn distance carries
the number of its row in the table underneath, which lists the values (mm when a scale was given,
else iod), the differences, and the warnings.
"""

from __future__ import annotations

import cv2
import numpy as np

from inclg.measurements import MEASUREMENTS, Comparison, FacialFrame, Measurements, compare

# Subject's right, subject's left, central measurements, frame lines (RGB).
RIGHT = (255, 140, 0)
LEFT = (0, 170, 255)
CENTRE = (255, 225, 0)
FRAME = (255, 255, 255)
MIRROR = (200, 200, 200)
WARN = (255, 90, 90)

ROWS = {spec.name: number for number, spec in enumerate(MEASUREMENTS, 1)}
SIGNED = {spec.name: spec.signed for spec in MEASUREMENTS}
SHOWN = tuple(range(27, 68))  # eyes, nose and mouth: what the panel is cropped to
FONT = cv2.FONT_HERSHEY_SIMPLEX


def measurement_figure(
    image: np.ndarray,
    measurements: Measurements,
    *,
    predicted: Measurements | None = None,
    predicted_image: np.ndarray | None = None,
    panel: int = 512,
) -> np.ndarray:
    """The figure as an RGB uint8 array [H, W, 3]: `image` (RGB uint8 [H, W, 3], the photo the
    landmarks are in) with the distances drawn and numbered, a second panel for `predicted`
    (on `predicted_image`, default `image`) when given, and the table of values below."""
    points = [measurements.landmarks[list(SHOWN)]]
    if predicted is not None:
        points.append(predicted.landmarks[list(SHOWN)])
    crop = _crop_matrix(np.concatenate(points), panel)
    panels = [_panel(image, measurements, crop, panel, None if predicted is None else "as it is")]
    if predicted is not None:
        other = image if predicted_image is None else predicted_image
        panels.append(_panel(other, predicted, crop, panel, "predicted"))
    top = np.concatenate(panels, axis=1)
    if predicted is None:
        table = _table_single(measurements, top.shape[1])
    else:
        table = _table_comparison(compare(measurements, predicted), top.shape[1])
    return np.ascontiguousarray(np.concatenate([top, table], axis=0))


def _crop_matrix(points: np.ndarray, panel: int) -> np.ndarray:
    """[2, 3] affine taking photo pixels to a square panel around the face with a margin."""
    low, high = points.min(0), points.max(0)
    centre = (low + high) / 2
    side = max(float((high - low).max()) * 1.4, 1.0)
    scale = panel / side
    return np.array([[scale, 0.0, panel / 2 - scale * centre[0]],
                     [0.0, scale, panel / 2 - scale * centre[1]]])


def _panel(image: np.ndarray, m: Measurements, crop: np.ndarray, panel: int,
           title: str | None) -> np.ndarray:
    canvas = cv2.warpAffine(np.ascontiguousarray(image, dtype=np.uint8), crop, (panel, panel),
                            flags=cv2.INTER_AREA if crop[0, 0] < 1 else cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    canvas = (canvas.astype(np.float32) * 0.75).astype(np.uint8)  # darker: the lines stand out
    p = m.landmarks @ crop[:, :2].T + crop[:, 2]  # [68, 2] panel pixels
    frame = _panel_frame(m.frame, crop)
    thick = max(1, panel // 256)

    # The frame: eye line (1 iod) and the facial midline across the whole panel.
    _line(canvas, p[36], p[45], FRAME, 1)
    _line(canvas, frame.origin - frame.up * panel * 2, frame.origin + frame.up * panel * 2,
          FRAME, 1)
    # The lip's mirror image about the midline: where a symmetric lip would lie.
    mirrored = frame.mirror(p[48:60])
    cv2.polylines(canvas, [np.round(mirrored).astype(np.int32)], True, MIRROR, 1, cv2.LINE_AA)

    corners = (p[48] + p[54]) / 2

    def foot_on_corners(i: int) -> np.ndarray:  # peak projected onto the mouth-corner level
        return p[i] - ((p[i] - corners) @ frame.up) * frame.up

    segments = {
        "mouth_width": (p[48], p[54], CENTRE),
        "cupid_bow_peak_height_right": (p[50], foot_on_corners(50), RIGHT),
        "cupid_bow_peak_height_left": (p[52], foot_on_corners(52), LEFT),
        "upper_lip_height_right": (p[32], p[50], RIGHT),
        "upper_lip_height_left": (p[34], p[52], LEFT),
        "philtrum_length": (p[33], p[51], CENTRE),
        "nostril_width_right": (p[31], p[33], RIGHT),
        "nostril_width_left": (p[33], p[35], LEFT),
        "cupid_bow_midline_deviation": (p[51], frame.mirror(p[51:52])[0] / 2 + p[51] / 2, CENTRE),
        "nose_tip_midline_deviation": (p[30], frame.mirror(p[30:31])[0] / 2 + p[30] / 2, CENTRE),
    }
    for name, (a, b, colour) in segments.items():
        _line(canvas, a, b, colour, thick)
        _label(canvas, str(ROWS[name]), (a + b) / 2, colour)
    for i in (30, 31, 32, 33, 34, 35, 48, 50, 51, 52, 54):
        cv2.circle(canvas, _pixel(p[i]), thick + 1, FRAME, -1, cv2.LINE_AA)
    if title:
        cv2.putText(canvas, title, (8, 24), FONT, 0.7, FRAME, 2, cv2.LINE_AA)
    return canvas


def _panel_frame(frame: FacialFrame, crop: np.ndarray) -> FacialFrame:
    """The facial frame carried into panel pixels (the crop only scales and shifts)."""
    scale = float(crop[0, 0])
    origin = frame.origin @ crop[:, :2].T + crop[:, 2]
    return FacialFrame(origin, frame.across, frame.up, frame.eye_distance_px * scale)


def _table_single(m: Measurements, width: int) -> np.ndarray:
    unit = "mm" if m.mm_per_iod is not None else "iod"
    rows = [[str(ROWS[spec.name]), _name(spec.name), _value(m, spec.name)]
            for spec in MEASUREMENTS]
    notes = [(f"* = point inside the mask, not observed. Pose: yaw {m.pose.yaw_deg:+.0f} deg, "
              f"roll {m.pose.roll_deg:+.0f} deg", FRAME)]
    notes += [(f"! {w}", WARN) for w in m.warnings]
    return _table(["", "measurement", unit], rows, notes, width)


def _table_comparison(c: Comparison, width: int) -> np.ndarray:
    mm = c.input.mm_per_iod is not None and c.predicted.mm_per_iod is not None
    rows = [[str(ROWS[spec.name]), _name(spec.name), _value(c.input, spec.name, mm),
             _value(c.predicted, spec.name, mm),
             _number(_difference(c, spec.name, mm), mm, signed=True) + " "]
            for spec in MEASUREMENTS]
    notes = [("* = point inside the mask on the input, not observed there. Pose: yaw "
              f"{c.input.pose.yaw_deg:+.0f} deg, roll {c.input.pose.roll_deg:+.0f} deg", FRAME)]
    notes += [(f"! {w}", WARN) for w in dict.fromkeys([*c.input.warnings, *c.predicted.warnings])]
    unit = "mm" if mm else "iod"
    return _table(["", "measurement", f"as it is ({unit})", "predicted", "difference"], rows,
                  notes, width)


def _difference(c: Comparison, name: str, mm: bool) -> float | None:
    diff = c.difference(name)
    return diff.mm if mm else diff.iod


def _name(name: str) -> str:
    return name.replace("cupid_bow", "Cupid's bow").replace("_", " ")


def _value(m: Measurements, name: str, mm: bool | None = None) -> str:
    use_mm = m.mm_per_iod is not None if mm is None else mm
    value = m[name]
    text = _number(value.mm if use_mm else value.iod, use_mm, signed=SIGNED[name])
    return text + ("*" if value.observed is False else " ")


def _number(value: float | None, mm: bool, signed: bool) -> str:
    if value is None:
        return "-"
    digits = 1 if mm else 3
    value = round(value, digits) + 0.0  # no "-0.000"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


TEXT_SCALE, TEXT_STEP = 0.45, 20


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, FONT, TEXT_SCALE, 1)[0][0]


def _table(header: list[str], rows: list[list[str]],
           notes: list[tuple[str, tuple[int, int, int]]], width: int) -> np.ndarray:
    """A table on black: the row number and name left-aligned, the values right-aligned in
    columns, then `notes` wrapped to `width` pixels."""
    columns = list(zip(header, *rows, strict=True))
    widths = [max(_text_width(cell) for cell in column) for column in columns]
    edges, x = [], 8  # each column's left edge
    for w in widths:
        edges.append(x)
        x += w + 24
    wrapped = []
    for text, colour in notes:
        line = ""
        for word in text.split(" "):
            if line and _text_width(f"{line} {word}") > width - 16:
                wrapped.append((line, colour))
                line = word
            else:
                line = f"{line} {word}" if line else word
        wrapped.append((line, colour))
    block = np.zeros((TEXT_STEP * (1 + len(rows) + len(wrapped)) + 12, width, 3), np.uint8)
    for r, row in enumerate([header, *rows]):
        for c, cell in enumerate(row):
            left = edges[c] if c < 2 else edges[c] + widths[c] - _text_width(cell)
            cv2.putText(block, cell, (left, TEXT_STEP * (r + 1)), FONT, TEXT_SCALE, FRAME, 1,
                        cv2.LINE_AA)
    for r, (text, colour) in enumerate(wrapped, len(rows) + 2):
        cv2.putText(block, text, (8, TEXT_STEP * r), FONT, TEXT_SCALE, colour, 1, cv2.LINE_AA)
    return block


def _pixel(point: np.ndarray) -> tuple[int, int]:
    return int(round(float(point[0]))), int(round(float(point[1])))


def _line(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, colour: tuple[int, int, int],
          thickness: int) -> None:
    cv2.line(canvas, _pixel(a), _pixel(b), colour, thickness, cv2.LINE_AA)


def _label(canvas: np.ndarray, text: str, at: np.ndarray, colour: tuple[int, int, int]) -> None:
    x, y = _pixel(at)
    cv2.putText(canvas, text, (x + 3, y - 3), FONT, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, (x + 3, y - 3), FONT, 0.45, colour, 1, cv2.LINE_AA)


__all__ = ["measurement_figure"]
