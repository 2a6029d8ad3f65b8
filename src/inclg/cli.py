"""The `inclg` command line: a thin typer layer over the library. Library code never prints."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="inclg",
    help="INCLG: predict a non-cleft lip by face inpainting with a multi-task network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def fail(message: str) -> None:
    """Print a one-line error for the user and exit with status 2 (no traceback)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.callback()
def _root() -> None:
    """INCLG command group."""
