"""The feathered paste-back: weight 1 on the mask, a smooth ramp, the photo's own bytes beyond."""

import numpy as np
import pytest

from inclg.infer.blend import blend, feather_alpha, mask_window, paste


def disc(shape=(40, 50), centre=(20, 25), radius=6) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_alpha_is_one_on_the_mask_and_zero_beyond_the_radius():
    mask = disc()
    alpha = feather_alpha(mask, 4.0)
    assert alpha.dtype == np.float32 and (alpha[mask] == 1).all()
    yy, xx = np.mgrid[:40, :50]
    distance = np.sqrt((yy - 20) ** 2 + (xx - 25) ** 2) - 6  # to the disc's edge, roughly
    assert (alpha[distance > 4.6] == 0).all()
    ring = (distance > 0.6) & (distance < 3.4)
    assert ((alpha[ring] > 0) & (alpha[ring] < 1)).all()
    # it falls monotonically along a ray leaving the mask
    ray = alpha[20, 31:36]
    assert (np.diff(ray) <= 0).all() and ray[0] > ray[-1]


def test_zero_radius_gives_the_hard_mask():
    mask = disc()
    assert np.array_equal(feather_alpha(mask, 0), mask.astype(np.float32))


def test_blend_copies_the_original_bit_for_bit_where_alpha_is_zero():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    alpha = feather_alpha(disc(), 4.0)
    out = blend(original, generated, alpha)
    assert np.array_equal(out[alpha == 0], original[alpha == 0])
    assert np.array_equal(out[alpha == 1], generated[alpha == 1])
    half = np.full((40, 50), 0.5, np.float32)
    mid = blend(np.zeros_like(original), np.full_like(original, 200), half)
    assert (mid == 100).all()


def test_paste_changes_only_the_window_and_leaves_the_photo_alone():
    photo = np.full((60, 80, 3), 7, np.uint8)
    window = (10, 5, 60, 45)  # x0, y0, x1, y1
    alpha = np.zeros((40, 50), np.float32)
    alpha[10:20, 10:20] = 1
    out = paste(photo, np.full((40, 50, 3), 250, np.uint8), alpha, window)
    assert (photo == 7).all()  # a copy, not in place
    changed = np.argwhere((out != photo).any(axis=2))
    assert changed.min(0).tolist() == [15, 20] and changed.max(0).tolist() == [24, 29]


@pytest.mark.parametrize("margin", [0, 3, 100])
def test_mask_window_is_the_grown_bounding_box(margin):
    mask = np.zeros((30, 40), bool)
    mask[10:12, 20:25] = True
    x0, y0, x1, y1 = mask_window(mask, margin)
    assert (x0, y0) == (max(0, 20 - margin), max(0, 10 - margin))
    assert (x1, y1) == (min(40, 25 + margin), min(30, 12 + margin))
    assert mask_window(np.zeros((5, 5), bool), 2) is None
