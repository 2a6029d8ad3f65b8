"""The endless, seeded, resumable and sharded sample stream."""

from __future__ import annotations

import itertools

import torch
from torch.utils.data import Dataset

from inclg.train.data import SampleStream, SeededItems, train_loader, val_loader


def _take(stream, n):
    return list(itertools.islice(iter(stream), n))


def test_every_epoch_is_a_permutation_and_epochs_differ():
    pairs = _take(SampleStream(5, seed=0, batch_size=2), 15)
    epochs = [sorted(i for i, _ in pairs[k : k + 5]) for k in (0, 5, 10)]
    assert epochs == [list(range(5))] * 3
    assert [i for i, _ in pairs[:5]] != [i for i, _ in pairs[5:10]]
    assert len({seed for _, seed in pairs}) == 15  # every sample has its own seed


def test_resuming_at_a_position_continues_the_same_stream():
    whole = _take(SampleStream(7, seed=3, batch_size=2), 20)
    assert _take(SampleStream(7, seed=3, batch_size=2, start=6), 14) == whole[6:]
    assert _take(SampleStream(7, seed=4, batch_size=2), 20) != whole


def test_ranks_read_disjoint_interleaved_batches_of_the_global_stream():
    whole = _take(SampleStream(9, seed=0, batch_size=2), 12)
    rank0 = _take(SampleStream(9, seed=0, batch_size=2, rank=0, world_size=2), 6)
    rank1 = _take(SampleStream(9, seed=0, batch_size=2, rank=1, world_size=2), 6)
    assert rank0 == whole[0:2] + whole[4:6] + whole[8:10]
    assert rank1 == whole[2:4] + whole[6:8] + whole[10:12]


class _Random(Dataset):
    """Items that draw from torch's global RNG, as FaceDataset's augmentation does."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(2) + index


def test_item_randomness_comes_from_the_sample_seed_only():
    items = SeededItems(_Random())
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = items[(1, 123)]
    assert torch.equal(torch.get_rng_state(), state)  # the process RNG is untouched
    torch.manual_seed(99)
    assert torch.equal(items[(1, 123)], a) and not torch.equal(items[(1, 124)], a)


def test_loaders_batch_the_stream_and_shard_validation():
    batches = iter(train_loader(_Random(), batch_size=3, seed=0))
    assert next(batches).shape == (3, 2) and next(batches).shape == (3, 2)
    shards = [[t for b in val_loader(_Random(), 3, rank=r, world_size=2) for t in b]
              for r in (0, 1)]
    assert [len(s) for s in shards] == [2, 2]
    assert len(list(val_loader(_Random(), 3, limit=3))) == 1


def test_augmented_batches_depend_neither_on_workers_nor_on_where_the_loader_started(tiny_config):
    from inclg.train.loop import build_datasets

    faces, _ = build_datasets(tiny_config)  # flips, colour jitter and random masks

    def batches(workers: int, start: int = 0) -> list:
        loader = train_loader(faces, batch_size=2, seed=0, workers=workers, start=start)
        return list(itertools.islice(iter(loader), 3))

    serial, parallel, resumed = batches(0), batches(2), batches(0, start=2)
    for a, b in zip(serial, parallel):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(torch.equal(x, y) for x, y in zip(resumed[0], serial[1]))
    assert not torch.equal(serial[0][2], serial[1][2])  # masks differ between samples
