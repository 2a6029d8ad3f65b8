"""TensorBoard sample grids: masked input | output | composite | ground truth, with landmarks."""

from __future__ import annotations

import torch

PREDICTED = (0.1, 1.0, 0.1)  # green: the generator's landmarks
GROUND_TRUTH = (1.0, 0.2, 0.2)  # red: the dataset's landmarks


def draw_points(images: torch.Tensor, points: torch.Tensor, color: tuple[float, float, float],
                radius: int = 1) -> torch.Tensor:
    """Copy of [B, 3, H, W] `images` with a (2r+1)² square at each [B, K, 2] (x, y) point."""
    b, _, h, w = images.shape
    out = images.detach().float().clone().contiguous()
    offsets = torch.arange(-radius, radius + 1, device=images.device)
    x = points[..., 0].round().long()[:, :, None, None] + offsets[None, None, None, :]  # [B,K,1,D]
    y = points[..., 1].round().long()[:, :, None, None] + offsets[None, None, :, None]  # [B,K,D,1]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)  # [B, K, D, D]
    flat = (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)).flatten(1)  # [B, K·D·D]
    keep = inside.flatten(1)
    for channel, value in enumerate(color):
        plane = out[:, channel].view(b, h * w)  # [B, HW]
        current = plane.gather(1, flat)
        plane.scatter_(1, flat, torch.where(keep, torch.full_like(current, value), current))
    return out


def sample_grid(masked: torch.Tensor, output: torch.Tensor, composited: torch.Tensor,
                target: torch.Tensor, predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """One row per face, four columns: masked input, raw output and composite (with the predicted
    landmarks), ground truth (with the true landmarks) -> [3, B·H, 4·W] in [0, 1]."""
    columns = [masked.float(), draw_points(output, predicted, PREDICTED),
               draw_points(composited, predicted, PREDICTED),
               draw_points(target, truth, GROUND_TRUTH)]
    rows = torch.cat(columns, dim=3)  # [B, 3, H, 4W]
    return torch.cat(list(rows), dim=1).clamp(0, 1).cpu()  # [3, B·H, 4W]
