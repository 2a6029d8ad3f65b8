"""Multi-process training: the same `inclg train` command under torchrun, 2 CPU processes (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("tensorboard", reason="needs TensorBoard: pip install 'inclg[train]'")

from inclg.train import checkpoint as ckpt
from inclg.train.distributed import env_ranks, select_device

TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"


def test_torchrun_two_cpu_processes_train_two_iterations(overrides, tmp_path):
    launcher = tmp_path / "inclg_cli.py"
    launcher.write_text("from inclg.cli import app\napp()\n")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", str(launcher), "train", "--config", str(TINY), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("iteration 2,") == 1  # only rank 0 reports
    run = tmp_path / "run"
    latest = ckpt.latest_checkpoint(run)
    assert latest is not None and latest.name == "iter_00000002"
    state = ckpt.load_checkpoint(latest).state
    assert state["world_size"] == 2 and state["samples_seen"] == 2 * 2 * 2  # its x ranks x batch
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1  # only rank 0 logs


def test_environment_decides_rank_and_device(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert env_ranks() == (0, 0, 1)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert env_ranks() == (3, 1, 4)
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
