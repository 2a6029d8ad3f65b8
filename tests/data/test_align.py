import numpy as np
import pytest

from inclg.data import DataError
from inclg.data.align import (
    ALIGN_POINTS,
    Alignment,
    align,
    estimate_similarity,
    fit,
    invert_affine,
    outside_mask,
    template,
    transform_points,
    unwarp,
    warp,
)


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, [[tx], [ty]]])


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    return np.kron(small, np.ones((8, 8, 1), np.uint8))[:h, :w]


def test_estimate_recovers_a_known_similarity_exactly(face_points):
    truth = _similarity(0.6, 17.0, 40.0, -12.0)
    moved = transform_points(face_points, truth)
    np.testing.assert_allclose(estimate_similarity(face_points, moved), truth, atol=1e-9)
    round_trip = transform_points(transform_points(face_points, truth), invert_affine(truth))
    np.testing.assert_allclose(round_trip, face_points, atol=1e-9)


def test_estimate_rejects_degenerate_points():
    with pytest.raises(DataError, match="all at one point"):
        estimate_similarity(np.ones((5, 2)), np.zeros((5, 2)))


def test_a_face_anywhere_in_a_photo_lands_on_the_template(face_points):
    # the template face placed, rotated and shrunk inside a 400 x 300 photo
    source_points = transform_points(face_points, _similarity(0.7, -10.0, 60.0, 50.0))
    crop, points, alignment = align(_photo(300, 400), source_points.astype(np.float32))
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(points, template(256), atol=1e-3)
    assert isinstance(alignment, Alignment) and alignment.outside == pytest.approx(0.0, abs=1e-6)
    assert alignment.scale == pytest.approx(1 / 0.7, rel=1e-6)
    assert alignment.residual == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(alignment.inverse, invert_affine(alignment.matrix))


def test_alignment_is_deterministic(face_points):
    photo = _photo(300, 400, 1)
    source_points = transform_points(face_points, _similarity(0.8, 5.0, 30.0, 10.0)).astype(
        np.float32
    )
    a = align(photo, source_points)
    b = align(photo.copy(), source_points.copy())
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_outside_fraction_of_a_crop_half_beyond_the_photo():
    shift_left_half = np.array(
        [[1.0, 0, 128], [0, 1.0, 0]]
    )  # source lands on the crop's right half
    assert outside_mask(shift_left_half, (256, 256), 256).mean() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("border", ["blur", "reflect", "replicate", "constant"])
def test_border_modes_keep_the_photo_pixels_and_fill_the_rest(border, face_points):
    photo = _photo(256, 256, 2)
    matrix = np.array([[1.0, 0, 64], [0, 1.0, 0]])  # crop column c shows photo column c - 64
    alignment = Alignment(matrix, invert_affine(matrix), 256, (256, 256), 0.25, 0.0)
    crop = warp(photo, alignment, border)
    assert np.array_equal(crop[:, 70:], photo[:, 6:192])
    filled = crop[:, :60].astype(float)
    if border == "constant":
        assert filled.max() == 0
    else:
        assert filled.mean() > 20
    if border == "blur":  # far from the photo the fill fades to a smooth median colour
        assert crop[:, :20].std() < 0.5 * photo.std()


def test_unknown_border_mode():
    matrix = np.eye(2, 3)
    with pytest.raises(DataError, match="unknown border mode 'wrap'"):
        warp(_photo(256, 256), Alignment(matrix, matrix, 256, (256, 256), 0.0, 0.0), "wrap")


def test_unwarp_puts_the_crop_back_where_the_face_was(face_points):
    photo = _photo(300, 400, 3)
    source_points = transform_points(face_points, _similarity(1.0, 0.0, 70.0, 20.0)).astype(
        np.float32
    )
    crop, _, alignment = align(photo, source_points)
    back = unwarp(crop, alignment)
    assert back.shape == photo.shape
    # a pure translation: the crop's area of the photo is restored exactly
    assert np.array_equal(back[40:250, 100:300], photo[40:250, 100:300])


def test_fit_uses_only_the_stable_points(face_points):
    moved = face_points.copy()
    moved[:17] += 25.0  # a distorted jaw line must not move the alignment
    moved[55:60] += 10.0  # nor must a distorted lower lip (not a fitting point)
    assert set(ALIGN_POINTS).isdisjoint(range(17)) and 57 not in ALIGN_POINTS
    np.testing.assert_allclose(fit(moved, (256, 256)).matrix, np.eye(2, 3), atol=1e-5)
