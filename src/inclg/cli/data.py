"""`inclg data ...`: prepare training data (aligned faces + landmarks, mask lists, splits,
previews)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from inclg.cli.common import MASK_KINDS
from inclg.data.kinds import EXTRA_KINDS

data_app = typer.Typer(
    help="Prepare training data: aligned faces + landmarks, mask lists, splits, previews.",
    no_args_is_help=True,
)


@data_app.command("faces")
def data_faces(
    sources: Annotated[list[Path], typer.Argument(
        metavar="SRC...", help="Folders (searched recursively) or files of face photos.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output folder (created; an existing one is resumed).")],
    detector: Annotated[str, typer.Option(
        help="Landmark backend: dlib (default), fan (face-alignment), stub (tests).")] = "dlib",
    workers: Annotated[int | None, typer.Option(
        min=0, help="Worker processes (default: all cores; 0: none).")] = None,
    size: Annotated[int, typer.Option(help="Side of the aligned square crop in pixels.")] = 256,
    image_format: Annotated[str, typer.Option(
        "--format", help="Crop file format: png (lossless), jpg or webp.")] = "png",
    border: Annotated[str, typer.Option(
        help="Fill where the crop reaches past the photo: blur, reflect, replicate, constant."
    )] = "blur",
    max_outside: Annotated[float, typer.Option(
        help="Reject crops with more than this fraction outside the photo.")] = 0.45,
    min_eye_distance: Annotated[float, typer.Option(
        help="Reject faces whose eye centres are closer (source pixels).")] = 24.0,
    limit: Annotated[int | None, typer.Option(
        help="Only the first N photos in name order (a reproducible subset).")] = None,
) -> None:
    """Detect, align and crop every face photo; write crops, landmarks, manifest and rejects."""
    from tqdm import tqdm

    from inclg.data.faces import REJECT_REASONS, FaceJob, FaceOptions

    options = FaceOptions(detector, size, border, image_format, max_outside, min_eye_distance)
    job = FaceJob(sources, out, options, limit)
    typer.echo(f"{job.pending} photos to prepare, {job.already_done} already done, into {out}")
    with tqdm(total=job.pending, unit="photo", dynamic_ncols=True) as bar:
        for _ in job.run(workers):
            bar.update()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    typer.echo(f"accepted {summary['accepted']}, rejected {summary['rejected']}")
    for reason, n in summary["rejected_by_reason"].items():
        typer.echo(f"  {reason:17} {n:6}  {REJECT_REASONS.get(reason, '')}")


@data_app.command("masks")
def data_masks(
    src: Annotated[Path, typer.Argument(help="Folder of hole masks (white = hole), any size.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for the lists, ratios.csv and summary.json.")],
    train_per_group: Annotated[int, typer.Option(
        help="Training masks drawn per ratio group.")] = 3300,
    val_per_group: Annotated[int, typer.Option(
        help="Validation masks drawn per ratio group.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
    size: Annotated[int, typer.Option(help="Resolution at which hole ratios are measured.")] = 256,
) -> None:
    """Measure every mask's hole ratio, group 0-20/20-40/40-60 %, draw seeded train/val lists."""
    from tqdm import tqdm

    from inclg.data.masks import measure_masks, select_masks, write_mask_lists
    from inclg.errors import DataError
    from inclg.io.images import list_images

    paths = [p.resolve() for p in list_images([src])]
    if not paths:
        raise DataError(f"{src} holds no mask images (.png, .jpg, .webp, ...)")
    with tqdm(total=len(paths), unit="mask", dynamic_ncols=True) as bar:
        ratios = measure_masks(paths, size, bar.update)
    selection = select_masks(paths, ratios, train_per_group, val_per_group, seed)
    summary = write_mask_lists(out, selection, paths, ratios)
    for group, have, train, val in zip(summary["groups"], summary["available"],
                                       summary["train_per_group"], summary["val_per_group"],
                                       strict=True):
        typer.echo(f"{group:>8}: {have:5} masks -> {train} train, {val} val")
    typer.echo(f"{summary['ungrouped']} masks outside every group; lists in {out}")


