"""Checkpoints: atomic writes, weights_only reads, keep-last-K + best, resume resolution."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from inclg.config import load_config
from inclg.model.discriminator import Discriminator
from inclg.model.generator import Generator
from inclg.train import checkpoint as ckpt

TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"


@pytest.fixture
def parts():
    config = load_config(TINY)
    torch.manual_seed(0)
    return Generator(config.generator), Discriminator(config.discriminator), config


def _save(run, parts, iteration, **state):
    generator, discriminator, config = parts
    return ckpt.save_checkpoint(run, iteration, generator, discriminator,
                                {"iteration": iteration, **state}, config)


def test_a_write_killed_midway_leaves_the_previous_checkpoint_intact(tmp_path, parts, monkeypatch):
    first = _save(tmp_path, parts, 1)

    def dies_halfway(state, path):
        path.write_bytes(b"half a checkp")
        raise KeyboardInterrupt  # what SIGKILL-like interruption looks like from inside Python

    monkeypatch.setattr(ckpt, "_write_state", dies_halfway)
    parts[0].landmark_fc.bias.data += 1  # the new checkpoint would differ
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, parts, 2)
    assert ckpt.list_checkpoints(tmp_path) == [first] == [ckpt.latest_checkpoint(tmp_path)]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [first.name]  # no debris
    loaded = ckpt.load_checkpoint(first)
    assert loaded.iteration == 1
    assert not torch.equal(loaded.generator["landmark_fc.bias"], parts[0].landmark_fc.bias)


def test_state_round_trips_with_weights_only_including_rng_states(tmp_path, parts):
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    rng = ckpt.rng_state(torch.device("cpu"))
    expected = (torch.rand(3), np.random.rand(3), random.random())
    path = _save(tmp_path, parts, 7, rng=rng, best_val_loss=float("inf"))
    loaded = ckpt.load_checkpoint(path)  # torch.load(weights_only=True) inside
    assert loaded.state["best_val_loss"] == float("inf")
    ckpt.set_rng_state(loaded.state["rng"], torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
    generator, _, config = parts
    fresh_g, fresh_d = Generator(config.generator), Discriminator(config.discriminator)
    loaded.load_models(fresh_g, fresh_d)
    for a, b in zip(generator.state_dict().values(), fresh_g.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded.config == config
    assert Generator.from_pretrained(path / "generator") is not None  # usable for inference


def test_keeps_the_last_k_and_the_best(tmp_path, parts):
    for iteration in range(1, 6):
        path = _save(tmp_path, parts, iteration)
        if iteration == 2:
            ckpt.mark_best(tmp_path, path, iteration, 0.5)
        ckpt.prune(tmp_path, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == [
        "iter_00000002", "iter_00000004", "iter_00000005"]
    assert ckpt.best_checkpoint(tmp_path)["checkpoint"] == "iter_00000002"


def test_saving_the_same_iteration_again_replaces_it(tmp_path, parts):
    _save(tmp_path, parts, 3, note=1)
    path = _save(tmp_path, parts, 3, note=2)
    assert ckpt.load_checkpoint(path).state["note"] == 2
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["iter_00000003"]


def test_resume_resolution(tmp_path, parts):
    assert ckpt.resolve_resume(None, tmp_path) is None
    assert ckpt.resolve_resume("auto", tmp_path) is None  # a fresh run starts from scratch
    _save(tmp_path, parts, 1)
    latest = _save(tmp_path, parts, 2)
    assert ckpt.resolve_resume("auto", tmp_path) == latest
    assert ckpt.resolve_resume(tmp_path, "elsewhere") == latest  # a run folder: its latest
    assert ckpt.resolve_resume(latest, "elsewhere") == latest
    with pytest.raises(ckpt.CheckpointError, match="neither a checkpoint folder"):
        ckpt.resolve_resume(tmp_path / "nope", tmp_path)


def test_damaged_or_mismatched_checkpoints_are_refused(tmp_path, parts):
    path = _save(tmp_path, parts, 1)
    other = load_config(TINY, ["generator.channels=16"])
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        ckpt.load_checkpoint(path).load_models(Generator(other.generator), parts[1])
    (path / ckpt.STATE_NAME).write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="cannot be read"):
        ckpt.load_checkpoint(path)
    with pytest.raises(ckpt.CheckpointError, match="not a complete checkpoint"):
        ckpt.load_checkpoint(tmp_path)
