from __future__ import annotations

import pytest
import torch

from inclg.evaluate.baselines import BASELINES, inpaint_baseline


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_change_only_the_hole(name):
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 4:12, 4:20] = 1
    mask[1, :, 20:30, 10:14] = 1
    out = inpaint_baseline(name, image, mask)
    assert out.shape == image.shape
    keep = (mask < 0.5).expand_as(image)
    assert torch.equal(out[keep], image[keep])  # bit for bit outside the hole
    assert not torch.allclose(out[~keep], image[~keep])


def test_mean_fill_is_the_mean_colour_of_the_known_pixels():
    image = torch.zeros(1, 3, 8, 8)
    image[:, 0] = 0.5
    image[:, 1, :4] = 1.0  # the top half is green-ish; it is all known
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 6:, :] = 1  # bottom two rows
    out = inpaint_baseline("mean", image, mask)
    assert out[0, :, 7, 0].tolist() == pytest.approx([0.5, 4 / 6, 0.0])


def test_unknown_baseline_is_refused():
    with pytest.raises(ValueError, match="telea"):
        inpaint_baseline("patchmatch", torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8))
