"""An endless, seeded, resumable stream of training samples, sharded over DDP ranks.

The paper samples a batch of faces and a batch of random masks every iteration. Here sample j of
the run (counting over all ranks) is face ``perm_e[j mod n]`` of a fresh permutation for every
epoch ``e = j div n``, and all of its randomness (flip, colour jitter, mask choice) comes from a
seed derived from (train.seed, j) alone. So the stream depends on neither the number of loader
workers nor when the loader was created, and a resumed run that starts at sample
``iteration * global_batch`` sees exactly the samples an uninterrupted run would have seen.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy's SeedSequence: no correlated streams)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0] >> np.uint64(1))


class SampleStream(Sampler[tuple[int, int]]):
    """Endless (dataset index, sample seed) pairs for one rank, from global sample `start` on.

    Rank r of W with per-rank batch B reads, at iteration t, global samples
    ``t·W·B + r·B + k`` for k < B, so W ranks together read the stream in order.
    """

    def __init__(self, size: int, seed: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 start: int = 0) -> None:
        if size <= 0:
            raise ValueError("the training dataset is empty")
        self.size, self.seed, self.batch_size = size, seed, batch_size
        self.rank, self.world_size, self.start = rank, world_size, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        global_batch = self.batch_size * self.world_size
        j = self.start + self.rank * self.batch_size  # first global sample of this rank
        epoch, perm = -1, torch.empty(0, dtype=torch.long)
        while True:
            for k in range(self.batch_size):
                sample = j + k
                if sample // self.size != epoch:
                    epoch = sample // self.size
                    perm = self.permutation(epoch)
                yield int(perm[sample % self.size]), derive_seed(self.seed, sample)
            j += global_batch

    def permutation(self, epoch: int) -> torch.Tensor:
        """Order of the dataset in `epoch` (the same on every rank)."""
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch, 0x5EED))
        return torch.randperm(self.size, generator=generator)


class SeededItems(Dataset):
    """Wraps a dataset whose items draw from torch's global RNG; item (index, seed) draws from a
    generator seeded with `seed` instead, and the process's own RNG state is left untouched."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]


def init_worker(worker_id: int) -> None:
    """Loader workers leave SIGINT / SIGTERM to the main process, which finishes its step,
    checkpoints and then shuts them down (Ctrl-C reaches the whole process group; a worker killed
    by it would abort the loader before the checkpoint is written).

    Nothing else here: a forked worker must not reconfigure thread pools its parent has used
    (``cv2.setNumThreads`` in such a child waits forever for threads that were not forked).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def train_loader(dataset: Dataset, batch_size: int, seed: int, *, rank: int = 0,
                 world_size: int = 1, start: int = 0, workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """Endless DataLoader over `dataset` from global sample `start`; see `SampleStream`."""
    size = len(dataset)  # type: ignore[arg-type]
    stream = SampleStream(size, seed, batch_size, rank, world_size, start)
    return DataLoader(SeededItems(dataset), batch_size=batch_size, sampler=stream,
                      num_workers=workers, pin_memory=pin_memory, drop_last=True,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                      worker_init_fn=init_worker)


def val_loader(dataset: Dataset, batch_size: int, *, limit: int = 0, rank: int = 0,
               world_size: int = 1, workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """This rank's share of the first `limit` validation items (all when 0), in order."""
    count = len(dataset) if limit <= 0 else min(limit, len(dataset))  # type: ignore[arg-type]
    shard = Subset(dataset, range(rank, count, world_size))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=pin_memory, worker_init_fn=init_worker)
