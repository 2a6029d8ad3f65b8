"""The INCLG multi-task generator: inpainted face + 68 landmarks from one shared feature.

The landmarks are rasterised and fed back into the image decoder, so the predicted face
structure guides the synthesis of the hole (the paper's Fig. 1).
"""

from __future__ import annotations

import torch
from torch import nn

from inclg.config import GeneratorConfig
from inclg.model.io import PretrainedMixin
from inclg.model.layers import (
    Attention,
    DilatedResBlock,
    fusion_block,
    gated_block,
    init_weights,
)
from inclg.model.masking import masked_input, resize_mask

CROP_SIZE = 256  # side of the aligned crop (inclg.data.align.TEMPLATE_SIZE) a window refers to


def landmark_map(points: torch.Tensor, height: int, width: int,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Binary [B, 1, H, W] map with a 1 at every landmark, built without Python loops.

    `points` are [B, K, 2] (x, y) normalised to [0, 1]; each is scaled to the map size, clamped to
    the map and truncated to an integer pixel, as the original does. No gradient flows through.
    """
    b = points.shape[0]
    points = points.detach()
    x = (points[..., 0] * width).clamp(0, width - 1).long()  # [B, K]
    y = (points[..., 1] * height).clamp(0, height - 1).long()  # [B, K]
    flat = torch.zeros(b, height * width, dtype=dtype, device=points.device)
    flat.scatter_(1, y * width + x, 1.0)
    return flat.view(b, 1, height, width)


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling over H and W: [B, C, H, W] -> [B, C]."""
    return x.mean(dim=(2, 3))


class LandmarkHead(nn.Module):
    """LaFIn's landmark predictor on f_share: three pooled nodes concatenated to a [B, 4C] code."""

    def __init__(self, channels: int, expand: int) -> None:
        super().__init__()
        wide = expand * channels
        self.expand = nn.Sequential(nn.Conv2d(channels, wide, 1, bias=False),
                                    nn.BatchNorm2d(wide), nn.ReLU6(inplace=True))
        self.node1 = nn.Conv2d(channels, channels // 4, 1)
        self.node2 = nn.Conv2d(wide, channels // 4, 1)
        self.node3 = nn.Conv2d(wide, channels // 2, 1)
        self.prelu = nn.PReLU()

    def forward(self, shared: torch.Tensor) -> torch.Tensor:
        t = self.expand(shared)  # [B, 5C, h, w]
        node1 = global_pool(self.node1(shared))  # [B, C/4]
        node2 = global_pool(self.node2(t))  # [B, C/4]
        node3 = self.prelu(global_pool(self.node3(t)))  # [B, C/2]
        return torch.cat([node1, node2, node3], dim=1)  # [B, C]


class Generator(PretrainedMixin, nn.Module):
    """Multi-task inpainting network of the INCLG paper.

    `Generator()` builds the paper's network (13,894,479 parameters). Forward takes the masked
    image (holes filled with white, see `inclg.model.masking.masked_input`) and the mask, both at
    the same size (256x256 for the paper; any multiple of 4 works), and returns the image in
    [0, 1] (not composited) and the landmarks [B, 68, 2] as (x, y) pixels of the input.
    """

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GeneratorConfig()
        c = config.channels
        deep = 4 * c  # width of f_share (256 in the paper)
        self.encoder1 = gated_block(3, c, 7, reflect_pad=3)
        self.encoder2 = gated_block(c, 2 * c, 4, stride=2, padding=1)
        self.encoder3 = gated_block(2 * c, deep, 4, stride=2, padding=1)
        self.middle = nn.Sequential(*[DilatedResBlock(deep) for _ in range(config.residual_blocks)])
        self.attention = Attention(deep, long_range=True)
        self.landmark_head = LandmarkHead(deep, config.landmark_expand)
        self.landmark_gamma = nn.Parameter(torch.zeros(1))
        self.landmark_fc = nn.Linear(deep, 2 * config.landmarks)
        self.decoder1 = gated_block(deep, 2 * c, 4, stride=2, padding=1, transposed=True)
        self.fuse1 = fusion_block(2 * c + 2 * c, deep)
        self.fuse2 = fusion_block(config.landmarks + deep, deep)
        self.decoder2 = gated_block(deep, c, 4, stride=2, padding=1, transposed=True)
        self.fuse3 = fusion_block(c + c, 2 * c)
        self.decoder3 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(2 * c, 3, 7))
        init_weights(self)
        nn.init.constant_(self.landmark_head.prelu.weight, 0.25)

    def forward(self, masked_image: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = masked_image.shape
        if h % 4 or w % 4:
            raise ValueError(f"input size must be a multiple of 4, got {h}x{w}")
        mask_half = resize_mask(mask, (h // 2, w // 2))
        mask_quarter = resize_mask(mask, (h // 4, w // 4))

        f_e1 = self.encoder1(masked_image)  # [B, C, H, W]
        f_e2 = self.encoder2(f_e1)  # [B, 2C, H/2, W/2]
        f_e3 = self.encoder3(f_e2)  # [B, 4C, H/4, W/4]
        shared = self.attention(self.middle(f_e3), pre=f_e3, mask=mask_quarter)  # f_share

        f_1 = self.fuse1(torch.cat([f_e2 * (1 - mask_half), self.decoder1(shared)], dim=1))
        code = self.landmark_head(shared) + self.landmark_gamma * global_pool(f_1)  # [B, 4C]
        with torch.autocast(code.device.type, enabled=False):  # sub-pixel precision, tiny cost
            # at least fp32 (bf16 under autocast is too coarse); fp64 stays fp64 (.double())
            wide = torch.promote_types(self.landmark_fc.weight.dtype, torch.float32)
            points = self.landmark_fc(code.to(wide)).view(b, -1, 2)  # [B, 68, 2] in [0, 1]

        lmk_map = landmark_map(points, h // 2, w // 2, dtype=f_1.dtype)  # [B, 1, H/2, W/2]
        lmk_map = lmk_map.expand(-1, self.config.landmarks, -1, -1)  # same map on 68 channels
        f_2 = self.fuse2(torch.cat([lmk_map, f_1], dim=1))  # [B, 4C, H/2, W/2]
        f_3 = self.fuse3(torch.cat([f_e1 * (1 - mask), self.decoder2(f_2)], dim=1))
        image = (torch.tanh(self.decoder3(f_3)) + 1) / 2  # [B, 3, H, W] in [0, 1]
        scale = points.new_tensor([w, h])
        return image, points * scale

    def inpaint(self, image: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fill the holes of whole aligned crops: image [B, 3, S, S] in [0, 1], mask [B, 1, S, S].

        The network runs on its window (`GeneratorConfig.window`) or the whole crop; returns the
        crop with the network's output inside the window and `image` outside it (not
        composited), and the landmarks [B, 68, 2] in crop pixels. Every caller that holds whole
        crops (predict, evaluate, the privacy audit) goes through here, so a windowed model
        needs no special case. Raises ValueError for holes outside the window.
        """
        x, y, side = box = window_box(self.config, image.shape[-1])
        outside = holes_outside(mask, box)
        if outside:
            raise ValueError(f"{outside} hole pixels lie outside the region this model fills "
                             f"(crop x {x}-{x + side - 1}, y {y}-{y + side - 1})")
        if box == (0, 0, image.shape[-1]):
            return self(masked_input(image, mask), mask)
        part = image[..., y:y + side, x:x + side]
        part_mask = mask[..., y:y + side, x:x + side]
        out, points = self(masked_input(part, part_mask), part_mask)
        full = image.to(out.dtype).clone()
        full[..., y:y + side, x:x + side] = out
        return full, points + points.new_tensor([x, y])


def window_box(config: GeneratorConfig, size: int = CROP_SIZE) -> tuple[int, int, int]:
    """(x, y, side) of the region of a `size` crop the generator sees: its window, or the crop."""
    if config.window is None:
        return 0, 0, size
    x, y, side = config.window
    if size != CROP_SIZE or side % 4 or x < 0 or y < 0 or x + side > size or y + side > size:
        raise ValueError(f"window {config.window} does not fit a {size}x{size} aligned crop "
                         f"(it needs a {CROP_SIZE}x{CROP_SIZE} crop and a side that is a multiple "
                         "of 4)")
    return x, y, side


def holes_outside(mask: torch.Tensor, box: tuple[int, int, int]) -> int:
    """Hole pixels of `mask` [..., H, W] outside the window `box`: a windowed network cannot
    fill them."""
    x, y, side = box
    inside = mask[..., y:y + side, x:x + side].gt(0.5).sum()
    return int(mask.gt(0.5).sum() - inside)


def parameter_count(module: nn.Module) -> int:
    """Number of trainable-or-not parameters (spectral-norm u/v are buffers and not counted)."""
    return sum(p.numel() for p in module.parameters())

