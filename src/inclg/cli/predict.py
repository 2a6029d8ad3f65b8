"""`inclg predict`: one photo or a folder, resumable (the work is `inclg.infer.batch`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inclg.cli.common import (
    MASK_KINDS,
    BackendOption,
    Detector,
    Device,
    ModelFolder,
    Precision,
    error,
    parse_mask_kind,
    warn,
)
from inclg.data.kinds import MaskKind

if TYPE_CHECKING:
    from inclg.infer.batch import Outcome, PredictJob


def predict_command(
    path: Annotated[Path, typer.Argument(
        metavar="PHOTO|DIR", help="A face photo, or a folder of them (searched recursively; the "
        "output folder, INCLG's own outputs and NAME.mask.* files are skipped).")],
    mask: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Mask drawn on the full photo as displayed, same size (what is "
        "painted is the region: white on black, or paint on a transparent layer); with a folder, "
        "one mask for every photo.")] = None,
    mask_dir: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Folder of masks paired by name: DIR/sub/IMG.jpg takes "
        "MASK_DIR/sub/IMG.png or IMG.mask.png (any image type).")] = None,
    auto_mask: Annotated[MaskKind | None, typer.Option(
        metavar="KIND", parser=parse_mask_kind, help="Draw the mask from the landmarks: "
        f"{MASK_KINDS} (left and right are the subject's sides).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", metavar="DIR", show_default="inclg-out/ beside the photo, or in DIR",
        help="Output folder.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace results of another run (other seed, model, mask, scale or "
        "photo content) for the same photo and mask kind; without it such a run stops.")] = False,
    weights: ModelFolder = "default",
    detector: Detector = "dlib",
    face: Annotated[int | None, typer.Option(
        metavar="N", min=0, show_default="the only face; an error if several are found",
        help="Which face when several are found: 0 = the largest, 1 = the next, ... (for every "
        "photo of a folder).")] = None,
    seed: Annotated[int, typer.Option(
        metavar="N", help="Run seed; each photo's seed is derived from it and its file name (in "
        "the JSON).")] = 0,
    eye_distance_mm: Annotated[float | None, typer.Option(
        metavar="MM", help="The subject's outer eye-corner distance in mm (caliper): the "
        "measurements in millimetres too.")] = None,
    mm_per_px: Annotated[float | None, typer.Option(
        metavar="MM", help="Millimetres per photo pixel in the face's plane (a ruler in the "
        "photo): the measurements in millimetres too.")] = None,
    device: Device = "cpu",
    precision: Annotated[Precision, typer.Option(
        help="bf16 runs under autocast: faster only on hardware with bf16 units, slightly "
        "different output.")] = "fp32",
    threads: Annotated[int | None, typer.Option(
        metavar="N", min=1, show_default="one per core", help="CPU threads for the network."
    )] = None,
    backend: BackendOption = "torch",
    onnx: Annotated[Path | None, typer.Option(
        metavar="FILE", show_default="exported once to $INCLG_HOME/onnx/",
        help="With --backend onnx: the file `inclg export onnx` wrote for the same --weights."
    )] = None,
) -> None:
    """Predict the masked region of a face photo (or a folder of photos) and paste it back.

    Per photo NAME and mask kind KIND (mask for --mask/--mask-dir), OUT gets NAME.KIND.result.png
    (the photo, upright, same size; only pixels inside the slightly dilated mask change; its PNG
    text holds the tool version, model id and checksum, trained flag and mask kind, nothing
    personal), NAME.KIND.before_after.jpg, NAME.KIND.landmarks.jpg, NAME.KIND.measurements.png
    (lip and nose measurements of the face as it is and of the predicted face) and NAME.KIND.json
    (68 landmarks in photo pixels, mask, fit quality, measurements, face box, model, timings); a
    folder also gets inclg-predict.KIND.csv (one row per photo) and a summary JSON. A photo whose
    JSON matches the same photo, mask, seed, scale and model is skipped, so a stopped run resumes
    (Ctrl-C stops after writing the summary); another run's results are never replaced without
    --overwrite. Exit status: 0 if every photo succeeded (or was already done), 1 if any failed
    (one line each, then a summary), 2 for a usage error, 130 if interrupted.
    """
    from tqdm import tqdm

    from inclg.infer.batch import MaskSpec, PredictJob, Scale
    from inclg.infer.pipeline import Predictor

    if onnx is not None and backend != "onnx":
        raise typer.BadParameter("--onnx needs --backend onnx")
    masks = MaskSpec(mask, mask_dir, auto_mask)
    scale = Scale(eye_distance_mm, mm_per_px)
    predictor = Predictor.from_pretrained(weights, detector=detector, precision=precision,
                                          threads=threads, device=device, backend=backend,
                                          onnx_path=onnx)
    job = PredictJob(path, predictor, masks, out, seed, face, overwrite, scale)
    conflicts = job.conflicts()
    if conflicts:
        item, why = conflicts[0]
        some = "1 photo already has" if len(conflicts) == 1 else \
            f"{len(conflicts)} photos already have"
        error(f"{some} another run's result in {job.out} (e.g. {item.outputs['json'].name}: "
              f"{why}); pass --overwrite to replace them, or choose another --out")
        raise typer.Exit(2)
    if predictor.model.warning:
        warn(predictor.model.warning)
    outcomes = []
    interrupted = False
    bar = tqdm(total=len(job.items), unit="photo", dynamic_ncols=True, disable=not job.batch)
    try:
        for outcome in job.run():
            outcomes.append(outcome)
            if outcome.status == "failed":
                bar.write(f"error: {outcome.reason}", file=sys.stderr)
            for notice in outcome.notices:
                bar.write(notice, file=sys.stderr)
            bar.update()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    summary = job.summary(outcomes, interrupted)
    try:
        job.write_summary(summary, outcomes)
    except OSError as err:  # the photos' outputs are written; only the summary is missing
        error(f"cannot write the summary in {job.out} ({err})")
    _report(job, outcomes, summary, interrupted)


def _report(job: PredictJob, outcomes: list[Outcome], summary: dict[str, Any],
            interrupted: bool) -> None:
    """The run's last lines, and its exit status."""
    if interrupted:
        typer.secho(f"interrupted: {summary['ok']} done, {summary['pending']} to go; rerun to "
                    "resume", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(130)
    if job.batch:
        typer.echo(f"{summary['done_this_run']} done, {summary['skipped']} already done, "
                   f"{summary['failed']} failed; {summary['ok']} of {summary['photos']} photos "
                   f"have a result; outputs in {job.out}, table {job.table_path.name}")
        for failure in summary["failures"]:
            typer.echo(f"  failed  {failure['photo']}")
    elif outcomes[0].status == "ok":
        outputs = outcomes[0].item.outputs
        typer.echo(f"wrote {outputs['result']} (+ .before_after.jpg, .landmarks.jpg, "
                   f".measurements.png, .json) in {outcomes[0].seconds:.2f} s")
    elif outcomes[0].status == "skipped":
        typer.echo(f"already done: {outcomes[0].item.outputs['json']} matches this photo, mask, "
                   "seed and model; delete it to predict again")
    if summary["failed"]:
        raise typer.Exit(1)

__all__ = ["predict_command"]
