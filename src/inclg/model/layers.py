"""Building blocks of the INCLG networks (see docs/ARCHITECTURE.md).

Gated convolutions let the encoder learn where the hole is; dilated residual blocks widen the
receptive field; short+long-range attention copies context from the known region into the hole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

INIT_STD = 0.02  # the original's N(0, 0.02) initialisation of every conv and linear weight
SN_EPS = 1e-12


class SpectralNorm(nn.Module):
    """Spectral normalisation as the original INCLG computes it (`torch.nn.utils.spectral_norm`,
    the hook-based API): each training forward runs one power-iteration step v = N(Wᵀu),
    u = N(Wv) — v first — then divides the weight by σ = uᵀWv. PyTorch's parametrization updates
    u first, which changes a train-mode forward from the same stored u, v (by up to 0.46 after one
    step): fine-tuning an imported original checkpoint must follow the original exactly.

    Registered as a parametrization with the same buffers (``_u``, ``_v``) and initialisation
    (15 power iterations) as `torch.nn.utils.parametrizations.spectral_norm`, so state dicts are
    interchangeable.
    """

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1) -> None:
        super().__init__()
        self.n_power_iterations = n_power_iterations
        matrix = weight.detach().flatten(1)  # [out, in * k * k]
        u = F.normalize(matrix.new_empty(matrix.shape[0]).normal_(0, 1), dim=0, eps=SN_EPS)
        v = F.normalize(matrix.new_empty(matrix.shape[1]).normal_(0, 1), dim=0, eps=SN_EPS)
        self.register_buffer("_u", u)
        self.register_buffer("_v", v)
        with torch.no_grad():  # a good estimate before the first step, as PyTorch's does
            for _ in range(15):
                self._u = F.normalize(matrix @ self._v, dim=0, eps=SN_EPS, out=self._u)
                self._v = F.normalize(matrix.t() @ self._u, dim=0, eps=SN_EPS, out=self._v)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # In the weight's own precision, also under autocast (the conv casts the result).
        with torch.autocast(weight.device.type, enabled=False):
            matrix = weight.flatten(1)
            if self.training:
                with torch.no_grad():
                    for _ in range(self.n_power_iterations):
                        self._v = F.normalize(matrix.t() @ self._u, dim=0, eps=SN_EPS,
                                              out=self._v)
                        self._u = F.normalize(matrix @ self._v, dim=0, eps=SN_EPS, out=self._u)
            u, v = self._u.clone(), self._v.clone()  # autograd needs this step's values
            return weight / torch.dot(u, matrix @ v)


def spectral_norm(module: nn.Module) -> nn.Module:
    """Register `SpectralNorm` on ``module.weight`` (keys ``parametrizations.weight.original``,
    ``parametrizations.weight.0._u`` / ``_v``, as PyTorch's parametrization names them)."""
    parametrize.register_parametrization(module, "weight", SpectralNorm(module.weight))
    return module


def spectral_conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                  bias: bool = True) -> nn.Conv2d:
    """Conv2d with spectral norm; initialised *before* wrapping so u, v match the final weight."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bias)
    nn.init.normal_(conv.weight, 0.0, INIT_STD)
    if bias:
        nn.init.zeros_(conv.bias)
    return spectral_norm(conv)


def init_weights(module: nn.Module) -> None:
    """The original's initialisation; spectral-norm convs are initialised in `spectral_conv`."""
    for m in module.modules():
        if parametrize.is_parametrized(m):
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, INIT_STD)
            nn.init.zeros_(m.bias)


class GatedConv2d(nn.Module):
    """One (transposed) convolution producing features and gates; output = features * sigmoid(gates)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                 transposed: bool = False) -> None:
        super().__init__()
        conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.conv = conv_cls(c_in, 2 * c_out, kernel, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gates = self.conv(x).chunk(2, dim=1)  # [B, c_out, H', W'] each
        return features * torch.sigmoid(gates)


def gated_block(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                transposed: bool = False, reflect_pad: int = 0) -> nn.Sequential:
    """[reflect-pad] -> GatedConv2d -> InstanceNorm -> ReLU: every encoder/decoder stage."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(reflect_pad)] if reflect_pad else []
    layers += [GatedConv2d(c_in, c_out, kernel, stride, padding, transposed),
               nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def fusion_block(c_in: int, c_out: int) -> nn.Sequential:
    """1x1 conv -> InstanceNorm -> ReLU that fuses skip features (F1, F2, F3)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True))


class DilatedResBlock(nn.Module):
    """x + IN(conv3x3(ReLU(IN(conv3x3_dilated(x))))) with reflection padding (EdgeConnect's block)."""

    def __init__(self, channels: int, dilation: int = 2) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv1 = nn.Conv2d(channels, channels, 3, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm1 = nn.InstanceNorm2d(channels)
        self.norm2 = nn.InstanceNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.pad(x, [self.dilation] * 4, mode="reflect"))
        y = F.relu(self.norm1(y))
        y = self.norm2(self.conv2(F.pad(y, [1] * 4, mode="reflect")))
        return x + y


class SpectralResBlock(nn.Module):
    """Pluralistic's ResBlock without normalisation: LReLU-conv-LReLU-conv plus a 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = spectral_conv(c_in, hidden, 3, padding=1)
        self.conv2 = spectral_conv(hidden, c_out, 3, padding=1)
        self.shortcut = spectral_conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.01)), 0.01))
        return y + self.shortcut(x)


class Attention(nn.Module):
    """Short+long-range attention (Pluralistic Image Completion), key = query, no 1/sqrt(d) scale.

    The self-attention term attends `x` to itself; with `long_range` the same attention map also
    carries the encoder feature `pre` into the hole (weighted by the mask) and a spectral-norm
    ResBlock fuses both. One `scaled_dot_product_attention` call serves both value tensors.
    """

    def __init__(self, channels: int, long_range: bool = True) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // 4, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.fuse = SpectralResBlock(2 * channels, channels, channels) if long_range else None

    def forward(self, x: torch.Tensor, pre: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2).unsqueeze(1)  # [B, 1, N, C/4]
        values = x if pre is None else torch.cat([x, pre], dim=1)  # [B, C or 2C, H, W]
        v = values.flatten(2).transpose(1, 2).unsqueeze(1).to(q.dtype)  # [B, 1, N, C or 2C]
        attended = F.scaled_dot_product_attention(q, q, v, scale=1.0)  # softmax(q q^T) v
        attended = attended.squeeze(1).transpose(1, 2).reshape(b, -1, h, w)
        out = self.gamma * attended[:, :c] + x
        if pre is None:
            return out
        if self.fuse is None or mask is None:
            raise ValueError("long-range attention needs a module built with long_range=True and a mask")
        context = self.alpha * mask * attended[:, c:] + (1 - mask) * pre
        return self.fuse(torch.cat([out, context], dim=1))
