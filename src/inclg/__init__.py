"""INCLG: inpainting for non-cleft lip generation with a multi-task (image + 68 landmarks) network.

Conventions everywhere: images are float tensors [B, 3, H, W] in [0, 1]; masks [B, 1, H, W] with
1 = hole; landmarks [B, 68, 2] as (x, y) pixels of the (aligned 256x256) image.

The names below are imported on first use, so `import inclg` (and `inclg --help`) costs nothing:
torch, OpenCV and the inference pipeline load only when a command or a name needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "inclg.config",
    "InclgError": "inclg.errors",
    "ConfigError": "inclg.config",
    "load_config": "inclg.config",
    "Predictor": "inclg.infer.pipeline",
    "measure": "inclg.measurements",
    "Discriminator": "inclg.model.discriminator",
    "Generator": "inclg.model.generator",
    "WeightsError": "inclg.model.io",
    "import_original": "inclg.weights.original",
    "composite": "inclg.model.masking",
    "masked_input": "inclg.model.masking",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from inclg.config import Config, ConfigError, load_config  # noqa: F401
    from inclg.errors import InclgError  # noqa: F401
    from inclg.infer.pipeline import Predictor  # noqa: F401
    from inclg.measurements import measure  # noqa: F401
    from inclg.model.discriminator import Discriminator  # noqa: F401
    from inclg.model.generator import Generator  # noqa: F401
    from inclg.model.io import WeightsError  # noqa: F401
    from inclg.weights.original import import_original  # noqa: F401
    from inclg.model.masking import composite, masked_input  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'inclg' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
