"""INCLG: inpainting for non-cleft lip generation with a multi-task (image + 68 landmarks) network.

Conventions everywhere: images are float tensors [B, 3, H, W] in [0, 1]; masks [B, 1, H, W] with
1 = hole; landmarks [B, 68, 2] as (x, y) pixels of the (aligned 256x256) image.
"""

from inclg.config import Config, ConfigError, load_config
from inclg.infer.pipeline import Predictor
from inclg.model.discriminator import Discriminator
from inclg.model.generator import Generator
from inclg.model.io import WeightsError, import_original
from inclg.model.masking import composite, masked_input

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Discriminator",
    "Generator",
    "Predictor",
    "WeightsError",
    "composite",
    "import_original",
    "load_config",
    "masked_input",
]
