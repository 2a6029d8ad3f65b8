"""The training dataset: (image, landmarks, mask) tensors from file lists.

image [3, S, S] float32 in [0, 1]; landmarks [68, 2] float32, (x, y) pixels of the S x S image;
mask [1, S, S] float32, 1 = hole. Photos of any size are centre-cropped to a square and resized
(as the original does), and their landmarks follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from inclg.config import DataConfig
from inclg.data import DataError
from inclg.data.filelists import read_flist
from inclg.data.landmarks import IBUG68_FLIP, load_landmarks
from inclg.data.masks import free_form_mask
from inclg.io.images import load_mask, load_rgb


def square_resize(
    image: np.ndarray, points: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop to a square and resize to size x size; the landmarks follow."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[top : top + side, left : left + side]
    if side != size:
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        image = cv2.resize(image, (size, size), interpolation=interpolation)
    scale = size / side
    points = (points - np.array([left, top], np.float32) + 0.5) * scale - 0.5  # pixel centres
    return image, points.astype(np.float32)


def flip_horizontal(
    image: torch.Tensor, landmarks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror an image [..., W] and its landmarks [68, 2], relabelling left/right (iBUG-68)."""
    width = image.shape[-1]
    flipped = landmarks[list(IBUG68_FLIP)].clone()  # [68, 2]
    flipped[:, 0] = (width - 1) - flipped[:, 0]
    return image.flip(-1), flipped


def color_jitter(
    image: torch.Tensor, strength: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random brightness, contrast and saturation change of up to +-`strength` (relative)."""
    factors = 1 + (torch.rand(3, generator=generator) * 2 - 1) * strength
    grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).unsqueeze(0)  # [1, H, W]
    image = image * factors[0]
    image = (image - grey.mean() * factors[0]) * factors[1] + grey.mean() * factors[0]
    grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).unsqueeze(0)
    image = grey + (image - grey) * factors[2]
    return image.clamp(0, 1)


class FaceDataset(Dataset):
    """Aligned faces with landmarks, each paired with a hole mask.

    Masks come from `masks` (a random one per sample when augmenting, else mask ``i % len``) or,
    without a mask list, from the free-form stroke generator. With `augment`, faces are flipped
    (probability 1/2, if `flip`) and colour-jittered; randomness comes from torch's generator,
    which DataLoader seeds per worker.
    """

    def __init__(
        self,
        images: Sequence[str | Path],
        landmarks: Sequence[str | Path],
        masks: Sequence[str | Path] | None = None,
        size: int = 256,
        augment: bool = False,
        flip: bool = True,
        jitter: float = 0.05,
    ) -> None:
        if len(images) != len(landmarks):
            raise DataError(
                f"{len(images)} images but {len(landmarks)} landmark files; the lists must pair up"
            )
        if not images:
            raise DataError("the image list is empty")
        self.images, self.landmarks = list(images), list(landmarks)
        self.masks = list(masks) if masks else None
        self.size, self.augment, self.flip, self.jitter = size, augment, flip, jitter

    @classmethod
    def from_config(cls, config: DataConfig, split: str = "train") -> FaceDataset:
        """The training (augmented) or validation dataset described by a `DataConfig`."""
        if split not in ("train", "val"):
            raise DataError(f"split must be 'train' or 'val', not {split!r}")
        lists = [getattr(config, f"{split}_{kind}") for kind in ("images", "landmarks", "masks")]
        if lists[0] is None or lists[1] is None:
            raise DataError(f"data.{split}_images and data.{split}_landmarks must name file lists")
        return cls(
            read_flist(lists[0]),
            read_flist(lists[1]),
            read_flist(lists[2]) if lists[2] else None,
            size=config.image_size,
            augment=split == "train",
            flip=config.flip,
            jitter=config.color_jitter,
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        array, points = square_resize(
            load_rgb(self.images[index]), load_landmarks(self.landmarks[index]), self.size
        )
        image = torch.from_numpy(array).permute(2, 0, 1).float() / 255.0  # [3, S, S]
        landmarks = torch.from_numpy(points)  # [68, 2]
        if self.augment and self.flip and torch.rand(()) < 0.5:
            image, landmarks = flip_horizontal(image, landmarks)
        if self.augment and self.jitter > 0:
            image = color_jitter(image, self.jitter)
        mask = torch.from_numpy(self._mask(index)).unsqueeze(0)  # [1, S, S]
        return image, landmarks, mask

    def _mask(self, index: int) -> np.ndarray:
        if self.masks is None:
            seed = int(torch.randint(0, 2**62, ())) if self.augment else index
            return free_form_mask(self.size, np.random.default_rng(seed))
        pick = (
            int(torch.randint(0, len(self.masks), ())) if self.augment else index % len(self.masks)
        )
        return load_mask(self.masks[pick], self.size)
