"""Every weight file the project uses, found, converted and verified in one place; this module is
the bundled default model. Nothing is ever downloaded: a missing file is an error that says how to
get it.

- `inclg.weights` (here): which generator `inclg predict` runs — the bundled default model, or any
  saved model folder;
- `inclg.weights.vgg`: the ImageNet VGG of the perceptual and style losses;
- `inclg.weights.lpips`: the LPIPS metric's VGG16 + linear layers;
- `inclg.weights.inception`: the FID Inception network;
- `inclg.weights.original`: checkpoints of the original INCLG code.

The default model lives in this package (``inclg/weights/default/``: config.json + safetensors).
Without it the paper's generator is built from a fixed seed instead, so the command works end to
end; such a model is marked untrained and every output says so (the image inside the mask is
noise).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from inclg.model.generator import Generator
from inclg.model.io import CONFIG_NAME, WeightsError, read_model_info

DEFAULT_DIR = Path(__file__).parent / "default"
UNTRAINED_ID = "inclg-untrained-seed0"
UNTRAINED_SEED = 0
UNTRAINED_WARNING = (
    "UNTRAINED MODEL: this installation lacks the bundled INCLG weights (random weights, "
    f"{UNTRAINED_ID}); the image inside the mask is noise, not a prediction. Reinstall inclg "
    "or give a trained model with --weights DIR"
)


@dataclass(frozen=True)
class LoadedModel:
    """A generator with what the outputs must record about it."""

    generator: Generator
    model_id: str  # config.json's metadata.model_id, the imported file, or the folder name
    checksum: str  # sha256 of the weights (see `load_model`)
    trained: bool
    source: str  # the folder it was read from, or "bundled"

    @property
    def warning(self) -> str | None:
        """The sentence every output carries when the model is not trained."""
        if self.trained:
            return None
        return UNTRAINED_WARNING if self.model_id == UNTRAINED_ID else (
            f"UNTRAINED MODEL ({self.model_id}): its config.json says it is not trained; "
            "the image inside the mask is not a prediction")


def state_checksum(module: torch.nn.Module) -> str:
    """sha256 over every state-dict entry's name, dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def untrained_generator() -> Generator:
    """The paper's generator initialised from seed 0, without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        return Generator()


def has_model(directory: Path) -> bool:
    """True if `directory` holds a saved model (its config.json)."""
    return (directory / CONFIG_NAME).is_file()


def _folder_checksum(info: dict) -> str:
    """The weight file's sha256 (what `sha256sum model.safetensors` prints); for a sharded
    model, the sha256 of its "name sha256" lines."""
    hashes = info.get("sha256", {})
    if len(hashes) == 1:
        return next(iter(hashes.values()))
    lines = "".join(f"{name} {hashes[name]}\n" for name in sorted(hashes))
    return hashlib.sha256(lines.encode()).hexdigest()


def _folder_id(directory: Path, metadata: dict) -> str:
    if isinstance(metadata.get("model_id"), str):
        return metadata["model_id"]
    if isinstance(metadata.get("imported_from"), str):
        iteration = metadata.get("original_iteration")
        suffix = f" iteration {iteration}" if iteration is not None else ""
        return f"original {metadata['imported_from']}{suffix}"
    return directory.resolve().name


def load_model(spec: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """The generator named by `spec`: None or "default" for the bundled model, else a folder
    written by `save_pretrained` or `inclg weights import-original`.

    A folder is trusted to hold a trained model unless its config.json metadata says
    ``"trained": false``. Weight files are checked against their recorded sha256 on loading.
    """
    if spec is None or str(spec) == "default":
        if not has_model(DEFAULT_DIR):
            generator = untrained_generator()
            return LoadedModel(generator.to(device).eval(), UNTRAINED_ID,
                               state_checksum(generator), False, "bundled")
        directory = DEFAULT_DIR
    else:
        directory = Path(spec)
    info = read_model_info(directory)
    if info.get("class") != "Generator":
        raise WeightsError(f"{directory} holds a {info.get('class')!r}, not an INCLG generator; "
                           "give the folder written by save_pretrained or import-original")
    generator = Generator.from_pretrained(directory, device=device).eval()
    metadata = info.get("metadata") or {}
    source = "bundled" if directory == DEFAULT_DIR else str(directory)
    return LoadedModel(generator, _folder_id(directory, metadata), _folder_checksum(info),
                       bool(metadata.get("trained", True)), source)
