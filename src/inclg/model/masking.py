"""Tensor helpers shared by training and inference for the mask convention (1 = hole)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_input(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The generator's input: holes filled with white, as in the original (`img * (1 - m) + m`)."""
    return image * (1 - mask) + mask  # [B, 3, H, W]


def composite(output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Generated pixels inside the hole, the input's own pixels (bit for bit) everywhere else.

    Equals ``output * m + image * (1 - m)`` for a binary mask; `torch.where` guarantees the
    untouched region is copied exactly whatever `output` holds there.
    """
    return torch.where(mask > 0.5, output, image)


def resize_mask(mask: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Mask at another scale (bilinear, aligned corners), as the original builds its mask pyramid."""
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=True)
