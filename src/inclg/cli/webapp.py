"""`inclg app`: the local web page."""

from __future__ import annotations

from typing import Annotated

import typer

from inclg.cli.common import BackendOption, Detector, ModelFolder, warn


def app_command(
    weights: ModelFolder = "default",
    port: Annotated[int, typer.Option(
        metavar="N", min=1, max=65535, help="Port on 127.0.0.1 (the page is local only).")] = 7860,
    backend: BackendOption = "torch",
    detector: Detector = "dlib",
) -> None:
    """Start the local web page (http://127.0.0.1:PORT only; no analytics, no share link).

    Upload a photo, paint the region or draw it from the landmarks (lip, cleft on the subject's
    left or right side, bilateral cleft, nose) and adjust it, predict, compare before/after, read
    the lip and nose measurements, download the PNG and JSON.
    """
    from inclg.app.ui import launch, require_gradio
    from inclg.infer.pipeline import Predictor

    require_gradio()
    predictor = Predictor.from_pretrained(weights, detector=detector, backend=backend)
    if predictor.model.warning:
        warn(predictor.model.warning)
    typer.echo(f"INCLG app on http://127.0.0.1:{port} (Ctrl-C to stop)")
    try:
        launch(predictor, port)
    except OSError as err:
        raise OSError(f"cannot serve on 127.0.0.1:{port} ({err}); choose another --port") from None


__all__ = ["app_command"]
