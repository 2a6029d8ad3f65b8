"""Classical inpainting baselines for the evaluation table: OpenCV Telea / Navier-Stokes and a
mean-colour fill. Each returns the composite: its fill inside the hole, the input elsewhere."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from inclg.model.masking import composite

BASELINES = ("telea", "ns", "mean")
INPAINT_RADIUS = 3


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [0, 1] -> H x W x 3 uint8."""
    return (image.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def inpaint_baseline(name: str, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] images and [B, 1, H, W] masks (1 = hole) -> the baseline's composite."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    hole = mask > 0.5
    if name == "mean":
        known = (~hole).to(image.dtype)  # [B, 1, H, W]
        total = known.sum((2, 3), keepdim=True).clamp_min(1)
        colour = (image * known).sum((2, 3), keepdim=True) / total  # [B, 3, 1, 1]
        return composite(colour.expand_as(image), image, mask)
    flag = cv2.INPAINT_TELEA if name == "telea" else cv2.INPAINT_NS
    filled = []
    for img, m in zip(image, hole, strict=True):
        m8 = m[0].to(torch.uint8).cpu().numpy() * 255
        out = cv2.inpaint(_to_uint8(img), m8, INPAINT_RADIUS, flag)
        filled.append(torch.from_numpy(out).permute(2, 0, 1).float() / 255)
    return composite(torch.stack(filled).to(image), image, mask)
