"""Tiny on-disk data, the tiny config and a random VGG16 file: training tests need no downloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inclg.config import Config, load_config
from inclg.data.filelists import write_flist
from inclg.data.landmarks import save_landmarks
from inclg.io.images import save_image
from inclg.model.vgg import VGGFeatures

TINY = Path(__file__).parents[2] / "configs" / "tiny.yaml"
SIZE = 32


@pytest.fixture
def data_lists(tmp_path: Path) -> dict[str, str]:
    """6 training and 3 validation faces (32x32 PNG + landmarks) and 2 masks, as file lists."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    folder.mkdir()
    masks = []
    for i, (top, left) in enumerate(((4, 4), (12, 10))):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[top : top + 14, left : left + 16] = 255
        masks.append(folder / f"mask{i}.png")
        save_image(masks[-1], mask)
    lists: dict[str, str] = {}
    for split, count in (("train", 6), ("val", 3)):
        images, landmarks = [], []
        for i in range(count):
            images.append(folder / f"{split}{i}.png")
            save_image(images[-1], rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8))
            landmarks.append(folder / f"{split}{i}.txt")
            save_landmarks(landmarks[-1], rng.uniform(4, SIZE - 4, (68, 2)))
        for kind, items in (("images", images), ("landmarks", landmarks), ("masks", masks)):
            write_flist(folder / f"{split}_{kind}.flist", items)
            lists[f"data.{split}_{kind}"] = str(folder / f"{split}_{kind}.flist")
    return lists


@pytest.fixture
def overrides(data_lists: dict[str, str], tmp_path: Path) -> list[str]:
    """configs/tiny.yaml overrides: the tiny data, a run folder, no feature network."""
    return [f"{k}={v}" for k, v in data_lists.items()] + [
        f"train.run_dir={tmp_path / 'run'}", "loss.perceptual=0", "loss.style=0"]


@pytest.fixture
def tiny_config(overrides: list[str]) -> Config:
    return load_config(TINY, overrides)


@pytest.fixture(scope="session")
def vgg16_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised VGG16 in the converted-weights format (for `loss.feature_weights`)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg16_random.safetensors"
    save_file(VGGFeatures("vgg16").state_dict(), str(path))
    return path


@pytest.fixture(scope="session")
def random_vgg() -> VGGFeatures:
    torch.manual_seed(0)
    return VGGFeatures("vgg16")
