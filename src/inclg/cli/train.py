"""`inclg train` (the paper's Algorithm 1) and `inclg tune` (Optuna search)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from inclg.cli.common import ConfigFile, Overrides, load_config, log_above_progress_bar

if TYPE_CHECKING:
    from tqdm import tqdm

    from inclg.train.loop import Progress
    from inclg.train.tune import TrialReport


def train_command(
    overrides: Overrides = None,
    config: ConfigFile = None,
    resume: Annotated[str | None, typer.Option(
        help="'auto' (the run's latest checkpoint, if any), a checkpoint folder or a run folder; "
        "without --config a checkpoint's own config.yaml is used")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="run folder for logs and checkpoints (sets train.run_dir)")] = None,
) -> None:
    """Train the network as the paper's Algorithm 1; under torchrun, on every GPU (DDP).

    Ctrl-C or SIGTERM finishes the step, writes a checkpoint and exits (then: --resume auto).
    """
    from tqdm import tqdm

    from inclg.train.checkpoint import CONFIG_NAME, resolve_resume
    from inclg.train.loop import train

    overrides = list(overrides or [])
    if out is not None:
        overrides.append(f"train.run_dir={out}")
    if config is None and resume not in (None, "auto"):
        found = resolve_resume(resume, ".")
        if found is not None:
            config = found / CONFIG_NAME
    cfg = load_config(config, overrides)
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
        log_above_progress_bar()
    try:
        result = train(cfg, resume=resume, on_progress=progress)
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


def tune_command(
    overrides: Overrides = None,
    config: ConfigFile = None,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL: sqlite:///path/tune.db (default: RUN_DIR/tune.db; a killed "
        "search resumes) or postgresql://user:password@host/db for workers on several machines"
    )] = None,
    study: Annotated[str | None, typer.Option(help="study name (default: inclg-STAGE)")] = None,
    trials: Annotated[int | None, typer.Option(
        min=1, help="finished trials the study should reach (sets tune.trials)")] = None,
    stage: Annotated[Literal["landmark", "optim"] | None, typer.Option(
        help="landmark: the landmark-loss weight; optim: LR, LR decay and batch size "
        "(sets tune.stage)")] = None,
    best: Annotated[bool, typer.Option(
        "--best", help="print the best trial instead of searching")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="with --best: write the tuned config here (for inclg train)")] = None,
) -> None:
    """Search hyperparameters with Optuna as the paper did; each trial is a short training run."""
    from inclg.train.tune import best_trial, default_storage, require_optuna, run_study

    if out is not None and not best:
        raise typer.BadParameter("--out is for --best (the tuned config); trial logs go to "
                                 "RUN_DIR/trials")
    overrides = list(overrides or [])
    if stage is not None:
        overrides.append(f"tune.stage={stage}")
    if trials is not None:
        overrides.append(f"tune.trials={trials}")
    cfg = load_config(config, overrides)
    storage = storage or default_storage(cfg.train.run_dir)
    study = study or f"inclg-{cfg.tune.stage}"
    if best:
        result = best_trial(storage, study, cfg if config is not None else None)
        typer.echo(f"study {study}: best trial {result.number} of {result.finished}, "
                   f"validation loss {result.value:.5g}")
        for key, value in result.params.items():
            typer.echo(f"  {key} = {value!r}")
        if out is not None:
            result.config.save(out)
            typer.echo(f"wrote {out}; train with: inclg train --config {out}")
        return

    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def report(trial: TrialReport) -> None:
        value = "-" if trial.value is None else f"{trial.value:.5g}"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in trial.params.items())
        typer.echo(f"trial {trial.number:4d} {trial.state:8} validation loss {value:>10}  {params}")

    log_above_progress_bar()
    typer.echo(f"study {study} ({cfg.tune.stage}) in {storage}: up to {cfg.tune.trials} trials")
    ran = run_study(cfg, storage, study, on_trial=report)
    typer.echo(f"{ran} trials run; best: inclg tune --best --storage {storage} --study {study} "
               f"--out tuned.yaml")


__all__ = ["train_command", "tune_command"]
