"""Image and landmark quality metrics, per image, over the whole image or inside the hole only.

All image metrics are computed on **RGB** images in [0, 1] (all three channels; the LaFIn lineage
reported greyscale numbers, which are not comparable). Inputs are [B, 3, H, W]; masks [B, 1, H, W]
with 1 = hole; landmarks [B, 68, 2] in pixels. Every function returns one value per image, [B],
so callers can average, take medians or aggregate over processes as they need. A masked metric of
an image whose mask is empty is NaN (there is nothing to measure); use `torch.nanmean`.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

# iBUG-68 outer eye corners: the inter-ocular distance normalises the landmark error (300-W).
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45
# MSE floor: identical images would give an infinite PSNR; this caps it at 100 dB (data range 1).
_MIN_MSE = 1e-10


def _weights(reference: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-pixel weights broadcast to `reference` [B, C, H, W]: the hole, or everywhere."""
    if mask is None:
        return torch.ones_like(reference)
    return (mask > 0.5).to(reference.dtype).expand_as(reference)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-image weighted mean of [B, C, H, W] values -> [B]; NaN where the weights are all 0."""
    total = weights.flatten(1).sum(1)  # [B]
    mean = (values * weights).flatten(1).sum(1) / total.clamp_min(1)
    return torch.where(total > 0, mean, torch.full_like(mean, float("nan")))


def mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per image [B] over all RGB values (inside the hole if masked)."""
    pred, target = pred.float(), target.float()
    return _masked_mean((pred - target) ** 2, _weights(pred, mask))


def mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error (L1) per image [B] over all RGB values (inside the hole if masked)."""
    pred, target = pred.float(), target.float()
    return _masked_mean((pred - target).abs(), _weights(pred, mask))


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
         data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image [B], RGB; inside the hole when `mask` is given.

    The masked form is 10·log10(range² / MSE over the hole's pixels and channels), so the known
    region, which the composite copies exactly, does not inflate the score.
    """
    error = mse(pred, target, mask).clamp_min(_MIN_MSE)
    return 10 * torch.log10(data_range**2 / error)


def ssim_map(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Local SSIM [B, 3, H, W] (torchmetrics: 11x11 Gaussian window, σ 1.5, reflect padding)."""
    _, full = structural_similarity_index_measure(
        pred.float(), target.float(), data_range=data_range, reduction="none",
        return_full_image=True,
    )
    return full


def ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
         data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image [B] on RGB: the mean of the local SSIM map over the whole
    image, or over the hole's pixels when `mask` is given (windows still see the context)."""
    full = ssim_map(pred, target, data_range)
    return _masked_mean(full, _weights(full, mask))


def nme(pred: torch.Tensor, target: torch.Tensor, left: int = LEFT_EYE_OUTER,
        right: int = RIGHT_EYE_OUTER) -> torch.Tensor:
    """Normalised mean error per face [B]: mean point-to-point distance between [B, 68, 2]
    landmarks divided by the ground truth's outer-eye-corner distance (points 36 and 45)."""
    pred, target = pred.float(), target.float()
    error = torch.linalg.vector_norm(pred - target, dim=-1).mean(-1)  # [B]
    ocular = torch.linalg.vector_norm(target[:, left] - target[:, right], dim=-1)  # [B]
    return error / ocular.clamp_min(1e-6)
