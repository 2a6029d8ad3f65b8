"""`inclg train`: runs, resumes, and reports user errors in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("tensorboard", reason="needs TensorBoard: pip install 'inclg[train]'")

from inclg.cli import app
from inclg.train import checkpoint as ckpt

TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"
runner = CliRunner()


def _train(*args: str):
    return runner.invoke(app, ["train", *args])


def test_train_with_all_losses_writes_checkpoints_and_logs(overrides, vgg16_file, tmp_path):
    run = tmp_path / "out"
    result = _train("--config", str(TINY), *overrides, "loss.perceptual=0.1", "loss.style=250",
                    f"loss.feature_weights={vgg16_file}", "--out", str(run))
    assert result.exit_code == 0, result.output
    assert "iteration 2" in result.output and "best: iter_00000002" in result.output
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["iter_00000001", "iter_00000002"]
    assert (run / "checkpoints" / "iter_00000002" / "config.yaml").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))


def test_resume_auto_and_resume_from_a_checkpoint_folder(overrides, tmp_path):
    run = tmp_path / "run"
    first = _train("--config", str(TINY), *overrides, "train.max_iterations=1")
    assert first.exit_code == 0, first.output
    again = _train("--config", str(TINY), *overrides, "train.max_iterations=2", "--resume", "auto")
    assert again.exit_code == 0, again.output
    assert "resumed from" in again.output and "iteration 2" in again.output
    # a checkpoint folder alone: its own config.yaml is used, overrides still apply
    last = _train("--resume", str(run / "checkpoints" / "iter_00000002"), "train.max_iterations=3")
    assert last.exit_code == 0, last.output
    assert ckpt.latest_checkpoint(run).name == "iter_00000003"


def test_user_errors_are_one_line(overrides, tmp_path):
    cases = [
        (["--config", str(TINY)], "data.train_images and data.train_landmarks must name"),
        (["--config", str(TINY), *overrides, "train.lrr=1"], "did you mean 'lr'"),
        (["--config", str(TINY), *overrides, "loss.perceptual=0.1",
          f"loss.feature_weights={tmp_path / 'missing.safetensors'}"], "do not exist"),
        (["--config", str(TINY), *overrides, "--resume", str(tmp_path)], "neither a checkpoint"),
        (["--config", str(TINY), *overrides, f"data.train_images={tmp_path / 'no.flist'}"],
         "cannot be read"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--config", str(TINY), *overrides, "train.device=cuda"],
                      "CUDA is not available"))
    for args, message in cases:
        result = _train(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output
