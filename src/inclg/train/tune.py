"""Hyperparameter search with Optuna, in the paper's two stages.

1. ``stage=landmark``: everything fixed, the landmark-loss weight ``loss.landmark`` sampled
   log-uniformly;
2. ``stage=optim``: with that weight fixed (put it in the config), ``train.lr`` (log-uniform),
   ``train.lr_decay`` (uniform) and ``train.batch_size`` (categorical).

Each trial trains from scratch for a short budget (``tune.iterations``; 0 = one epoch of the
training list at the trial's batch size, the paper's budget) with the LR milestones scaled into
that budget, so the decay being tuned takes effect. Every ``tune.report_every`` iterations the
validation loss is reported to a median pruner, which stops clearly worse trials early.

The objective is the validation loss weighted with the *base* config's loss weights (see
`inclg.train.loop.validation_loss`), never with a trial's own: a trial that sampled a small
landmark weight must not look better just because its loss counts the landmarks less.

Studies live in an Optuna RDB storage named by URL: ``sqlite:///runs/tune.db`` on one machine
(a killed search resumes where it stopped: re-run the same command), or
``postgresql://user:password@host/db`` shared by workers on several machines (each runs the same
``inclg tune`` command; give each a different ``tune.seed``). Trials of a killed worker are
detected by their missing heartbeat and re-queued.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inclg.config import Config, from_dict
from inclg.errors import TuneError
from inclg.model.vgg import VGGFeatures

STAGE_PARAMS = {"landmark": ("loss.landmark",),
                "optim": ("train.lr", "train.lr_decay", "train.batch_size")}
HEARTBEAT_SECONDS = 60


@dataclass
class TrialReport:
    """One finished trial, for the caller to show."""

    number: int
    state: str  # COMPLETE, PRUNED or FAIL
    value: float | None
    params: dict[str, Any]


@dataclass
class BestTrial:
    """The best trial of a study and the config it implies."""

    study: str
    number: int
    value: float
    params: dict[str, Any]
    config: Config
    finished: int  # complete + pruned trials in the study


def require_optuna() -> Any:
    """The optuna module, or a `TuneError` that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise TuneError("inclg tune needs Optuna: python3 -m pip install 'inclg[train]'") from None
    return optuna


def default_storage(run_dir: str | Path) -> str:
    """``sqlite:///<run_dir>/tune.db``: one file, resumable, for a search on one machine."""
    return f"sqlite:///{Path(run_dir) / 'tune.db'}"


def open_storage(url: str) -> Any:
    """An Optuna RDB storage with heartbeats (so trials of a killed process are re-queued)."""
    optuna = require_optuna()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if "://" not in url:
        raise TuneError(f"storage {url!r} is not a database URL; use sqlite:///path/tune.db or "
                        f"postgresql://user:password@host/database")
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=2)
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                              grace_period=3 * HEARTBEAT_SECONDS,
                              heartbeat_stale_trial_callback=retry)
    except ImportError as err:
        raise TuneError(f"storage {url}: the database driver is not installed ({err}); for "
                        f"PostgreSQL: python3 -m pip install psycopg2-binary") from None
    except Exception as err:  # SQLAlchemy's connection errors have no narrower common base
        raise TuneError(f"storage {url} cannot be opened: {err}") from None


def with_params(config: Config, params: dict[str, Any]) -> Config:
    """`config` with dotted keys (``"train.lr"``) replaced, re-checked like any config."""
    data = config.to_dict()
    for dotted, value in params.items():
        section, key = dotted.split(".")
        data[section][key] = value
    return from_dict(Config, data)


def suggest(trial: Any, config: Config) -> dict[str, Any]:
    """Sample the stage's parameters for `trial`, keyed by their config keys."""
    tune = config.tune
    if tune.stage == "landmark":
        low, high = tune.landmark_range
        return {"loss.landmark": trial.suggest_float("loss.landmark", low, high, log=True)}
    return {
        "train.lr": trial.suggest_float("train.lr", *tune.lr_range, log=True),
        "train.lr_decay": trial.suggest_float("train.lr_decay", *tune.lr_decay_range),
        "train.batch_size": trial.suggest_categorical("train.batch_size", list(tune.batch_sizes)),
    }


