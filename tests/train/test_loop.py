"""The training loop: Algorithm 1's phases, finite losses, checkpoints, exact resume, signals."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch

pytest.importorskip("tensorboard", reason="needs TensorBoard: pip install 'inclg[train]'")

from inclg.config import load_config
from inclg.losses import LOSS_NAMES
from inclg.train import checkpoint as ckpt
from inclg.train.loop import Trainer, build_datasets, validation_loss

TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"


def _trainer(config, feature_net=None, **kwargs) -> Trainer:
    train_data, val_data = build_datasets(config)
    return Trainer(config, feature_net=feature_net, train_data=train_data, val_data=val_data,
                   **kwargs)


def test_two_iterations_give_finite_losses_logs_and_a_checkpoint(data_lists, tmp_path,
                                                                  random_vgg):
    run = tmp_path / "run"
    config = load_config(TINY, [f"{k}={v}" for k, v in data_lists.items()]
                         + [f"train.run_dir={run}"])  # all six losses, with a random VGG
    seen = []
    result = _trainer(config, random_vgg).fit(on_progress=seen.append)
    assert result.iteration == 2 and not result.interrupted
    assert [p.iteration for p in seen] == [1, 2] and seen[0].images == 2
    for progress in seen:
        scalars = progress.scalars
        assert scalars is not None
        for name in (*LOSS_NAMES, "total", "discriminator"):
            assert math.isfinite(scalars[f"loss/{name}"]), name
        assert scalars["loss/perceptual"] > 0 and scalars["loss/style"] > 0
        assert scalars["lr/discriminator"] == pytest.approx(scalars["lr/generator"] * 0.1)
        assert "gamma/landmark" in scalars and scalars["speed/images_per_second"] > 0
    # MultiStepLR x0.78 at iteration 1 (tiny.yaml's milestone)
    assert seen[0].scalars["lr/generator"] == pytest.approx(2.92e-4 * 0.78)
    validation = result.validation
    assert validation is not None and validation["images"] == 3
    for key in ("loss", "psnr_hole", "ssim_hole", "l1_hole", "nme"):
        assert math.isfinite(validation[key]), key
    assert result.checkpoint == run / "checkpoints" / "iter_00000002"
    assert (result.checkpoint / "config.yaml").is_file()
    assert load_config(result.checkpoint / "config.yaml") == config
    assert ckpt.load_checkpoint(result.checkpoint).iteration == 2
    info = json.loads((result.checkpoint / "info.json").read_text())
    assert info["validation"]["loss"] == pytest.approx(validation["loss"])
    assert result.best is not None and result.best["iteration"] == 2
    assert (run / "config.yaml").is_file() and list((run / "tb").glob("events.out.tfevents.*"))


def test_resume_after_one_iteration_equals_two_uninterrupted(overrides, tmp_path, random_vgg):
    all_losses = [*overrides, "loss.perceptual=0.1", "loss.style=250", "train.ema_decay=0.9"]
    config = load_config(TINY, all_losses)
    whole = _trainer(config, random_vgg, run_dir=tmp_path / "whole")
    whole.fit()
    first = _trainer(load_config(TINY, [*all_losses, "train.max_iterations=1"]), random_vgg,
                     run_dir=tmp_path / "split")
    first.fit()
    resumed = _trainer(config, random_vgg, run_dir=tmp_path / "split")
    resumed.load(ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "split")))
    assert resumed.iteration == 1 and resumed.samples_seen == 2
    resumed.fit()
    assert resumed.iteration == whole.iteration == 2
    pairs = ((whole.generator, resumed.generator), (whole.discriminator, resumed.discriminator),
             (whole.inference_generator, resumed.inference_generator))
    for a, b in pairs:
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), key  # bit for bit, buffers (BN, spectral norm u/v) included
    for a, b in ((whole.g_optimizer, resumed.g_optimizer),
                 (whole.d_optimizer, resumed.d_optimizer)):
        for sa, sb in zip(a.state_dict()["state"].values(), b.state_dict()["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert whole.g_scheduler.state_dict() == resumed.g_scheduler.state_dict()
    # every validation of the run, the one before the interruption included
    assert [h["iteration"] for h in resumed.validation_history] == [1, 2]
    assert [h["samples_seen"] for h in resumed.validation_history] == [2, 4]
    assert resumed.validation_history[-1] == whole.validation_history[-1]


def test_each_phase_updates_only_its_own_network(tiny_config, tmp_path):
    trainer = _trainer(tiny_config, run_dir=tmp_path)
    image, landmarks, mask = trainer.to_device(*next(iter(torch.utils.data.DataLoader(
        trainer.train_data, batch_size=2))))
    g_before = [p.detach().clone() for p in trainer.generator.parameters()]
    d_before = [p.detach().clone() for p in trainer.discriminator.parameters()]
    fake, lmk = trainer.generator(image * (1 - mask) + mask, mask)
    trainer.d_step(image, fake.detach())
    assert all(p.grad is None for p in trainer.generator.parameters())  # G frozen in the D phase
    assert all(p.grad is None for p in trainer.discriminator.parameters())  # freed after the step
    assert all(torch.equal(a, b) for a, b in zip(g_before, trainer.generator.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d_before, trainer.discriminator.parameters()))
    d_after = [p.detach().clone() for p in trainer.discriminator.parameters()]
    trainer.g_step(image, mask, fake, lmk, landmarks)
    # D frozen in the G phase: no gradient computed for it
    assert all(p.grad is None for p in trainer.discriminator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(d_after, trainer.discriminator.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(g_before, trainer.generator.parameters()))


def test_sigterm_finishes_the_step_writes_a_checkpoint_and_returns(overrides, tmp_path):
    config = load_config(TINY, [*overrides, "train.max_iterations=50",
                                "train.checkpoint_every=0", "train.val_every=0"])
    trainer = _trainer(config, run_dir=tmp_path / "run")
    previous = signal.getsignal(signal.SIGTERM)

    def kill_at_first(progress):
        if progress.iteration == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    result = trainer.fit(on_progress=kill_at_first)
    assert result.interrupted and result.iteration == 1
    assert result.checkpoint == tmp_path / "run" / "checkpoints" / "iter_00000001"
    assert ckpt.load_checkpoint(result.checkpoint).iteration == 1
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored


def test_validation_loss_leaves_out_the_adversarial_term():
    terms = {"l1": 1.0, "perceptual": 2.0, "style": 3.0, "tv": 4.0, "landmark": 5.0,
             "adversarial": 100.0}
    config = load_config(None)
    expected = 1.0 + 0.1 * 2.0 + 250 * 3.0 + 0.1 * 4.0 + 4.6e-4 * 5.0
    assert validation_loss(terms, config.loss) == pytest.approx(expected)


def test_sample_grid_shows_four_columns(tiny_config, tmp_path):
    trainer = _trainer(tiny_config, run_dir=tmp_path)
    batch = next(iter(torch.utils.data.DataLoader(trainer.val_data, batch_size=3)))
    grid = trainer.sample_grid(batch)
    assert grid.shape == (3, 3 * 32, 4 * 32) and 0 <= grid.min() and grid.max() <= 1


def test_no_discriminator_work_before_the_adversarial_start(overrides, tmp_path):
    config = load_config(TINY, [*overrides, "loss.adversarial_start=2",
                                "train.max_iterations=3"])
    trainer = _trainer(config, run_dir=tmp_path, checkpoints=False)
    d_before = [p.detach().clone() for p in trainer.discriminator.parameters()]
    batch = trainer.to_device(*next(iter(torch.utils.data.DataLoader(trainer.train_data,
                                                                      batch_size=2))))
    for _ in range(2):
        losses = trainer.train_step(*batch)
        assert losses["adversarial"] == 0 and losses["discriminator"] == 0
    assert all(torch.equal(a, b) for a, b in zip(d_before, trainer.discriminator.parameters()))
    losses = trainer.train_step(*batch)  # iteration 2: D trains, G meets its adversarial term
    assert losses["adversarial"] > 0
    assert not all(torch.equal(a, b) for a, b in zip(d_before,
                                                     trainer.discriminator.parameters()))


def test_a_resume_with_other_loss_weights_forgets_the_best_score(overrides, tmp_path):
    config = load_config(TINY, [*overrides, "train.max_iterations=1"])
    first = _trainer(config, run_dir=tmp_path)
    first.fit()
    assert math.isfinite(first.best_val_loss)
    checkpoint = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    same = _trainer(load_config(TINY, overrides), run_dir=tmp_path)
    same.load(checkpoint)
    assert same.best_val_loss == first.best_val_loss
    other = _trainer(load_config(TINY, [*overrides, "loss.landmark=0.01"]), run_dir=tmp_path)
    other.load(checkpoint)
    assert other.best_val_loss == math.inf


def test_a_resumed_run_takes_the_schedule_of_its_config(overrides, tmp_path):
    first = _trainer(load_config(TINY, [*overrides, "train.max_iterations=1"]), run_dir=tmp_path)
    first.fit()
    later = _trainer(load_config(TINY, [*overrides, "train.lr_milestones=[5, 9]",
                                        "train.lr_decay=0.25"]), run_dir=tmp_path)
    later.load(ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path)))
    assert later.g_scheduler.last_epoch == 1
    assert sorted(later.g_scheduler.milestones) == [5, 9] and later.d_scheduler.gamma == 0.25


def test_the_weight_average_follows_the_decay_and_is_what_validation_judges(overrides, tmp_path):
    config = load_config(TINY, [*overrides, "train.ema_decay=0.5", "train.max_iterations=2"])
    trainer = _trainer(config, run_dir=tmp_path)
    batch = trainer.to_device(*next(iter(torch.utils.data.DataLoader(trainer.train_data,
                                                                      batch_size=2))))
    trainer.train_step(*batch)  # the first update copies the weights
    first = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    ema = trainer.inference_generator
    assert ema is not trainer.generator and not ema.training
    assert all(torch.equal(first[k], v) for k, v in ema.state_dict().items())
    trainer.train_step(*batch)
    second = trainer.generator.state_dict()
    for key, value in ema.state_dict().items():
        if key.endswith(("_u", "_v", "running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(value, second[key]), key  # buffers follow the live weights
        else:
            assert torch.allclose(value, 0.5 * first[key] + 0.5 * second[key]), key
    one = trainer.evaluate_batch(*batch)["psnr_hole"]
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(0.5)
    assert not torch.allclose(trainer.evaluate_batch(*batch)["psnr_hole"], one)


def test_the_weight_average_is_checkpointed_resumed_and_exported(overrides, tmp_path):
    config = load_config(TINY, [*overrides, "train.ema_decay=0.9", "train.max_iterations=2"])
    trainer = _trainer(config, run_dir=tmp_path)
    trainer.fit()
    latest = ckpt.latest_checkpoint(tmp_path)
    assert ckpt.inference_generator_dir(latest) == latest / "generator_ema"
    loaded = ckpt.load_checkpoint(latest)
    resumed = _trainer(config, run_dir=tmp_path)
    resumed.load(loaded)
    for (key, a), b in zip(trainer.inference_generator.state_dict().items(),
                           resumed.inference_generator.state_dict().values()):
        assert torch.equal(a, b), key
    assert resumed.generator_ema.n_averaged == 1  # the next update averages, it does not copy
    # a run without the average resumed with one starts it from the loaded weights
    plain = _trainer(load_config(TINY, [*overrides, "train.max_iterations=1"]),
                     run_dir=tmp_path / "plain")
    plain.fit()
    plain_checkpoint = ckpt.latest_checkpoint(tmp_path / "plain")
    assert ckpt.inference_generator_dir(plain_checkpoint) == plain_checkpoint / "generator"
    gaining = _trainer(config, run_dir=tmp_path / "plain")
    gaining.load(ckpt.load_checkpoint(plain_checkpoint))
    assert gaining.generator_ema.n_averaged == 0


def test_a_weight_average_decay_outside_zero_to_one_is_refused(overrides):
    from inclg.config import ConfigError

    with pytest.raises(ConfigError, match="train.ema_decay"):
        _trainer(load_config(TINY, [*overrides, "train.ema_decay=1.5"]))


def test_batchnorm_statistics_are_recomputed_for_the_evaluated_weights(overrides, tmp_path):
    config = load_config(TINY, [*overrides, "train.ema_decay=0.5",
                                "train.bn_calibration_images=4", "train.max_iterations=2"])
    trainer = _trainer(config, run_dir=tmp_path)
    trainer.fit()
    ema = trainer.inference_generator
    from inclg.train.calibration import batchnorm_layers

    layer = batchnorm_layers(ema)[0]
    assert layer.momentum == 0.1 and not layer.training  # restored after the pass
    saved = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path)).generator_ema
    name = next(k for k in saved if k.endswith("running_mean"))
    assert torch.equal(saved[name], ema.state_dict()[name])
    live = trainer.generator.state_dict()[name]
    assert not torch.allclose(saved[name], live)  # the average's own statistics, not the live
    # the same statistics again from the same fixed faces, whatever the global RNG did since
    before = saved[name].clone()
    torch.rand(5)
    trainer._calibrated_at = None
    trainer.calibrate()
    assert torch.allclose(ema.state_dict()[name], before)
