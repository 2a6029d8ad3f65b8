"""Import of checkpoints written by the original INCLG code (`InpaintingModel_gen.pth` /
`_dis.pth`): read with ``torch.load(weights_only=True)`` so no code in them runs, keys renamed to
ours, duplicate registrations checked equal, dead layers verified by size and dropped.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inclg.model.io import WeightsError, load_strict


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
