"""LPIPS (Zhang et al. 2018, "v0.1" VGG variant) re-implemented on our `VGGFeatures("vgg16")`.

The `lpips` package imports torchvision, which this project does not depend on, so the metric is
rebuilt here: ImageNet VGG16 activations relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, each
unit-normalised over channels, squared differences weighted by LPIPS's learned non-negative 1x1
"linear" layers, averaged over space and summed over layers.

Its weight file is found, converted and loaded by `inclg.weights.lpips` (`load_lpips`).
"""

from __future__ import annotations

import torch
from torch import nn

from inclg.model.io import WeightsError
from inclg.model.vgg import VGGFeatures

LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS's ScalingLayer, applied to inputs already scaled to [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # lpips.normalize_tensor's epsilon


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
                                       f"got {got}; recreate it with `inclg weights convert-lpips`")
                self.lins[k].data.copy_(weight.float())
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The unit-normalised activations of [B, 3, H, W] images in [0, 1], one per layer:
        computed once for an image that several others are compared with (the evaluation's
        ground truth against every method)."""
        x = x.float() * 2 - 1  # [0, 1] -> [-1, 1], as lpips(normalize=True)
        feats = self.vgg((x - self.shift) / self.scale)
        return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + _EPS)
                for f in (feats[name] for name in LPIPS_LAYERS)]

    def distance(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS [B] between two images' `features`."""
        total = torch.zeros(a[0].shape[0], device=a[0].device)
        for lin, fa, fb in zip(self.lins, a, b, strict=True):
            total = total + ((fa - fb) ** 2 * lin).sum(1).mean((1, 2))
        return total

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        both = self.features(torch.cat([a, b]))
        return self.distance([f[: a.shape[0]] for f in both], [f[a.shape[0]:] for f in both])
