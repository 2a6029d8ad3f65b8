"""Our per-image metrics against scikit-image and torchmetrics on random images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inclg.evaluate import metrics

skimage_metrics = pytest.importorskip(
    "skimage.metrics", reason="install the dev extra (scikit-image): pip install 'inclg[dev]'")


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    target = rng.random((2, 40, 40, 3))
    pred = np.clip(target + rng.normal(0, 0.08, target.shape), 0, 1)
    as_torch = [torch.from_numpy(x).permute(0, 3, 1, 2).float() for x in (pred, target)]
    return pred, target, *as_torch


def test_psnr_matches_skimage_and_torchmetrics(images):
    from torchmetrics.functional.image import peak_signal_noise_ratio

    pred, target, tp, tt = images
    ours = metrics.psnr(tp, tt)
    for i in range(2):
        theirs = skimage_metrics.peak_signal_noise_ratio(target[i], pred[i], data_range=1.0)
        assert ours[i].item() == pytest.approx(theirs, abs=1e-3)
        tm = peak_signal_noise_ratio(tp[i : i + 1], tt[i : i + 1], data_range=1.0)
        assert ours[i].item() == pytest.approx(tm.item(), abs=1e-3)


def test_masked_psnr_and_l1_equal_the_numpy_definition_on_the_hole(images):
    pred, target, tp, tt = images
    mask = torch.zeros(2, 1, 40, 40)
    mask[:, :, 10:30, 5:25] = 1
    hole = (slice(10, 30), slice(5, 25))
    for i in range(2):
        diff = pred[i][hole] - target[i][hole]
        assert metrics.psnr(tp, tt, mask)[i].item() == pytest.approx(
            10 * np.log10(1 / np.mean(diff**2)), abs=1e-3)
        assert metrics.mae(tp, tt, mask)[i].item() == pytest.approx(np.abs(diff).mean(), abs=1e-6)


def test_ssim_map_matches_skimage_gaussian_ssim_away_from_the_border(images):
    pred, target, tp, tt = images
    ours = metrics.ssim_map(tp, tt).permute(0, 2, 3, 1).numpy()
    for i in range(2):
        score, full = skimage_metrics.structural_similarity(
            target[i], pred[i], data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, full=True)
        inner = (slice(5, -5), slice(5, -5))  # skimage ignores the 5-px border its window pads
        assert np.abs(ours[i][inner] - full[inner]).max() < 1e-4
        assert ours[i][inner].mean() == pytest.approx(score, abs=1e-5)
