"""Shared fixtures for the inference tests: a real face photo, a tiny saved model, a predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inclg.config import GeneratorConfig
from inclg.io.images import load_rgb
from inclg.model.generator import Generator

PHOTO = Path(__file__).parent / "fixtures" / "face_300x240.jpg"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generator small enough to run in milliseconds, saved like any model folder."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Generator(GeneratorConfig(channels=8, residual_blocks=1))
    return model.save_pretrained(tmp_path_factory.mktemp("tiny"), metadata={"model_id": "tiny"})


@pytest.fixture(scope="session")
def predictor(tiny_weights: Path):
    from inclg.infer import Predictor

    return Predictor.from_pretrained(tiny_weights)


@pytest.fixture(scope="session")
def pixels() -> np.ndarray:
    """The fixture photo as the pipeline sees it: [240, 300, 3] uint8 RGB."""
    return load_rgb(PHOTO)