def trial_config(base: Config, params: dict[str, Any], train_size: int,
                 run_dir: Path) -> Config:
    """The config of one trial: the sampled values, the short budget, milestones scaled into it,
    validation every ``tune.report_every`` iterations, no checkpoints."""
    config = with_params(base, params)
    budget = base.tune.iterations or math.ceil(train_size / config.train.batch_size)
    scale = budget / max(1, base.train.max_iterations)
    milestones = sorted({max(1, round(m * scale)) for m in base.train.lr_milestones})
    return with_params(config, {
        "train.max_iterations": budget,
        "train.lr_milestones": milestones,
        "train.val_every": min(base.tune.report_every, budget),
        "train.sample_every": 0,
        "train.checkpoint_every": 0,
        "train.run_dir": str(run_dir),
    })


def _study(storage: Any, name: str, config: Config | None, load_only: bool = False) -> Any:
    import optuna

    if load_only:
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage))
            raise TuneError(f"no study {name!r} in this storage "
                            f"(studies: {names or 'none'})") from None
    assert config is not None
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize",
                                load_if_exists=True)
    stage = study.user_attrs.get("stage")
    if stage is None:
        study.set_user_attr("stage", config.tune.stage)
        study.set_user_attr("base_config", config.to_dict())
    elif stage != config.tune.stage:
        raise TuneError(f"study {name!r} searches stage {stage!r}, not {config.tune.stage!r}; "
                        f"use another --study name for this stage")
    return study


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_study(config: Config, storage_url: str, study_name: str, *,
              feature_net: VGGFeatures | None = None,
              on_trial: Callable[[TrialReport], None] | None = None) -> int:
    """Run trials until the study has ``tune.trials`` finished ones; returns how many ran here.

    Safe to run in several processes or on several machines against one storage.
    """
    optuna = require_optuna()
    from optuna.samplers import TPESampler
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from inclg.train.loop import Trainer, build_datasets, validation_loss

    train_data, val_data = build_datasets(config)
    if val_data is None:
        raise TuneError("the search scores trials on validation data: set data.val_images and "
                        "data.val_landmarks")
    if feature_net is None and (config.loss.perceptual or config.loss.style):
        from inclg.weights.vgg import load_feature_net

        feature_net = load_feature_net(config.loss.feature_net, config.loss.feature_weights,
                                       normalize=config.loss.feature_normalize)
    storage = open_storage(storage_url)
    study = _study(storage, study_name, config)
    # Reproducible for one worker that is restarted; other workers need another tune.seed.
    study.sampler = TPESampler(seed=config.tune.seed + len(study.trials))
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=4,
                                               n_warmup_steps=config.tune.report_every)
    trials_dir = Path(config.train.run_dir) / "trials" / study_name

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, config)
        run_config = trial_config(config, params, len(train_data),  # type: ignore[arg-type]
                                  trials_dir / f"{trial.number:04d}")
        trainer = Trainer(run_config, feature_net=feature_net, train_data=train_data,
                          val_data=val_data, checkpoints=False, handle_signals=False)

        def report(iteration: int, values: dict[str, float]) -> None:
            trial.report(validation_loss(values, config.loss), iteration)
            if iteration < run_config.train.max_iterations and trial.should_prune():
                raise optuna.TrialPruned()

        result = trainer.fit(on_validation=report)
        assert result.validation is not None
        trial.set_user_attr("validation", result.validation)
        return validation_loss(result.validation, config.loss)

    def notify(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(TrialReport(trial.number, trial.state.name, trial.value, trial.params))

    remaining = config.tune.trials - _finished(study)
    if remaining <= 0:
        return 0
    before = len(study.trials)
    study.optimize(objective, n_trials=remaining, gc_after_trial=True,
                   callbacks=[MaxTrialsCallback(config.tune.trials,
                                                states=(TrialState.COMPLETE, TrialState.PRUNED)),
                              notify])
    return len(study.trials) - before


def best_trial(storage_url: str, study_name: str, base: Config | None = None) -> BestTrial:
    """The study's best complete trial and the full config it implies: `base` (default: the
    config the study was started with) with the best values."""
    study = _study(open_storage(storage_url), study_name, None, load_only=True)
    try:
        best = study.best_trial
    except ValueError:
        raise TuneError(f"study {study_name!r} has no complete trial yet") from None
    if base is None:
        stored = study.user_attrs.get("base_config")
        if stored is None:
            raise TuneError(f"study {study_name!r} was not created by inclg tune; pass --config")
        base = from_dict(Config, stored)
    return BestTrial(study_name, best.number, float(best.value), dict(best.params),
                     with_params(base, best.params), _finished(study))
