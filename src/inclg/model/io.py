"""A module's weights on disk: safetensors + JSON config (`save_pretrained` / `from_pretrained`).
(Importing the original code's checkpoints is `inclg.weights.original`.)

Safetensors holds no code, so loading a model never executes anything from the file; the
checksums in config.json catch a truncated or swapped weight file before it gives silent garbage.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Self

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from inclg.config import ConfigError, from_dict
from inclg.errors import InclgError
from inclg.io.files import atomic_path, atomic_write_text, sha256_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
FORMAT_VERSION = 1


class WeightsError(InclgError, ValueError):
    """A weight file or folder is missing, corrupt or belongs to another model."""


def _shards(state: dict[str, torch.Tensor], max_bytes: int | None) -> list[dict[str, torch.Tensor]]:
    """Split a state dict into groups of at most `max_bytes` (one group when None)."""
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if max_bytes is not None and groups[-1] and size + nbytes > max_bytes:
            groups.append({})
            size = 0
        groups[-1][key] = tensor
        size += nbytes
    return groups


class PretrainedMixin:
    """`save_pretrained(dir)` / `from_pretrained(dir)` for modules built from one config dataclass."""

    config_class: type
    config: Any

    def save_pretrained(self, directory: str | Path, *, dtype: torch.dtype | None = None,
                        max_shard_bytes: int | None = None,
                        metadata: dict[str, Any] | None = None) -> Path:
        """Write weights (optionally cast to `dtype`, e.g. fp16, and split into shards) + config.json.

        Every file is written atomically; config.json, which holds the checksums, is written last.
        """
        assert isinstance(self, nn.Module)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {}
        for key, tensor in self.state_dict().items():
            tensor = tensor.detach().to("cpu")
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            state[key] = tensor.contiguous()
        groups = _shards(state, max_shard_bytes)
        if len(groups) == 1:
            names = [WEIGHTS_NAME]
        else:
            names = [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
        checksums = {}
        for name, group in zip(names, groups):
            with atomic_path(directory / name) as tmp:
                save_file(group, str(tmp), metadata={"format": "pt"})
            checksums[name] = sha256_file(directory / name)
        if len(groups) > 1:
            weight_map = {key: name for name, group in zip(names, groups) for key in group}
            atomic_write_text(directory / INDEX_NAME, json.dumps({"weight_map": weight_map}, indent=1))
        else:
            (directory / INDEX_NAME).unlink(missing_ok=True)
        for stale in directory.glob("model*.safetensors"):
            if stale.name not in checksums:
                stale.unlink()
        info = {
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "config": dataclasses.asdict(self.config),
            "dtype": str(dtype or next(iter(state.values())).dtype).removeprefix("torch."),
            "sha256": checksums,
            "metadata": metadata or {},
        }
        atomic_write_text(directory / CONFIG_NAME, json.dumps(info, indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu",
                        verify: bool = True) -> Self:
        """Build the model from config.json and load its weights (fp16 files are upcast)."""
        directory = Path(directory)
        info = read_model_info(directory)
        if info.get("class") != cls.__name__:
            raise WeightsError(f"{directory / CONFIG_NAME} describes a {info.get('class')!r}, "
                               f"not a {cls.__name__}")
        try:
            config = from_dict(cls.config_class, info.get("config", {}), "config")
        except ConfigError as err:
            raise WeightsError(f"{directory / CONFIG_NAME}: {err}") from None
        model = cls(config)  # type: ignore[call-arg]
        state = load_state(directory, info if verify else None)
        load_strict(model, state, str(directory))  # type: ignore[arg-type]
        return model.to(device)  # type: ignore[attr-defined,return-value]


def read_model_info(directory: Path) -> dict[str, Any]:
    """The parsed config.json of a saved model folder, with clear errors."""
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise WeightsError(f"model folder {directory} does not exist")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"{directory} is not a saved INCLG model: {CONFIG_NAME} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{path} cannot be read: {err}") from None
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{path} is not an INCLG model config (format_version {FORMAT_VERSION})")
    return info


def load_state(directory: Path, info: dict[str, Any] | None) -> dict[str, torch.Tensor]:
    """Read every weight file of a model folder; with `info`, check each file's sha256 first."""
    files = sorted(directory.glob("model*.safetensors"))
    if info is not None:
        expected = info.get("sha256", {})
        files = [directory / name for name in expected]
        for path in files:
            if not path.is_file():
                raise WeightsError(f"weight file {path} is missing")
            if sha256_file(path) != expected[path.name]:
                raise WeightsError(f"weight file {path} is corrupt or was replaced (sha256 mismatch); "
                                   "save or copy the model folder again")
    if not files:
        raise WeightsError(f"no weight files (model*.safetensors) in {directory}")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            state.update(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError) as err:
            raise WeightsError(f"weight file {path} cannot be read: {err}") from None
    return state


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict with every key and shape checked, and a readable error when they differ."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
        raise WeightsError(f"weights from {source} do not fit {type(model).__name__} "
                           f"with this config: {'; '.join(parts)}")
    model.load_state_dict(state)
