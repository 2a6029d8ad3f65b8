"""The ImageNet VGG feature network behind the perceptual and style losses.

`VGGFeatures` keeps torchvision's exact ``features.N`` indices so torchvision state dicts load as
they are. Inputs are [0, 1] images fed *without* ImageNet mean/std normalisation, as the original
does (``normalize=True`` applies torchvision's normalisation instead). Finding, converting and
loading its weight files is `inclg.weights.vgg`'s job.

Layer names follow the VGG paper: ``relu3_4`` is the ReLU after the 4th convolution of block 3.
Which layers serve which loss, per architecture:

=====  =======================================  ==========================================
arch   perceptual (5 layers)                    style (4 layers)
=====  =======================================  ==========================================
vgg19  relu1_1 relu2_1 relu3_1 relu4_1 relu5_1  relu2_2 relu3_4 relu4_4 relu5_2 (original)
vgg16  relu1_1 relu2_1 relu3_1 relu4_1 relu5_1  relu2_2 relu3_3 relu4_3 relu5_2
=====  =======================================  ==========================================

VGG16 has no relu3_4 / relu4_4; the last ReLU of those blocks (relu3_3 / relu4_3) takes their
place, so the style term stays "the deepest activation of blocks 3 and 4". Loss values with VGG16
are not numerically comparable to the original's VGG19 ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from inclg.model.io import WeightsError

ARCHS = ("vgg19", "vgg16")

# torchvision's `cfgs["E"]` (VGG19) and `cfgs["D"]` (VGG16): conv widths, "M" = 2x2 max-pool.
_CFG: dict[str, tuple[int | str, ...]] = {
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512, "M"),
}  # fmt: skip

PERCEPTUAL_LAYERS: dict[str, tuple[str, ...]] = {
    "vgg19": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    "vgg16": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
}
STYLE_LAYERS: dict[str, tuple[str, ...]] = {
    "vgg19": ("relu2_2", "relu3_4", "relu4_4", "relu5_2"),
    "vgg16": ("relu2_2", "relu3_3", "relu4_3", "relu5_2"),
}

# torchvision's ImageNet input normalisation, used only with normalize=True.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

def layer_indices(arch: str) -> dict[str, int]:
    """Name -> index in torchvision's ``features`` Sequential for every conv, ReLU and pool.

    For example VGG19: conv1_1 -> 0, relu1_1 -> 1, pool1 -> 4, relu3_4 -> 17, relu5_2 -> 31.
    """
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for width in layer_widths(arch):
        if width == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return names


def loss_layers(arch: str) -> tuple[str, ...]:
    """Every activation the perceptual and style losses read, shallowest first."""
    indices = layer_indices(arch)
    return tuple(
        sorted(
            set(PERCEPTUAL_LAYERS[arch]) | set(STYLE_LAYERS[arch]), key=lambda name: indices[name]
        )
    )


def layer_widths(arch: str) -> tuple[int | str, ...]:
    """Conv widths of `arch` in order, "M" for each 2x2 max-pool (torchvision's cfg)."""
    if arch not in _CFG:
        raise ValueError(f"unknown VGG architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    return _CFG[arch]


class VGGFeatures(nn.Module):
    """Frozen ImageNet VGG trunk returning named ReLU activations, e.g. ``{"relu1_1": [B,64,H,W]}``.

    Built with torchvision's layer order and indices and cut after the deepest requested layer,
    so no work is spent on layers no loss reads. It has no gradients of its own and is always in
    eval mode. Without `pretrained_state` the weights are random (for tests).
    """

    def __init__(
        self,
        arch: str = "vgg19",
        layers: Sequence[str] | None = None,
        *,
        normalize: bool = False,
        pretrained_state: Mapping[str, torch.Tensor] | None = None,
        source: str = "state dict",
    ) -> None:
        super().__init__()
        indices = layer_indices(arch)
        self.arch = arch
        self.layers = tuple(layers) if layers is not None else loss_layers(arch)
        unknown = [n for n in self.layers if not n.startswith("relu") or n not in indices]
        if unknown or not self.layers:
            relus = ", ".join(n for n in indices if n.startswith("relu"))
            raise ValueError(
                f"{arch} has no layer(s) {unknown or '(none requested)'}; pick from {relus}"
            )
        self.normalize = normalize
        self._taps = {indices[name]: name for name in self.layers}

        modules: list[nn.Module] = []
        in_channels = 3
        for width in layer_widths(arch):
            if width == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(width, int)
                modules.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=1))
                modules.append(nn.ReLU())  # not in-place: a returned activation stays intact
                in_channels = width
        self.features = nn.Sequential(*modules[: max(self._taps) + 1])
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if pretrained_state is not None:
            self.load_features(pretrained_state, source)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always eval: a parent module's ``.train()`` must not change the loss network."""
        return super().train(False)

    def load_features(self, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
        """Copy torchvision-style ``features.N.weight/bias`` tensors; deeper layers and the
        classifier in a full torchvision file are ignored."""
        own = self.state_dict()
        missing = [key for key in own if key not in state]
        if missing:
            more = " ..." if len(missing) > 4 else ""
            raise WeightsError(
                f"{source}: not a torchvision {self.arch} state dict; "
                f"missing {', '.join(missing[:4])}{more}"
            )
        for key, tensor in own.items():
            if tuple(state[key].shape) != tuple(tensor.shape):
                raise WeightsError(
                    f"{source}: {key} has shape {tuple(state[key].shape)}, "
                    f"{self.arch} needs {tuple(tensor.shape)}"
                )
        self.load_state_dict({key: state[key] for key in own})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """[B, 3, H, W] images in [0, 1] -> the requested activations by name."""
        x = x.to(self.mean.dtype)
        if self.normalize:
            x = (x - self.mean) / self.std  # [B, 3, H, W]
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._taps:
                out[self._taps[index]] = x  # [B, C_l, H_l, W_l]
        return out
