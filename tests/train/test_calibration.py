"""BatchNorm statistics recomputed for the weights that are evaluated."""

from __future__ import annotations

import torch
from torch import nn

from inclg.train.calibration import recalibrate_batchnorm


class _Net(nn.Module):
    """A stand-in with the generator's call signature: (masked image, mask)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(image))


def test_statistics_become_the_exact_average_over_the_batches_and_modes_are_restored():
    torch.manual_seed(0)
    net = _Net().train()
    net.norm.running_mean.fill_(5.0)  # stale statistics of other weights
    images = [torch.rand(2, 3, 4, 4) for _ in range(3)]
    masks = [torch.zeros(2, 1, 4, 4) for _ in range(3)]  # no hole: the image as it is
    seen = recalibrate_batchnorm(net, zip(images, masks))
    assert seen == 6
    with torch.no_grad():
        features = [net.conv(x) for x in images]
    expected = torch.stack([f.mean(dim=(0, 2, 3)) for f in features]).mean(0)
    assert torch.allclose(net.norm.running_mean, expected, atol=1e-6)
    assert net.training and net.norm.training and net.norm.momentum == 0.1


def test_a_network_without_batchnorm_is_not_run():
    calls = []

    class Plain(nn.Module):
        def forward(self, image, mask):
            calls.append(1)
            return image

    assert recalibrate_batchnorm(Plain(), [(torch.rand(1, 3, 2, 2), torch.zeros(1, 1, 2, 2))]) == 0
    assert not calls


def test_calibration_batches_are_fixed_and_leave_the_global_rng_alone():
    from inclg.train.calibration import calibration_batches

    class Random(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):  # draws from torch's RNG, as the training dataset does
            return torch.rand(3, 2, 2), torch.zeros(68, 2), torch.rand(1, 2, 2)

    torch.manual_seed(7)
    first = calibration_batches(Random(), 4, 3, seed=0)
    after = torch.rand(1)
    torch.manual_seed(7)
    second = calibration_batches(Random(), 4, 3, seed=0)
    assert torch.equal(torch.rand(1), after)  # the caller's stream is where it was
    assert [b[0].shape[0] for b in first] == [3, 1]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))
