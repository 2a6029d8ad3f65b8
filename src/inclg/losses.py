"""The six INCLG losses: pixel L1, perceptual, style, total variation, landmark, adversarial.

Definitions and default weights are the original configuration's (ARCHITECTURE.md, "Losses and
their weights"). Images are [B, 3, H, W] in [0, 1], masks [B, 1, H, W] with 1 = hole, landmarks
[B, 68, 2] in crop pixels. Every loss is computed in float32, also under bf16 autocast, and none
assumes a device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inclg.config import LossConfig
from inclg.model.masking import composite
from inclg.model.vgg import PERCEPTUAL_LAYERS, STYLE_LAYERS, VGGFeatures
from inclg.weights.vgg import load_feature_net

GAN_TYPES = ("lsgan", "nsgan", "hinge")
LOSS_NAMES = ("l1", "perceptual", "style", "tv", "landmark", "adversarial")


def pixel_l1(out: torch.Tensor, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |out - img| over the whole image divided by the hole fraction mean(mask).

    The division (the original's) weights small holes up. An empty mask divides by 1 instead of 0,
    decided on the tensor so there is no host sync and no data-dependent Python branch.
    """
    l1 = (out.float() - img.float()).abs().mean()  # []
    coverage = mask.float().mean()  # []
    return l1 / torch.where(coverage > 0, coverage, torch.ones_like(coverage))


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices F Fᵀ / (C·H·W) of [B, C, H, W] features -> [B, C, C], always in float32
    (a bf16 sum over H·W products loses the small differences the style loss is made of)."""
    b, c, h, w = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.float().reshape(b, c, h * w)  # [B, C, HW]
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)  # [B, C, C]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean |vertical difference| + mean |horizontal difference| (the L1 form of the spec)."""
    x = x.float()
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()  # over [B, C, H-1, W]
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()  # over [B, C, H, W-1]
    return dh + dw


