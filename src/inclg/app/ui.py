"""A local Gradio page over `Predictor`: photo -> mask (brush, or drawn from the landmarks and
then adjusted) -> before/after slider, landmarks, the lip and nose measurements of the face as it
is and of the predicted face, and the result PNG + JSON to download.

A mask button draws its `MaskKind` and warns when the landmark fit looks implausible; a mask left
as the button drew it is predicted as that kind (the JSON and the PNG's provenance name it), an
adjusted one as a painted mask.

Privacy: the server binds to 127.0.0.1 only, with share links, analytics, the version check,
server-side rendering and the MCP server off, and the theme uses the browser's own fonts, so the
page makes no request beyond 127.0.0.1 (the browser test checks this). Gradio is imported on first
use with huggingface_hub offline and without telemetry (`_gradio`). Photos stay on this machine;
results are written to a private temporary folder per prediction.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inclg.data.kinds import MaskKind
from inclg.errors import DataError, MissingExtraError
from inclg.infer.pipeline import Predictor, PredictResult
from inclg.infer.quality import advice
from inclg.infer.report import landmarks_overlay, measurement_rows, result_png, result_record
from inclg.io.files import atomic_write_bytes, atomic_write_text
from inclg.io.images import painted, read_photo

if TYPE_CHECKING:
    import gradio as gr

HOST = "127.0.0.1"
MASK_BUTTONS: dict[str, MaskKind] = {  # button label -> the mask it draws
    "lip": MaskKind.LIP,
    "cleft: subject's left": MaskKind.CLEFT_LEFT,
    "cleft: subject's right": MaskKind.CLEFT_RIGHT,
    "cleft: bilateral": MaskKind.CLEFT_BILATERAL,
    "nose": MaskKind.NOSE,
}
MASK_RGBA = (255, 0, 0, 150)  # how a drawn mask looks on the photo: translucent red
TABLE_HEADERS = ["#", "measurement", "as it is", "predicted", "difference"]
UNTRAINED_HTML = ("<div id='untrained' style='background:#c80000;color:white;padding:8px 12px;"
                  "border-radius:6px;font-weight:bold'>{}</div>")
# Read by Gradio and huggingface_hub when they are imported (an explicit user setting wins).
GRADIO_ENVIRONMENT = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                      "HF_HUB_DISABLE_TELEMETRY": "1"}


def require_gradio() -> None:
    """Raise `MissingExtraError` with the pip command when Gradio is not installed."""
    if importlib.util.find_spec("gradio") is None:
        raise MissingExtraError("the app needs Gradio: pip install 'inclg[app]'")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` set in os.environ inside the block (unless already set), restored after it."""
    added = {key: value for key, value in values.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _gradio() -> Any:
    """The gradio module, imported with `GRADIO_ENVIRONMENT` set for the import only: Gradio and
    huggingface_hub read those variables when imported, and the page turns analytics off itself
    (`analytics_enabled=False`), so nothing else in the process sees a changed environment."""
    require_gradio()
    with _environment(GRADIO_ENVIRONMENT):
        import gradio

    return gradio


def _editor_value(pixels: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Any]:
    """The editor's value: the photo as background and, if given, `mask` as one paint layer."""
    h, w = pixels.shape[:2]
    layer = np.zeros((h, w, 4), np.uint8)
    if mask is not None:
        layer[mask] = MASK_RGBA
    alpha = layer[..., 3:] / 255.0
    composite = (pixels * (1 - alpha) + layer[..., :3] * alpha).astype(np.uint8)
    return {"background": pixels, "layers": [layer], "composite": composite}


def painted_mask(value: dict[str, Any] | None, shape: tuple[int, int]) -> np.ndarray:
    """[H, W] uint8 mask (255 = region) from every paint layer of the editor's value, at the
    photo's size `shape` (`inclg.io.images.painted`)."""
    layers = (value or {}).get("layers") or []
    return painted(layers, shape).astype(np.uint8) * 255


def measurement_notes(result: PredictResult, rows: list[list[str]], mm: bool) -> str:
    """Markdown under the measurement table: the unit, what `*` means, the pose warnings."""
    unit = "millimetres" if mm else "eye distances (outer eye corners = 1)"
    lines = [f"In {unit}; left and right are the subject's; differences are predicted minus as "
             "it is."]
    if any(row[2].endswith("*") for row in rows):
        lines.append("`*` not observed: its points lie inside the mask on the photo.")
    if not result.trained:
        lines.append("**The model is untrained: the predicted values are noise.**")
    return "  \n".join(lines)


def build(predictor: Predictor) -> gr.Blocks:
    """The page for one loaded predictor (model, detector and back-end chosen by the caller)."""
    gr = _gradio()
    warning = predictor.model.warning
    brush = gr.Brush(colors=[("#ff0000", 0.6)], default_color=("#ff0000", 0.6),
                     color_mode="fixed")

    def load_photo(path: str | None) -> tuple[Any, Any, Any]:
        if not path:
            return None, None, None
        try:
            pixels = read_photo(path).pixels  # upright (EXIF applied), RGB uint8
        except DataError as err:
            raise gr.Error(str(err)) from None
        return _editor_value(pixels), path, None

    def auto_mask(kind: MaskKind, path: str | None) -> tuple[dict[str, Any], Any]:
        if not path:
            raise gr.Error("Upload a face photo first.")
        try:
            photo = read_photo(path)
            mask, fit = predictor.propose_mask(photo, kind, face=0)
        except DataError as err:
            raise gr.Error(str(err)) from None
        if not fit.plausible:
            gr.Warning(_sentence(advice(fit, automatic=True)).replace(
                "(--mask, or paint it in the app)", "with the brush"))
        return _editor_value(photo.pixels, mask), (kind.value, mask)

    def predict(path: str | None, editor: dict[str, Any] | None, drawn: Any,
                show_landmarks: bool, eye_distance_mm: float | None) -> tuple[Any, ...]:
        if not path:
            raise gr.Error("Upload a face photo first.")
        try:
            photo = read_photo(path)
            mask = painted_mask(editor, photo.pixels.shape[:2])
            if not mask.any():
                raise gr.Error("Paint the region to predict, or press one of the mask buttons.")
            if drawn is not None and np.array_equal(mask > 0, drawn[1]):  # as the button drew it
                result = predictor(photo, auto_mask=drawn[0], face=0)
            else:
                result = predictor(photo, mask, face=0, mask_name="the painted mask")
            measurements = result.measurements(eye_distance_mm=eye_distance_mm or None)
        except DataError as err:
            raise gr.Error(str(err)) from None
        if result.warning:
            gr.Warning(result.warning)
        if not result.fit.plausible:
            gr.Warning(_sentence(advice(result.fit, automatic=drawn is not None)))
        for text in measurements.input.warnings:
            gr.Warning(_sentence(f"measurements: {text}"))
        out = Path(tempfile.mkdtemp(prefix="inclg-app-"))
        stem = f"{Path(photo.name).stem or 'photo'}.{result.mask_kind}"
        png = out / f"{stem}.result.png"
        atomic_write_bytes(png, result_png(result))
        record = result_record(result, {"result": png.name}, {"backend": predictor.backend},
                               measurements)
        record_path = out / f"{stem}.json"
        atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")
        overlay = landmarks_overlay(result) if show_landmarks else None
        rows = measurement_rows(measurements)
        notes = measurement_notes(result, rows, measurements.input.mm_per_iod is not None)
        return ((photo.pixels, result.image), gr.update(value=overlay, visible=show_landmarks),
                rows, notes, str(png), str(record_path))

    with gr.Blocks(title="INCLG", analytics_enabled=False) as demo:
        gr.Markdown("## INCLG: predict a non-cleft lip\nUpload a face photo, paint the region "
                    "to predict (or press a mask button and adjust it), then press Predict.")
        if warning:
            gr.HTML(UNTRAINED_HTML.format(warning))
        path = gr.State(None)
        drawn = gr.State(None)  # (kind, mask) of the last mask button, to know an untouched one
        with gr.Row():
            with gr.Column():
                upload = gr.Image(type="filepath", label="Photo", sources=["upload"],
                                  elem_id="photo")
                with gr.Row():
                    buttons = {label: gr.Button(label, elem_id=f"mask-{kind}", size="sm")
                               for label, kind in MASK_BUTTONS.items()}
                editor = gr.ImageEditor(label="Region to predict (paint in red)", type="numpy",
                                        image_mode="RGBA", sources=[], brush=brush,
                                        transforms=[], layers=False, format="png",
                                        elem_id="editor")
                with gr.Row():
                    show_landmarks = gr.Checkbox(label="show landmarks", value=False)
                    eye_distance = gr.Number(label="eye distance in mm (outer corners; optional)",
                                             value=None, minimum=0, elem_id="eye-distance")
                run = gr.Button("Predict", variant="primary", elem_id="predict")
            with gr.Column():
                slider = gr.ImageSlider(label="before | after", type="numpy", format="png",
                                        elem_id="result")
                overlay = gr.Image(label="landmarks", visible=False, format="jpeg")
                table = gr.Dataframe(headers=TABLE_HEADERS, label="measurements",
                                     interactive=False, elem_id="measurements")
                notes = gr.Markdown()
                result_file = gr.File(label="result PNG", elem_id="result-file")
                json_file = gr.File(label="JSON", elem_id="json-file")
        # One queue for the page's events, in the order they were sent: a mask button pressed
        # while the photo is still loading waits for it instead of finding no photo.
        queue = {"concurrency_id": "inclg", "concurrency_limit": 1}
        upload.change(load_photo, upload, [editor, path, drawn], **queue)
        for label, kind in MASK_BUTTONS.items():
            buttons[label].click(lambda p, k=kind: auto_mask(k, p), path, [editor, drawn],
                                 **queue)
        run.click(predict, [path, editor, drawn, show_landmarks, eye_distance],
                  [slider, overlay, table, notes, result_file, json_file], **queue)
    return demo


def _sentence(text: str) -> str:
    """A library message as a sentence for the page: capitalised, with a full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def theme() -> Any:
    """Gradio's default look with the browser's own fonts (no request to a font server)."""
    gr = _gradio()
    return gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])


def launch(predictor: Predictor, port: int = 7860, *, block: bool = True) -> gr.Blocks:
    """Serve the page on http://127.0.0.1:PORT; `block=False` returns once it is up (tests)."""
    demo = build(predictor)
    demo.launch(server_name=HOST, server_port=port, share=False, inbrowser=False,
                show_error=True, quiet=True, ssr_mode=False, mcp_server=False,
                enable_monitoring=False, prevent_thread_lock=not block, theme=theme(),
                footer_links=[])
    return demo


__all__ = ["HOST", "MASK_BUTTONS", "build", "launch", "measurement_notes", "painted_mask",
           "require_gradio"]
