from pathlib import Path

import pytest

from inclg.config import Config, ConfigError, load_config

DEFAULT_YAML = Path(__file__).parent.parent / "configs" / "default.yaml"


def test_defaults_are_the_originals():
    c = Config()
    assert (c.train.lr, c.train.d2g_lr, c.train.betas) == (2.92e-4, 0.1, (0.0, 0.9))
    assert c.train.lr_decay == 0.78
    assert c.train.lr_milestones == (20000, 40000, 60000, 80000, 100000, 120000)
    assert c.train.batch_size == 4
    weights = (c.loss.l1, c.loss.style, c.loss.perceptual, c.loss.adversarial, c.loss.tv, c.loss.landmark)
    assert weights == (1.0, 250.0, 0.1, 0.01, 0.1, 4.6e-4)
    assert c.loss.gan_type == "lsgan"
    assert c.generator.residual_blocks == 7


def test_shipped_default_yaml_equals_the_dataclass_defaults():
    assert load_config(DEFAULT_YAML) == Config()


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  lr: 1e-4\n  batch_size: 16\nloss:\n  gan_type: hinge\n")
    c = load_config(path, ["train.batch_size=8", "train.betas=[0.5, 0.99]", "data.train_images=a.flist"])
    assert c.train.lr == 1e-4 and c.train.batch_size == 8 and c.train.betas == (0.5, 0.99)
    assert c.loss.gan_type == "hinge" and c.data.train_images == "a.flist"
    assert c.loss.style == 250.0  # untouched keys keep their defaults


def test_save_and_reload_round_trip(tmp_path):
    c = load_config(None, ["train.max_iterations=10", "generator.channels=8"])
    c.save(tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == c


@pytest.mark.parametrize("override,message", [
    ("train.lrr=1", "did you mean 'lr'"),
    ("train.batch_size=four", "expected an integer"),
    ("train.batch_size=2.5", "expected an integer"),
    ("train.betas=[1]", "expected 2 values"),
    ("train.lr", "key=value"),
    ("nosection.x=1", "unknown config key 'nosection'"),
    ("data.flip=maybe", "expected true or false"),
    ("loss.gan_type=wgan", "not one of lsgan, nsgan, hinge"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)
    bad.write_text("train: {lr: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(bad)
