"""What a prediction leaves on disk: the result PNG with its provenance, a before/after image of
the face region, a landmarks overlay, the measurements figure and a JSON record. Untrained weights
are announced on every image (the result too) and in the JSON, so a noise-filled output is never
mistaken for a prediction. Images are encoded by `inclg.io.images.encode_image` (no metadata)."""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
from PIL import Image, PngImagePlugin

import inclg
from inclg.data.preview import draw_face
from inclg.infer.pipeline import USER_MASK, PredictResult
from inclg.infer.quality import advice
from inclg.measurements import MEASUREMENTS, Comparison
from inclg.measurements_figure import measurement_figure

PANEL_HEIGHT = 512  # before/after panels, px
UNTRAINED_TEXT = "UNTRAINED MODEL - random weights - the masked region is NOISE, not a prediction"
OVERLAY_SIDE = 640  # longest side of the landmarks overlay, px
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def provenance(result: PredictResult) -> dict[str, str]:
    """The PNG text chunks of a result: which tool, model and mask made it. Nothing about the
    person or the photo (no name, date, camera or place)."""
    return {
        "Software": f"inclg {inclg.__version__}",
        "inclg:version": inclg.__version__,
        "inclg:model_id": result.model_id,
        "inclg:model_checksum": result.checksum,
        "inclg:trained": "true" if result.trained else "false",
        "inclg:mask_kind": result.mask_kind,
        "inclg:seed": str(result.seed),
        "Description": ("INCLG prediction: the masked region is generated, not a photograph"
                        if result.trained else UNTRAINED_TEXT),
    }


def result_png(result: PredictResult) -> bytes:
    """The result as a lossless PNG with `provenance` text chunks and no other metadata. An
    untrained model's result carries the red UNTRAINED banner across its top rows (the image keeps
    its size; the banner is the only change outside the mask)."""
    image = result.image
    if not result.trained:
        image = image.copy()
        h, w = image.shape[:2]
        height = min(h, max(16, round(w / 28)))
        image[:height] = _banner(w, "UNTRAINED MODEL - the masked region is NOISE", (200, 0, 0),
                                 height)
    info = PngImagePlugin.PngInfo()
    for key, value in provenance(result).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG", pnginfo=info, compress_level=1)
    return buffer.getvalue()


