"""`inclg export onnx`: the generator as one ONNX file for other runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inclg.cli.common import warn

export_app = typer.Typer(help="Export the generator for other runtimes.", no_args_is_help=True)


@export_app.command("onnx")
def export_onnx_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write.")],
    weights: Annotated[str, typer.Option(
        help="Model folder, or default for the model bundled with INCLG.")] = "default",
) -> None:
    """Write the generator as one ONNX file (opset 18, dynamic batch; inputs masked_image
    [N,3,256,256] and mask [N,1,256,256], outputs image and landmarks [N,68,2]), checked against
    PyTorch on random inputs at batch 1 and 3 before it is written."""
    from inclg.export.onnx import IMAGE_TOLERANCE, LANDMARK_TOLERANCE, export_onnx
    from inclg.weights import load_model

    model = load_model(weights)
    checks = export_onnx(model, out)
    if model.warning:
        warn(model.warning)
    for c in checks:
        typer.echo(f"batch {c.batch}: max |onnx - torch| image {c.image_max_abs:.2e} (limit "
                   f"{IMAGE_TOLERANCE:g}), landmarks {c.landmarks_max_abs:.2e} px (limit "
                   f"{LANDMARK_TOLERANCE:g})")
    typer.echo(f"wrote {out} (model {model.model_id}, checksum {model.checksum[:16]}...)")


__all__ = ["export_app"]
