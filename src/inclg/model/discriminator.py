"""PatchGAN discriminator with spectral norm and self-attention (the original INCLG's)."""

from __future__ import annotations

import torch
from torch import nn

from inclg.config import DiscriminatorConfig
from inclg.model.io import PretrainedMixin
from inclg.model.layers import Attention, spectral_conv


def _block(c_in: int, c_out: int, stride: int, activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [spectral_conv(c_in, c_out, 4, stride, padding=1, bias=False)]
    if activation:
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class Discriminator(PretrainedMixin, nn.Module):
    """Scores 70x70 patches of a [B, 3, 256, 256] image; returns logits [B, 1, 30, 30].

    The original applies a sigmoid for lsgan/nsgan; here the losses do (see `inclg.losses`), so
    the network stays numerically safe under bf16 autocast. `Discriminator()` has 2,767,906
    parameters, the original's minus its never-used attention fusion block; 2,767,905 are used
    (the attention's `alpha` scales a long-range input the discriminator never has; training
    freezes it).
    """

    config_class = DiscriminatorConfig

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        c = config.channels
        self.conv1 = _block(3, c, 2)
        self.conv2 = _block(c, 2 * c, 2)
        self.attention = Attention(2 * c, long_range=False)
        self.conv3 = _block(2 * c, 4 * c, 2)
        self.conv4 = _block(4 * c, 8 * c, 1)
        self.conv5 = _block(8 * c, 1, 1, activation=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(image))  # [B, 2C, H/4, W/4]
        x = self.attention(x)
        return self.conv5(self.conv4(self.conv3(x)))  # [B, 1, H/8 - 2, W/8 - 2]