def _face_region(result: PredictResult, image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The crop box of `image`, resized so its longest side is `side`, and that scale."""
    x0, y0, x1, y1 = result.crop_box
    region = image[y0:y1, x0:x1]
    scale = side / max(region.shape[:2])
    size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(region, size, interpolation=interpolation), scale


def _banner(width: int, text: str, colour: tuple[int, int, int], height: int = 30) -> np.ndarray:
    """A strip of `colour` with white text, fitted to `width`."""
    strip = np.zeros((height, width, 3), np.uint8)
    strip[:] = colour
    scale = min(0.6, 0.6 * height / 30)
    while scale > 0.3 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > width - 12:
        scale -= 0.05
    baseline = round(height / 2 + cv2.getTextSize(text, _FONT, scale, 1)[0][1] / 2)
    cv2.putText(strip, text, (6, baseline), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def _with_banners(image: np.ndarray, result: PredictResult, title: str) -> np.ndarray:
    strips = [_banner(image.shape[1], title, (40, 40, 40))]
    if not result.trained:
        strips.append(_banner(image.shape[1], UNTRAINED_TEXT, (200, 0, 0), 34))
    return np.concatenate([*strips, image], axis=0)


def before_after(result: PredictResult) -> np.ndarray:
    """The face region before and after, side by side, under a title (and the UNTRAINED banner)."""
    before, _ = _face_region(result, result.photo.pixels, PANEL_HEIGHT)
    after, _ = _face_region(result, result.image, PANEL_HEIGHT)
    gap = np.full((before.shape[0], 4, 3), 255, np.uint8)
    pair = np.concatenate([before, gap, after], axis=1)
    return _with_banners(pair, result, f"before | after    model {result.model_id}")


def landmarks_overlay(result: PredictResult) -> np.ndarray:
    """The face region of the result with the mask's outline (red; the feathered edge yellow),
    the detector's landmarks (white rings) and the network's (dots coloured per region)."""
    canvas, scale = _face_region(result, result.image, OVERLAY_SIDE)
    x0, y0 = result.crop_box[:2]
    h, w = canvas.shape[:2]

    def outline(mask: np.ndarray, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
        full = np.zeros((result.crop_box[3] - y0, result.crop_box[2] - x0), np.uint8)
        ox, oy = origin[0] - x0, origin[1] - y0
        full[oy:oy + mask.shape[0], ox:ox + mask.shape[1]] = mask
        small = cv2.resize(full, (w, h), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, colour, 1, cv2.LINE_AA)

    def to_canvas(points: np.ndarray) -> np.ndarray:
        return (points - np.array([x0, y0]) + 0.5) * scale - 0.5

    region = result.details.region
    outline((region.alpha > 0).astype(np.uint8), region.window[:2], (255, 255, 0))
    outline(region.mask.astype(np.uint8), region.window[:2], (255, 0, 0))
    for x, y in to_canvas(result.face.landmarks).tolist():
        cv2.circle(canvas, (round(x), round(y)), 4, (255, 255, 255), 1, cv2.LINE_AA)
    canvas = draw_face(canvas, to_canvas(result.landmarks))
    legend = "dots: network landmarks   rings: detector   red: mask   yellow: feathered edge"
    return _with_banners(canvas, result, legend)


def _points(points: np.ndarray) -> list[list[float]]:
    return np.round(np.asarray(points, np.float64), 2).tolist()


def _fit(result: PredictResult) -> dict[str, Any]:
    doc = result.fit.to_json()
    if not result.fit.plausible:
        doc["advice"] = advice(result.fit, automatic=result.mask_kind != USER_MASK)
    return doc


def result_record(result: PredictResult, outputs: dict[str, str],
                  extra: dict[str, Any] | None = None,
                  measurements: Comparison | None = None) -> dict[str, Any]:
    """The JSON record of one prediction: landmarks in photo pixels, mask, face, model, timings,
    and (given) the `measurements` of the face as it is against the predicted face.

    `landmarks` are the network's 68 (x, y) points in the upright photo (clamped to it);
    `detected_landmarks` are the detector's, which placed the crop.
    """
    face, details = result.face, result.details
    alignment = details.crop.alignment
    h, w = result.image.shape[:2]
    record: dict[str, Any] = {
        "inclg_version": inclg.__version__,
        "photo": result.photo.name,
        "size": [w, h],
        "input_notes": list(result.photo.notes),
        "trained": result.trained,
        "warning": result.warning,
        "model": {"id": result.model_id, "checksum": result.checksum, "trained": result.trained},
        "seed": result.seed,
        "landmarks": _points(result.landmarks),
        "landmarks_outside_photo": details.landmarks_outside,
        "detected_landmarks": _points(face.landmarks),
        "face": {
            "index": details.face_index,
            "faces_found": len(details.faces),
            "box": [round(v, 1) for v in face.box],
            "score": round(face.score, 4),
            "method": face.method,
        },
        "crop_box": list(result.crop_box),
        "alignment": {
            "matrix": np.round(alignment.matrix, 6).tolist(),
            "scale": round(alignment.scale, 4),
            "outside": round(alignment.outside, 4),
            "residual": round(alignment.residual, 4),
        },
        "mask": {"kind": result.mask_kind, "source": details.mask_source, **details.mask_stats},
        "fit": _fit(result),
        "changed_box": list(details.region.window),
        "measurements": None if measurements is None else measurements.to_dict(),
        "timings_s": dict(result.timings),
        "outputs": outputs,
    }
    if extra:
        record.update(extra)
    return record


def measurements_image(result: PredictResult, measurements: Comparison) -> np.ndarray:
    """The measurements figure (`inclg.measurements_figure`): the face as it is and the predicted
    face with every distance drawn and numbered, the table underneath; under the UNTRAINED banner
    when the model is not trained."""
    figure = measurement_figure(result.photo.pixels, measurements.input,
                                predicted=measurements.predicted, predicted_image=result.image)
    return _with_banners(figure, result, f"measurements    model {result.model_id}")


def measurement_rows(measurements: Comparison) -> list[list[str]]:
    """The measurements as table rows for a screen (the app): number, measurement, as it is,
    predicted, difference (predicted minus as it is), in mm when a scale was given, else in eye
    distances (iod); `*` marks a value whose points lie inside the mask, not observed."""
    before, after = measurements.input, measurements.predicted
    mm = before.mm_per_iod is not None

    def number(value: float | None, signed: bool) -> str:
        if value is None:
            return "-"
        digits = 1 if mm else 3
        value = round(value, digits) + 0.0
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"

    rows = []
    for index, spec in enumerate(MEASUREMENTS, 1):
        a, b = before[spec.name], after[spec.name]
        diff = measurements.difference(spec.name)
        rows.append([str(index), spec.name.replace("_", " "),
                     number(a.mm if mm else a.iod, spec.signed) + ("*" if a.observed is False
                                                                   else ""),
                     number(b.mm if mm else b.iod, spec.signed),
                     number(diff.mm if mm else diff.iod, True)])
    return rows
