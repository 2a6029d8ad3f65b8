"""Shared test options: `--device cuda` runs the device-aware tests on a GPU (default: cpu); tests
marked `dlib` skip without the dlib extra."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="torch device for device-aware tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `dlib` skip, saying why, when the dlib extra is not installed."""
    from inclg.data.landmarks import MissingBackendError, check_backend

    try:
        check_backend("dlib")
    except MissingBackendError as err:
        skip = pytest.mark.skip(reason=f"the dlib extra is not installed: {err}")
        for item in items:
            if "dlib" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.fail(f"--device {name} given but CUDA is not available")
    return torch.device(name)


KEYS_FILE = Path(__file__).parent / "fixtures" / "original_checkpoint_keys.txt"
# Keys the original registers twice (same module under two names) and the name they share.
TWINS = {"auto_attn.model.model.1.": "auto_attn.model.conv1.",
         "auto_attn.model.model.3.": "auto_attn.model.conv2.",
         "auto_attn.model.shortcut.0.": "auto_attn.model.bypass.",
         "features.0.": "conv1.0."}


def original_keys() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    sections: dict[str, list] = {}
    current = None
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("["):
            current = line[1:line.index("]")]
            sections[current] = []
        elif current and line.strip() and not line.startswith("#"):
            key, shape = line.rsplit(" (", 1)
            sections[current].append((key, tuple(int(s) for s in shape.rstrip(",)").split(",") if s)))
    return sections


def _synthetic_original(kind: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the original's key names and shapes, twins sharing one tensor."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in original_keys()[kind]:
        twin = next((key.replace(a, b, 1) for a, b in TWINS.items() if key.startswith(a)), None)
        if twin in state:
            state[key] = state[twin]
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    return state


@pytest.fixture
def original_state() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory for state dicts shaped like the original INCLG code's checkpoints."""
    return _synthetic_original

