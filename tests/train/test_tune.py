"""The Optuna search: a 2-trial study on sqlite, resuming, and the best config."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("optuna", reason="the search needs Optuna: pip install 'inclg[train]'")
pytest.importorskip("tensorboard", reason="needs TensorBoard: pip install 'inclg[train]'")

from inclg.cli import app
from inclg.config import load_config
from inclg.train.tune import TuneError, best_trial, run_study, trial_config

TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"


def test_two_trial_study_on_sqlite_resumes_and_yields_a_trainable_config(tiny_config, tmp_path):
    storage = f"sqlite:///{tmp_path / 'db' / 'tune.db'}"
    reports = []
    assert run_study(tiny_config, storage, "lmk", on_trial=reports.append) == 2
    assert [r.state for r in reports] == ["COMPLETE", "COMPLETE"]
    weights = [r.params["loss.landmark"] for r in reports]
    low, high = tiny_config.tune.landmark_range
    assert all(low <= w <= high for w in weights) and weights[0] != weights[1]
    assert run_study(tiny_config, storage, "lmk") == 0  # the study already has its 2 trials
    best = best_trial(storage, "lmk")
    assert best.finished == 2 and best.params["loss.landmark"] in weights
    assert best.config.loss.landmark == best.params["loss.landmark"]
    assert best.config.train == tiny_config.train  # everything else as the base config
    trials = Path(tiny_config.train.run_dir) / "trials" / "lmk"
    assert sorted(p.name for p in trials.iterdir()) == ["0000", "0001"]
    assert not list(trials.rglob("checkpoints"))  # trials write logs, not checkpoints


def test_optim_stage_samples_lr_decay_and_batch_size(tiny_config):
    import optuna

    config = load_config(TINY, ["tune.stage=optim", "tune.batch_sizes=[2, 4]"])
    trial = optuna.create_study().ask()
    from inclg.train.tune import suggest

    params = suggest(trial, config)
    assert set(params) == {"train.lr", "train.lr_decay", "train.batch_size"}
    assert params["train.batch_size"] in (2, 4)


def test_trial_budget_is_one_epoch_with_milestones_scaled_into_it(tmp_path):
    base = load_config(None, ["tune.iterations=0"])  # milestones 20k..120k of 130k
    config = trial_config(base, {"train.batch_size": 4}, train_size=1300, run_dir=tmp_path)
    assert config.train.max_iterations == 325  # one epoch
    assert config.train.lr_milestones == (50, 100, 150, 200, 250, 300)
    assert config.train.checkpoint_every == 0 and config.train.run_dir == str(tmp_path)


def test_errors_name_the_problem(tiny_config, tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    with pytest.raises(TuneError, match="no study 'nope'"):
        best_trial(storage, "nope")
    with pytest.raises(TuneError, match="not a database URL"):
        run_study(tiny_config, "tune.db", "x")


def test_cli_tune_then_best_writes_a_config_train_accepts(overrides, tmp_path):
    runner = CliRunner()
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    args = ["--config", str(TINY), "--storage", storage, "--study", "s", "--trials", "2",
            *overrides]
    result = runner.invoke(app, ["tune", *args])
    assert result.exit_code == 0, result.output
    assert result.output.count("COMPLETE") == 2
    out = tmp_path / "tuned.yaml"
    best = runner.invoke(app, ["tune", "--best", "--storage", storage, "--study", "s",
                               "--out", str(out)])
    assert best.exit_code == 0, best.output
    assert "loss.landmark" in best.output and out.is_file()
    tuned = load_config(out)
    assert tuned.generator.channels == 8 and tuned.loss.landmark != 4.6e-4
    missing = runner.invoke(app, ["tune", "--best", "--storage", storage, "--study", "zzz"])
    assert missing.exit_code == 2 and "no study 'zzz'" in missing.output
