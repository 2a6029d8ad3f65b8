"""The `inclg` command line: a thin typer layer over the library, one module per command group.

predict.py (`inclg predict`), data.py (`inclg data ...`), train.py (`train`, `tune`),
evaluate.py (`evaluate`, `audit privacy`), export.py (`export onnx`), weights.py (`weights ...`,
`model info`, `config show`), webapp.py (`app`); common.py holds the shared option types and the
one error handler (`InclgGroup`): any `InclgError` becomes ``error: <message>`` and exit status 2.
The library never prints; these modules report. They import the library inside each command, so
`inclg --help` loads no torch or OpenCV.
"""

from __future__ import annotations

from typing import Annotated

import typer

from inclg.cli import data, evaluate, export, predict, train, webapp, weights
from inclg.cli.common import InclgGroup

app = typer.Typer(
    name="inclg",
    cls=InclgGroup,
    help="INCLG: predict a non-cleft lip by face inpainting with a multi-task network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        import inclg

        typer.echo(f"inclg {inclg.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """INCLG command group."""


app.command("predict")(predict.predict_command)
app.command("app")(webapp.app_command)
app.add_typer(data.data_app, name="data")
app.command("train")(train.train_command)
app.command("tune")(train.tune_command)
app.command("evaluate")(evaluate.evaluate_command)
app.add_typer(evaluate.audit_app, name="audit")
app.add_typer(export.export_app, name="export")
app.add_typer(weights.weights_app, name="weights")
app.add_typer(weights.model_app, name="model")
app.add_typer(weights.config_app, name="config")

__all__ = ["app"]
