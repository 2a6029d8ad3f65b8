"""What every command shares: the one error handler, option types, and small reporting helpers.

Importing this module (and the command modules) loads typer and the standard library only;
torch, OpenCV and numpy load inside a command when it runs, so `inclg --help` stays fast.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperGroup

from inclg.data.kinds import MaskKind
from inclg.errors import DataError, InclgError

MASK_KINDS = ", ".join(k.value for k in MaskKind)  # for help texts
Precision = Literal["fp32", "bf16"]  # `inclg.infer.pipeline.Precision`
Backend = Literal["torch", "onnx"]  # `inclg.infer.pipeline.Backend`


def _library_error(err: Exception) -> bool:
    """An error the user can fix: INCLG's own (`InclgError`) or the operating system's (a
    missing file, a full disk)."""
    return isinstance(err, (InclgError, OSError)) and not isinstance(err, BrokenPipeError)


def error(message: str) -> None:
    """Print ``error: message`` on stderr, in red."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr, in yellow."""
    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


class InclgGroup(TyperGroup):
    """The root command group. The one place that turns an error the user can fix into one line
    on stderr and exit status 2: a library error (see `_library_error`) or a bad option value
    (typer's `BadParameter`, rich-boxed by default)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as err:  # raised in a command's body it has no context
            where = err.ctx.command_path if err.ctx is not None else " ".join(
                filter(None, (ctx.command_path, ctx.invoked_subcommand)))
            error(f"{err.format_message().replace('Value error, ', '')} (see {where} --help)")
            raise typer.Exit(2) from None
        except Exception as err:
            if not _library_error(err):
                raise
            error(str(err))
            raise typer.Exit(2) from None


def parse_mask_kind(value: str | MaskKind) -> MaskKind:
    """A --auto-mask value as a `MaskKind`; a typo or a retired name gets the library's hint."""
    try:
        return MaskKind.parse(value, "automatic mask")
    except DataError as err:
        raise typer.BadParameter(str(err)) from None


def command_line() -> str:
    """The command as typed, for reports."""
    return "inclg " + shlex.join(sys.argv[1:])


def log_above_progress_bar() -> None:
    """Show the library's INFO log records (validation results, resume) above the tqdm bar."""
    import logging

    from tqdm import tqdm

    class TqdmHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            tqdm.write(self.format(record))

    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("inclg")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)


def load_config(path: Path | None, overrides: list[str] | None) -> Any:
    """The resolved `inclg.config.Config` (defaults <- file <- overrides)."""
    from inclg.config import load_config as load

    return load(path, overrides or [])


# Option types used by several commands.
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")]
Overrides = Annotated[list[str] | None, typer.Argument(help="key=value overrides")]
ModelFolder = Annotated[str, typer.Option(
    "--weights", metavar="DIR", help="Model folder (written by save_pretrained or `inclg weights "
    "import-original`), or default for the model bundled with INCLG.")]
Device = Annotated[str, typer.Option(
    metavar="DEVICE", help="Where the network runs: cpu, cuda, cuda:1, mps, ...")]
Detector = Annotated[str, typer.Option(
    metavar="NAME", help="Landmark backend: dlib, fan (face-alignment) or stub (tests).")]
BackendOption = Annotated[Backend, typer.Option(
    help="Run the network with torch or onnx (onnxruntime, CPU, fp32).")]
AutoMasks = Annotated[list[MaskKind] | None, typer.Option(
    metavar="KIND", parser=parse_mask_kind,
    help=f"Landmark mask kind ({MASK_KINDS}; left and right are the subject's); repeatable.")]

__all__ = ["MASK_KINDS", "AutoMasks", "Backend", "BackendOption", "ConfigFile", "Detector",
           "Device", "InclgGroup", "ModelFolder", "Overrides", "Precision", "command_line",
           "error", "load_config", "log_above_progress_bar", "parse_mask_kind", "warn"]
