"""Weights on disk: safetensors + JSON config (`save_pretrained` / `from_pretrained`), and import of
checkpoints written by the original INCLG code.

Safetensors holds no code, so loading a model never executes anything from the file; the
checksums in config.json catch a truncated or swapped weight file before it gives silent garbage.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Self

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from inclg.config import ConfigError, from_dict
from inclg.fileio import atomic_path, atomic_write_text, sha256_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
FORMAT_VERSION = 1


class WeightsError(ValueError):
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


# --- Checkpoints of the original INCLG implementation ----------------------------------------

# (pattern, replacement) applied in order to each original key; None drops the key after the
# checks in `_convert_original`. Spectral-norm suffixes are renamed afterwards.
_GENERATOR_RULES: list[tuple[str, str | None]] = [
    (r"^(encoder[123]\.\d+|decoder[12]\.\d+)\.gate_conv\.", r"\1.conv."),
    (r"^fushion1\.", "fuse1."),
    (r"^fushion1_1\.", "fuse2."),
    (r"^fushion2\.", "fuse3."),
    (r"^middle\.(\d+)\.conv_block\.1\.", r"middle.\1.conv1."),
    (r"^middle\.(\d+)\.conv_block\.5\.", r"middle.\1.conv2."),
    (r"^auto_attn\.model\.(model|shortcut)\.", None),  # the same modules registered twice
    (r"^auto_attn\.model\.bypass\.", "attention.fuse.shortcut."),
    (r"^auto_attn\.model\.", "attention.fuse."),
    (r"^auto_attn\.query_conv\.", "attention.query."),
    (r"^auto_attn\.", "attention."),
    (r"^conv_afteratt_first\.", "landmark_head.expand."),
    (r"^conv_afteratt_node1\.", "landmark_head.node1."),
    (r"^conv_afteratt_node2\.", "landmark_head.node2."),
    (r"^conv_afterarr_node3\.", "landmark_head.node3."),
    (r"^prelu\.", "landmark_head.prelu."),
    (r"^fc_landmark\.", "landmark_fc."),
    (r"^before_share1\.", None),  # built but never used by the original's forward pass
]
_DISCRIMINATOR_RULES: list[tuple[str, str | None]] = [
    (r"^features\.", None),  # the same module as conv1
    (r"^auto_attn\.model\.", None),  # fusion ResBlock never used: D has no long-range input
    (r"^auto_attn\.query_conv\.", "attention.query."),
    (r"^auto_attn\.", "attention."),
]
_SPECTRAL = [(r"\.weight_orig$", ".parametrizations.weight.original"),
             (r"\.weight_u$", ".parametrizations.weight.0._u"),
             (r"\.weight_v$", ".parametrizations.weight.0._v")]
# Duplicate registrations in the original and the key they must equal.
_DUPLICATES = [(r"^auto_attn\.model\.model\.1\.", "auto_attn.model.conv1."),
               (r"^auto_attn\.model\.model\.3\.", "auto_attn.model.conv2."),
               (r"^auto_attn\.model\.shortcut\.0\.", "auto_attn.model.bypass."),
               (r"^features\.0\.", "conv1.0.")]

# Parameters the original builds but never uses; checked so a wrong file is not half-imported.
ORIGINAL_DEAD_PARAMETERS = {"generator": 524_416, "discriminator": 475_520}


@dataclasses.dataclass
class ImportReport:
    """What an import of an original checkpoint kept and dropped, for the user to see."""

    iteration: int | None
    imported_tensors: int
    dropped_duplicates: list[str]
    dropped_dead: list[str]
    dead_parameters: int


def _is_parameter_key(key: str) -> bool:
    """True for keys that hold parameters (not buffers such as running stats or SN u/v)."""
    return not re.search(r"(running_mean|running_var|num_batches_tracked|weight_u|weight_v)$", key)


def _convert_original(state: dict[str, torch.Tensor], kind: str,
                      source: str) -> tuple[dict[str, torch.Tensor], ImportReport]:
    rules = _GENERATOR_RULES if kind == "generator" else _DISCRIMINATOR_RULES
    converted: dict[str, torch.Tensor] = {}
    duplicates: list[str] = []
    dead: list[str] = []
    dead_params = 0
    for key, tensor in state.items():
        twin = next((re.sub(p, t, key) for p, t in _DUPLICATES if re.match(p, key)), None)
        if twin is not None and twin in state:
            if not torch.equal(state[twin], tensor):
                raise WeightsError(f"{source}: {key} should be the same tensor as {twin} but differs")
            duplicates.append(key)
            continue
        new_key: str | None = key
        for pattern, replacement in rules:
            if re.match(pattern, key):
                new_key = None if replacement is None else re.sub(pattern, replacement, key)
                break
        if new_key is None:
            dead.append(key)
            dead_params += tensor.numel() if _is_parameter_key(key) else 0
            continue
        for pattern, replacement in _SPECTRAL:
            new_key = re.sub(pattern, replacement, new_key)
        converted[new_key] = tensor
    if dead_params != ORIGINAL_DEAD_PARAMETERS[kind]:
        raise WeightsError(f"{source}: expected {ORIGINAL_DEAD_PARAMETERS[kind]:,} unused parameters in "
                           f"an original {kind} checkpoint, found {dead_params:,}; is this the "
                           f"original INCLG {kind}?")
    report = ImportReport(None, len(converted), duplicates, dead, dead_params)
    return converted, report


def _read_original(src: str | Path | dict[str, Any], kind: str) -> tuple[dict[str, torch.Tensor], int | None, str]:
    """The state dict inside an original checkpoint file ({"iteration", "generator"} etc.)."""
    if isinstance(src, dict):
        blob: Any = src
        source = f"original {kind} state dict"
    else:
        path = Path(src)
        source = str(path)
        if not path.is_file():
            raise WeightsError(f"checkpoint {path} does not exist")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a bad or unsafe file
            raise WeightsError(f"{path} cannot be read as a PyTorch checkpoint of tensors: "
                               f"{str(err).splitlines()[0]}") from None
    if not isinstance(blob, dict):
        raise WeightsError(f"{source} holds a {type(blob).__name__}, not a checkpoint dict")
    iteration = blob.get("iteration") if isinstance(blob.get("iteration"), int) else None
    state = blob.get(kind, blob)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{source} has no '{kind}' state dict of tensors")
    if state and all(key.startswith("module.") for key in state):
        # saved from a DataParallel / DistributedDataParallel wrapper (the original's multi-GPU
        # training): the same keys behind a "module." prefix
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state, iteration, source


def import_original(src: str | Path | dict[str, Any], model: nn.Module,
                    kind: str) -> ImportReport:
    """Load an original INCLG checkpoint (`InpaintingModel_gen.pth` / `_dis.pth`) into `model`.

    The file is read with ``torch.load(weights_only=True)``: no code from it is executed. Keys are
    renamed to ours, duplicate registrations are checked equal and dropped, and the unused layers
    the original builds (524,416 generator / 475,520 discriminator parameters) are verified by
    size and dropped; every remaining key and shape must match.
    """
    state, iteration, source = _read_original(src, kind)
    converted, report = _convert_original(state, kind, source)
    load_strict(model, converted, source)
    report.iteration = iteration
    return report
