from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inclg.config import GeneratorConfig
from inclg.evaluate import privacy
from inclg.model.generator import Generator
from inclg.model.masking import masked_input


def _brute_auc(m: np.ndarray, n: np.ndarray) -> float:
    pairs = list(itertools.product(m, n))
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)


def _brute_tpr(m: np.ndarray, n: np.ndarray, fpr: float) -> float:
    best = 0.0
    for t in [*np.concatenate([m, n]), np.inf]:
        if (n >= t).mean() <= fpr:
            best = max(best, float((m >= t).mean()))
    return best


@pytest.mark.parametrize("seed", range(4))
def test_auc_and_tpr_match_their_brute_force_definitions(seed):
    rng = np.random.default_rng(seed)
    m = rng.integers(0, 6, 9).astype(float)  # many ties
    n = rng.integers(0, 5, 150).astype(float) - 1
    assert privacy.roc_auc(m, n) == pytest.approx(_brute_auc(m, n))
    for fpr in (0.0, 0.01, 0.1, 0.5):
        assert privacy.tpr_at_fpr(m, n, fpr) == pytest.approx(_brute_tpr(m, n, fpr))


def test_bootstrap_intervals_are_seeded_and_contain_the_estimate():
    rng = np.random.default_rng(0)
    m, n = rng.normal(1, 1, 30), rng.normal(0, 1, 40)
    a = privacy.run_attack("x", "s", m, n, resamples=200, seed=3)
    assert a == privacy.run_attack("x", "s", m, n, resamples=200, seed=3)
    assert a.auc_ci[0] <= a.auc <= a.auc_ci[1]
    assert 0 <= a.tpr_ci[0] <= a.tpr_ci[1] <= 1


def _faces(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=32, mode="bilinear")


def test_the_audit_detects_two_memorised_faces():
    torch.manual_seed(0)
    members, non_members = _faces(2, 1), _faces(8, 2)
    model = Generator(GeneratorConfig(channels=8, residual_blocks=1))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    train_masks = privacy.audit_masks(32, 16, seed=5)
    for _ in range(150):  # L1 only, a few s on 2 CPU cores: the model learns to paint these two faces
        mask = train_masks[rng.integers(0, 16, 2)]
        out, _ = model(masked_input(members, mask), mask)
        loss = (out - members).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    masks = privacy.audit_masks(32, 3, seed=0)  # unseen masks
    errors = [privacy.face_errors(model, faces, masks) for faces in (members, non_members)]
    results = {r.name: r for r in privacy.attacks(*errors, resamples=200)}
    assert set(results) == {"loss-threshold (reconstruction)",
                            "calibrated (reconstruction vs. Telea)"}
    for result in results.values():
        assert result.auc >= 0.9 and result.tpr_at_1_fpr >= 0.5
        assert "leakage detected" in privacy.verdict(result)
    info = {"command": "inclg audit privacy ...", "model_id": "tiny", "trained": True,
            "members": 2, "non_members": 8, "masks": 3}
    text = privacy.to_markdown(list(results.values()), info)
    assert "AUC" in text and "0.5 means" in text
