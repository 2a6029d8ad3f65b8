"""Fréchet Inception Distance with the TF-Inception (2015-12-05) pool3 network (input
N x 3 x 299 x 299 in [-1, 1), output N x 2048); `inclg.weights.inception` finds and loads it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MIN_IMAGES = 2  # a covariance needs at least two samples


@torch.no_grad()
def inception_features(model: torch.jit.ScriptModule, images: torch.Tensor,
                       batch_size: int = 16) -> np.ndarray:
    """[N, 2048] pool3 features of [N, 3, H, W] images in [0, 1] (bilinear resize to 299)."""
    device = next(iter(model.parameters())).device
    out = []
    for chunk in images.split(batch_size):
        x = F.interpolate(chunk.float().to(device), size=(299, 299), mode="bilinear",
                          align_corners=False)
        out.append(model(x * 2 - 1).reshape(len(chunk), -1).double().cpu().numpy())
    return np.concatenate(out)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """||mu1 - mu2||² + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^½) of two Gaussians.

    Tr((S1 S2)^½) is the sum of the square roots of the eigenvalues of S1 S2, which are real and
    non-negative (S1 S2 is similar to S1^½ S2 S1^½); round-off below zero is clipped. This avoids
    `scipy.linalg.sqrtm`, which is slow and unstable for the singular covariances of small sets.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2).real
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two [N, D] feature sets (N >= 2 each), with unbiased covariances.

    With Xi the centred features, S1 S2 has the same non-zero eigenvalues as M Mᵀ for
    M = X1 X2ᵀ / sqrt((n1 - 1)(n2 - 1)), so Tr((S1 S2)^½) is the sum of M's singular values:
    exact, and an n1 x n2 problem instead of a D x D one when the sets are small.
    """
    if len(real) < MIN_IMAGES or len(fake) < MIN_IMAGES:
        raise ValueError(f"FID needs at least {MIN_IMAGES} images per set")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    x1, x2 = real - real.mean(0), fake - fake.mean(0)
    n1, n2 = len(real) - 1, len(fake) - 1
    if min(len(real), len(fake)) >= real.shape[1]:
        return frechet_distance(real.mean(0), x1.T @ x1 / n1, fake.mean(0), x2.T @ x2 / n2)
    diff = real.mean(0) - fake.mean(0)
    trace_sqrt = np.linalg.svd(x1 @ x2.T / np.sqrt(n1 * n2), compute_uv=False).sum()
    return float(diff @ diff + (x1 * x1).sum() / n1 + (x2 * x2).sum() / n2 - 2 * trace_sqrt)