def landmark_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-face L2 norm of the 136 pixel-coordinate errors, averaged over the batch.

    `pred` and `gt` are [B, 68, 2] in crop pixels: scale the generator's [0, 1] output by the
    image size (256) first, as the original does.
    """
    diff = (pred.float() - gt.float()).flatten(1)  # [B, 136]
    return torch.linalg.vector_norm(diff, dim=1).mean()


class AdversarialLoss:
    """GAN losses on discriminator *logits*.

    lsgan: MSE between sigmoid(logits) and 1 / 0 (the original applies the sigmoid inside D).
    nsgan: binary cross-entropy with logits, equal to the original's sigmoid + BCE but stable
    and autocast-safe. hinge (EdgeConnect): D uses relu(1 - real) and relu(1 + fake); G uses
    -mean(fake).
    """

    def __init__(self, gan_type: str = "lsgan") -> None:
        if gan_type not in GAN_TYPES:
            raise ValueError(
                f"unknown gan_type {gan_type!r}; expected one of {', '.join(GAN_TYPES)}"
            )
        self.gan_type = gan_type

    def __call__(
        self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool = True
    ) -> torch.Tensor:
        """Loss pushing `logits` towards "real" or "fake"; `for_discriminator` matters for hinge."""
        logits = logits.float()
        if self.gan_type == "hinge":
            if for_discriminator:
                margin = 1 - logits if target_is_real else 1 + logits
                return F.relu(margin).mean()
            if not target_is_real:
                raise ValueError("the hinge generator loss is defined only for target_is_real=True")
            return -logits.mean()
        target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
        if self.gan_type == "lsgan":
            return F.mse_loss(torch.sigmoid(logits), target)
        return F.binary_cross_entropy_with_logits(logits, target)


class PerceptualStyleLoss(nn.Module):
    """Perceptual and style losses from one feature network in exactly two passes per call.

    perceptual = Σ_l mean |φ_l(out) - φ_l(img)| over `perceptual_layers` (default: the arch's 5);
    style = Σ_l mean |G(φ_l(out·m)) - G(φ_l(img·m))| over `style_layers` (default: its 4).
    The original runs the network four times; here the targets go through once under no_grad (no
    activations kept) and the predictions once with grad. A term given no layers (``()``) is off
    and its half of the batch is not run at all.
    """

    def __init__(self, feature_net: VGGFeatures, perceptual_layers: Sequence[str] | None = None,
                 style_layers: Sequence[str] | None = None) -> None:
        super().__init__()
        self.feature_net = feature_net
        self.perceptual_layers = tuple(PERCEPTUAL_LAYERS[feature_net.arch]
                                       if perceptual_layers is None else perceptual_layers)
        self.style_layers = tuple(STYLE_LAYERS[feature_net.arch]
                                  if style_layers is None else style_layers)
        missing = set(self.perceptual_layers + self.style_layers) - set(feature_net.layers)
        if missing:
            raise ValueError(f"the feature network does not return {sorted(missing)}")

    def forward(
        self, out: torch.Tensor, img: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(perceptual, style) for generated `out` against ground truth `img` with hole `mask`."""
        zero = out.new_zeros((), dtype=torch.float32)
        outs = [out] if self.perceptual_layers else []
        imgs = [img] if self.perceptual_layers else []
        if self.style_layers:
            outs.append(out * mask)
            imgs.append(img * mask)
        if not outs:
            return zero, zero
        b = out.shape[0] if self.perceptual_layers else 0  # where the style half starts
        with torch.no_grad():
            target = self.feature_net(torch.cat(imgs))  # each [kB, C_l, H_l, W_l]
        pred = self.feature_net(torch.cat(outs))  # each [kB, C_l, H_l, W_l]
        perceptual = zero if not self.perceptual_layers else torch.stack(
            [
                (pred[n][:b].float() - target[n][:b].float()).abs().mean()
                for n in self.perceptual_layers
            ]
        ).sum()
        style = zero if not self.style_layers else torch.stack(
            [(gram(pred[n][b:]) - gram(target[n][b:])).abs().mean() for n in self.style_layers]
        ).sum()
        return perceptual, style


def term_layers(config: LossConfig) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """(perceptual, style) layers: () for a term with weight 0 (it is not run), None for the
    feature network's defaults (an empty list in the config)."""
    return tuple(  # type: ignore[return-value]
        () if weight == 0 else tuple(layers) if layers else None
        for weight, layers in ((config.perceptual, config.perceptual_layers),
                               (config.style, config.style_layers)))


def feature_layers(config: LossConfig) -> tuple[str, ...] | None:
    """The feature-network layers the losses read, shallowest first, so the network can stop at
    the deepest (None: the architecture's default nine)."""
    wanted = term_layers(config)
    if None in wanted:
        return None
    names = set(wanted[0] or ()) | set(wanted[1] or ())
    return tuple(sorted(names, key=lambda n: (int(n[4]), int(n[6:])))) or None


class InpaintingLoss(nn.Module):
    """All INCLG losses, weighted by a `LossConfig`, for the generator and discriminator steps.

    The feature network is loaded from the config unless given. When both the perceptual and the
    style weight are 0 no feature network is loaded or run and both terms are reported as 0.
    """

    def __init__(self, config: LossConfig, feature_net: VGGFeatures | None = None) -> None:
        super().__init__()
        self.config = config
        self.weights = {name: float(getattr(config, name)) for name in LOSS_NAMES}
        self.adversarial = AdversarialLoss(config.gan_type)
        self.perceptual_style: PerceptualStyleLoss | None = None
        if config.perceptual != 0 or config.style != 0:
            if feature_net is None:
                feature_net = load_feature_net(
                    config.feature_net, config.feature_weights, normalize=config.feature_normalize,
                    layers=feature_layers(config),
                )
            self.perceptual_style = PerceptualStyleLoss(feature_net, *term_layers(config))

    def generator_losses(
        self,
        out: torch.Tensor,
        img: torch.Tensor,
        mask: torch.Tensor,
        lmk_pred: torch.Tensor,
        lmk_gt: torch.Tensor,
        d_fake_logits: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted terms l1, perceptual, style, tv, landmark, adversarial, plus weighted "total".

        `out` is the generator's raw image [B, 3, H, W]; TV is taken on its composite with `img`.
        `lmk_pred`, `lmk_gt` are [B, 68, 2] in pixels; `d_fake_logits` is D's output on `out`
        (None: no adversarial term, reported as 0).
        """
        if self.perceptual_style is not None:
            perceptual, style = self.perceptual_style(out, img, mask)
        else:
            perceptual = style = out.new_zeros((), dtype=torch.float32)
        losses = {
            "l1": pixel_l1(out, img, mask),
            "perceptual": perceptual,
            "style": style,
            "tv": total_variation(composite(out, img, mask)),
            "landmark": landmark_loss(lmk_pred, lmk_gt),
            "adversarial": perceptual.new_zeros(()) if d_fake_logits is None
            else self.adversarial(d_fake_logits, True, for_discriminator=False),
        }
        losses["total"] = torch.stack([self.weights[k] * v for k, v in losses.items()]).sum()
        return losses

    def discriminator_loss(
        self, d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor
    ) -> torch.Tensor:
        """(loss on real + loss on fake) / 2; pass D's logits on a *detached* fake."""
        real = self.adversarial(d_real_logits, True, for_discriminator=True)
        fake = self.adversarial(d_fake_logits, False, for_discriminator=True)
        return (real + fake) / 2