def _ratio(value: str | None) -> tuple[float, float] | None:
    """--ratio LO-HI as (lo, hi)."""
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split("-"))
    except ValueError:
        raise typer.BadParameter(f"must look like 0.2-0.4, not {value!r}",
                                 param_hint="'--ratio'") from None
    return lo, hi


@data_app.command("gen-masks")
def data_gen_masks(
    kind: Annotated[str, typer.Argument(
        metavar="KIND", help=f"Mask kind: free-form, {MASK_KINDS}, {' or '.join(EXTRA_KINDS)} "
        "(left and right are the subject's sides).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="DIR", help="Folder for the PNG masks and masks.flist.")],
    prepared: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Folder made by `inclg data faces` (landmark kinds: one mask per "
        "face).")] = None,
    count: Annotated[int, typer.Option(metavar="N", help="Number of free-form masks.")] = 1000,
    ratio: Annotated[str | None, typer.Option(
        metavar="LO-HI", show_default="any", help="Free-form hole ratio range, e.g. 0.2-0.4."
    )] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the free-form strokes.")] = 0,
    size: Annotated[int, typer.Option(
        metavar="PX", help="Side of free-form masks in pixels.")] = 256,
) -> None:
    """Generate masks: random free-form strokes, or lip / cleft / region masks from landmarks."""
    from inclg.data.masks import generate_masks

    written = generate_masks(kind, out, count, prepared, seed, size, _ratio(ratio))
    typer.echo(f"wrote {len(written)} {kind} masks and {out / 'masks.flist'}")


@data_app.command("split")
def data_split(
    prepared: Annotated[Path, typer.Argument(help="Folder made by `inclg data faces`.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for the .flist files (default: PREPARED/lists).")] = None,
    val: Annotated[float, typer.Option(
        help="Fraction of every source folder for validation.")] = 0.05,
    test: Annotated[float, typer.Option(
        help="Fraction of every source folder for testing.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
) -> None:
    """Write disjoint, deterministic train/val/test image and landmark lists (.flist)."""
    from inclg.data.filelists import split_prepared

    out = out or prepared / "lists"
    counts = split_prepared(prepared, out, val, test, seed)
    for split, per_root in counts.items():
        detail = ", ".join(f"{root} {n}" for root, n in per_root.items())
        typer.echo(f"{split:>5}: {sum(per_root.values()):6}  ({detail})")
    typer.echo(f"lists in {out}")


@data_app.command("preview")
def data_preview(
    prepared: Annotated[Path, typer.Argument(help="Folder made by `inclg data faces`.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Contact sheet image (.png, .jpg or .webp).")],
    count: Annotated[int, typer.Option(help="Faces on the sheet (a seeded random sample).")] = 48,
    columns: Annotated[int, typer.Option(min=1, help="Cells per row.")] = 8,
    cell: Annotated[int, typer.Option(min=16, help="Cell side in pixels.")] = 160,
    mask: Annotated[str, typer.Option(
        help="Landmark mask drawn on each face (lip, cleft-left, nose, ...; none).")
    ] = "cleft-left",
    masks: Annotated[Path | None, typer.Option(
        help="A mask .flist to draw instead of landmark masks.")] = None,
    rejects: Annotated[int, typer.Option(
        help="Also show this many rejected photos with their reason.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
) -> None:
    """Draw aligned crops with landmarks and masks on one sheet, to check the data at a glance."""
    from inclg.data.filelists import read_flist
    from inclg.data.preview import preview_prepared

    mask_list = read_flist(masks) if masks else None
    cells = preview_prepared(prepared, out, count, columns, cell,
                             None if mask == "none" else mask, mask_list, seed, rejects)
    typer.echo(f"wrote {out} ({cells} cells)")


__all__ = ["data_app"]
