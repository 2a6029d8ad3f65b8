"""Metrics: RGB PSNR / SSIM / L1 over the image or inside the hole, landmark NME."""

from __future__ import annotations

import math

import pytest
import torch

from inclg.evaluate import metrics


@pytest.fixture
def pair():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    pred = target.clone()
    pred[:, :, 8:24, 8:24] += 0.1  # error only inside the hole
    return pred, target, mask


def test_psnr_inside_the_hole_ignores_the_known_region(pair):
    pred, target, mask = pair
    assert metrics.psnr(pred, target, mask) == pytest.approx(torch.full((2,), 20.0), abs=1e-4)
    whole = metrics.psnr(pred, target)  # error on a quarter of the pixels: +6.02 dB
    assert whole == pytest.approx(torch.full((2,), 20 + 10 * math.log10(4)), abs=1e-3)
    assert metrics.psnr(target, target).tolist() == [100.0, 100.0]  # capped, not infinite


def test_mse_and_mae_per_image(pair):
    pred, target, mask = pair
    assert metrics.mse(pred, target, mask) == pytest.approx(torch.full((2,), 0.01))
    assert metrics.mae(pred, target, mask) == pytest.approx(torch.full((2,), 0.1))
    assert metrics.mae(pred, target) == pytest.approx(torch.full((2,), 0.025))


def test_ssim_is_one_for_identical_images_and_lower_in_a_damaged_hole(pair):
    _, target, mask = pair
    assert metrics.ssim(target, target) == pytest.approx(torch.ones(2))
    noisy = target.clone()
    noisy[:, :, 8:24, 8:24] = torch.rand(2, 3, 16, 16)
    inside, whole = metrics.ssim(noisy, target, mask), metrics.ssim(noisy, target)
    assert (inside < whole).all() and (whole < 1).all()
    assert metrics.ssim_map(noisy, target).shape == (2, 3, 32, 32)


def test_masked_ssim_is_the_mean_of_the_local_map_over_the_hole(pair):
    """Independent of the SSIM implementation (cross-checked with scikit-image in
    test_crosscheck.py): the masked score averages the map over the hole's pixels only."""
    pred, target, mask = pair
    pred = pred.clamp(0, 1)
    full = metrics.ssim_map(pred, target)  # [B, 3, H, W]
    for i in range(len(pred)):
        hole = mask[i, 0] > 0.5
        expected = full[i][:, hole].mean()
        assert metrics.ssim(pred, target, mask)[i] == pytest.approx(float(expected), abs=1e-6)
        assert metrics.ssim(pred, target)[i] == pytest.approx(float(full[i].mean()), abs=1e-6)


def test_an_empty_hole_gives_nan_not_a_number_that_looks_real(pair):
    pred, target, mask = pair
    mask[1] = 0
    for fn in (metrics.psnr, metrics.ssim, metrics.mae):
        values = fn(pred, target, mask)
        assert not values[0].isnan() and values[1].isnan()


def test_nme_is_normalised_by_the_outer_eye_corners():
    target = torch.zeros(1, 68, 2)
    target[0, 36] = torch.tensor([10.0, 50.0])
    target[0, 45] = torch.tensor([90.0, 50.0])  # inter-ocular distance 80
    pred = target + torch.tensor([3.0, 4.0])  # every point off by 5 px
    assert metrics.nme(pred, target).item() == pytest.approx(5 / 80)
    assert metrics.nme(pred * 2, target * 2).item() == pytest.approx(5 / 80)  # scale-free
