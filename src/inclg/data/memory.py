"""Training data held in memory: crops decoded once as uint8, holes mixed from a mask list and
from each face's own landmarks.

On a CPU the network, not the data, must take the time: decoding a 256x256 PNG costs about as much
as a compact generator's forward pass. `CropStore` decodes the region of every aligned crop that
the generator sees (its window plus a margin for random shifts) once, in parallel threads, and
caches it as .npy beside the lists, so a restarted run loads 2 GB in seconds.

`MemoryFaceDataset` yields what `FaceDataset` yields, cut to the window: image [3, S, S] in [0, 1],
landmarks [68, 2] in window pixels (points outside the window keep their coordinates), mask
[1, S, S] with 1 = hole. Its holes are a mix: a fraction drawn from the face's landmarks (lip,
cleft left/right/bilateral, nose) with random jitter of the points, the margins and the band
width, the rest from the mask list (the paper's irregular masks, resized to the window).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from inclg.config import DataConfig
from inclg.data import DataError
from inclg.data.align import eye_distance
from inclg.data.dataset import color_jitter, flip_horizontal
from inclg.data.filelists import read_flist
from inclg.data.landmarks import load_landmarks
from inclg.data.masks import cleft_mask, lip_mask, region_mask
from inclg.io.files import atomic_path
from inclg.io.images import load_mask, load_rgb

CACHE_VERSION = 1
# Landmark hole kinds and their share of the landmark-drawn samples: the lip and the three cleft
# kinds are what clinicians mask; the nose trains the nostril region the clefts reach into. The
# lip, the largest hole, has the largest share (0.3 until iteration 3,700 of the compact model,
# when the lip lagged its target most).
LANDMARK_KINDS: dict[str, float] = {
    "lip": 0.4, "cleft-left": 0.15, "cleft-right": 0.15, "cleft-bilateral": 0.2, "nose": 0.1,
}


@dataclass(frozen=True)
class Region:
    """A square region (x, y, side) of the aligned crop, in crop pixels."""

    x: int
    y: int
    side: int

    def grown(self, margin: int) -> Region:
        return Region(self.x - margin, self.y - margin, self.side + 2 * margin)


class CropStore:
    """Every crop's `region` as uint8 [N, side, side, 3] and its landmarks [N, 68, 2] in crop
    pixels, decoded once and cached as .npy files named by a hash of the lists and the region."""

    def __init__(self, images: np.ndarray, landmarks: np.ndarray, region: Region) -> None:
        self.images, self.landmarks, self.region = images, landmarks, region

    @classmethod
    def load(cls, images: Sequence[str | Path], landmarks: Sequence[str | Path], region: Region,
             crop_size: int, cache_dir: str | Path | None = None,
             threads: int = 2) -> CropStore:
        if len(images) != len(landmarks):
            raise DataError(f"{len(images)} images but {len(landmarks)} landmark files; the lists "
                            "must pair up")
        if not images:
            raise DataError("the image list is empty")
        if region.x < 0 or region.y < 0 or region.x + region.side > crop_size or (
                region.y + region.side > crop_size):
            raise DataError(f"the window with its shift margin ({region}) does not fit the "
                            f"{crop_size}x{crop_size} crops; lower data.shift")
        key = hashlib.sha256(json.dumps([CACHE_VERSION, [str(p) for p in images],
                                         [str(p) for p in landmarks], crop_size,
                                         [region.x, region.y, region.side]]).encode())
        stem = f"crops-{key.hexdigest()[:16]}"
        folder = Path(cache_dir) if cache_dir else Path(images[0]).parent
        cached = [folder / f"{stem}.{part}.npy" for part in ("images", "landmarks")]
        if all(p.is_file() for p in cached):
            return cls(np.load(cached[0], mmap_mode="r"), np.load(cached[1]), region)
        points = np.stack([load_landmarks(p) for p in landmarks]).astype(np.float32)
        pixels = np.empty((len(images), region.side, region.side, 3), np.uint8)

        def decode(i: int) -> None:  # OpenCV and zlib release the GIL: threads run in parallel
            rgb = load_rgb(images[i])
            if rgb.shape[:2] != (crop_size, crop_size):
                raise DataError(f"{images[i]}: {rgb.shape[1]}x{rgb.shape[0]} image; in-memory "
                                f"training needs the {crop_size}x{crop_size} aligned crops of "
                                "`inclg data faces`")
            pixels[i] = rgb[region.y:region.y + region.side, region.x:region.x + region.side]

        with ThreadPoolExecutor(max(1, threads)) as pool:
            list(pool.map(decode, range(len(images))))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for path, array in zip(cached, (pixels, points)):
                with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, array)
        except OSError:
            pass  # a read-only data folder: work from memory, decode again next time
        return cls(pixels, points, region)


def jittered_landmark_mask(kind: str, points: np.ndarray, size: int,
                           rng: np.random.Generator) -> np.ndarray:
    """A landmark hole of `kind` [size, size] float32 drawn from `points` moved by up to ~1.5 px
    each and ~3 px together, with margins and band widths drawn around the defaults, so the
    network meets the variety of hand-drawn masks rather than one exact shape."""
    eyes = eye_distance(points)
    noisy = points + rng.normal(0, 0.015 * eyes, points.shape) + rng.uniform(-0.04, 0.04, 2) * eyes
    noisy = noisy.astype(np.float32)
    if kind == "lip":
        return lip_mask(noisy, size, margin=float(rng.uniform(0.06, 0.25)))
    if kind.startswith("cleft-"):
        return cleft_mask(noisy, kind.removeprefix("cleft-"), size,
                          width=float(rng.uniform(0.13, 0.26)),
                          margin=float(rng.uniform(0.03, 0.1)))
    return region_mask(noisy, kind, size, margin=float(rng.uniform(0.06, 0.2)))


class MemoryFaceDataset(Dataset):
    """Windows of in-memory crops with mixed holes; see the module docstring.

    `window` is (x, y, side) in the crop; with `augment`, the window moves by up to `shift` px,
    faces are flipped (probability 1/2) and colour-jittered, and holes are drawn at random.
    Without it (validation) item i always gets the same hole: drawn from seed i.
    """

    def __init__(self, store: CropStore, window: tuple[int, int, int],
                 masks: np.ndarray | None = None, landmark_masks: float = 0.0,
                 augment: bool = False, flip: bool = True, jitter: float = 0.05,
                 shift: int = 0, crop_size: int = 256) -> None:
        if masks is None and landmark_masks < 1.0:
            raise DataError("no mask list: set data.landmark_masks to 1 or give data.*_masks")
        self.store, self.window = store, Region(*window)
        self.masks, self.landmark_masks = masks, landmark_masks
        self.augment, self.flip, self.jitter = augment, flip, jitter
        self.shift = shift if augment else 0
        self.crop_size = crop_size
        kinds = list(LANDMARK_KINDS.items())
        self.kinds = [k for k, _ in kinds]
        weights = np.array([w for _, w in kinds])
        self.kind_weights = weights / weights.sum()

    @classmethod
    def from_config(cls, config: DataConfig, window: tuple[int, int, int] | None,
                    split: str = "train", crop_size: int = 256) -> MemoryFaceDataset:
        """The in-memory training (augmented) or validation dataset of a `DataConfig`."""
        if split not in ("train", "val"):
            raise DataError(f"split must be 'train' or 'val', not {split!r}")
        lists = [getattr(config, f"{split}_{kind}") for kind in ("images", "landmarks", "masks")]
        if lists[0] is None or lists[1] is None:
            raise DataError(f"data.{split}_images and data.{split}_landmarks must name file lists")
        window = window or (0, 0, crop_size)
        shift = config.shift if split == "train" else 0
        store = CropStore.load(read_flist(lists[0]), read_flist(lists[1]),
                               Region(*window).grown(shift), crop_size, config.cache_dir)
        masks = None
        if lists[2]:
            side = window[2]
            masks = np.stack([load_mask(p, side) > 0.5 for p in read_flist(lists[2])])
        return cls(store, window, masks, config.landmark_masks, augment=split == "train",
                   flip=config.flip, jitter=config.color_jitter, shift=shift,
                   crop_size=crop_size)

    def __len__(self) -> int:
        return len(self.store.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Training items draw from torch's generator (seeded per sample by the loader); validation
        # item i from seed i, so every validation sees the same holes.
        seed = int(torch.randint(0, 2**62, ())) if self.augment else index
        rng = np.random.default_rng(seed)
        side, store = self.window.side, self.store
        dx, dy = (rng.integers(-self.shift, self.shift + 1, 2) if self.shift else (0, 0))
        ox, oy = self.window.x - store.region.x + dx, self.window.y - store.region.y + dy
        pixels = np.array(store.images[index, oy:oy + side, ox:ox + side])  # a writable copy
        origin = np.array([store.region.x + ox, store.region.y + oy], np.float32)
        points = store.landmarks[index] - origin  # [68, 2] window pixels
        image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0  # [3, S, S]
        landmarks = torch.from_numpy(points)
        if self.augment and self.flip and rng.random() < 0.5:
            image, landmarks = flip_horizontal(image, landmarks)
        if self.augment and self.jitter > 0:
            image = color_jitter(image, self.jitter,
                                 torch.Generator().manual_seed(int(rng.integers(2**62))))
        mask = self._hole(landmarks.numpy(), rng)
        return image, landmarks, torch.from_numpy(mask).unsqueeze(0)

    def _hole(self, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[S, S] float32: a jittered landmark hole or a (flipped, rotated) listed mask."""
        side = self.window.side
        if self.masks is None or rng.random() < self.landmark_masks:
            kind = self.kinds[int(rng.choice(len(self.kinds), p=self.kind_weights))]
            return jittered_landmark_mask(kind, points, side, rng)
        mask = self.masks[int(rng.integers(len(self.masks)))]
        if self.augment:
            mask = np.rot90(mask, int(rng.integers(4)))
            if rng.random() < 0.5:
                mask = mask[:, ::-1]
        return np.ascontiguousarray(mask, dtype=np.float32)
