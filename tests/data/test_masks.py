import numpy as np
import pytest

from inclg.data import DataError
from inclg.data.filelists import read_flist
from inclg.data.imageio import load_mask, save_image
from inclg.data.landmarks import REGIONS, flip_landmarks
from inclg.data.masks import (
    LANDMARK_MASKS,
    cleft_mask,
    free_form_mask,
    generate_masks,
    hole_ratio,
    landmark_mask,
    lip_mask,
    measure_masks,
    ratio_group,
    region_mask,
    select_masks,
    write_mask_lists,
)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a > 0.5) & (b > 0.5)).sum() / ((a > 0.5) | (b > 0.5)).sum())


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask > 0.5)
    return np.array([xs.mean(), ys.mean()])


def test_ratio_and_groups():
    mask = np.zeros((10, 10))
    mask[:3] = 1
    assert hole_ratio(mask) == pytest.approx(0.3)
    assert [ratio_group(r) for r in (0.0, 0.05, 0.2, 0.21, 0.4, 0.6, 0.61)] == [
        None,
        0,
        0,
        1,
        1,
        2,
        None,
    ]


def _mask_set(folder, ratios):
    paths = []
    for i, ratio in enumerate(ratios):
        mask = np.zeros((64, 64), np.uint8)
        mask[: round(ratio * 64)] = 255
        paths.append(folder / f"{i:03d}.png")
        save_image(paths[-1], mask)
    return paths


def test_measure_group_and_seeded_draw(tmp_path):
    ratios = [0.1] * 6 + [0.3] * 6 + [0.5] * 6 + [0.8] * 2
    paths = _mask_set(tmp_path / "masks", ratios)
    measured = measure_masks(paths, size=64)
    np.testing.assert_allclose(measured, [round(r * 64) / 64 for r in ratios])
    first = select_masks(paths, measured, train_per_group=4, val_per_group=2, seed=3)
    again = select_masks(list(reversed(paths)), list(reversed(measured)), 4, 2, seed=3)
    other = select_masks(paths, measured, 4, 2, seed=4)
    assert first == again and first != other
    assert first.available == [6, 6, 6] and first.ungrouped == 2
    for g, (train, val) in enumerate(zip(first.train, first.val)):
        assert len(train) == 4 and len(val) == 2 and not set(train) & set(val)
        assert {ratio_group(measured[paths.index(p)]) for p in train + val} == {g}
    summary = write_mask_lists(tmp_path / "lists", first, paths, measured)
    assert summary["train_per_group"] == [4, 4, 4]
    assert read_flist(tmp_path / "lists" / "train_masks.flist") == [
        p for g in first.train for p in g
    ]
    assert read_flist(tmp_path / "lists" / "val_masks_20-40.flist") == first.val[1]
    assert (tmp_path / "lists" / "ratios.csv").read_text().startswith("path,hole_ratio\n")


def test_too_few_masks_in_a_group_is_a_clear_error(tmp_path):
    paths = _mask_set(tmp_path, [0.1, 0.3, 0.5])
    with pytest.raises(DataError, match=r"only 1 masks .* \(0%, 20%\], 2 are needed"):
        select_masks(paths, measure_masks(paths, 64), 1, 1)


def test_free_form_masks_are_binary_seeded_and_hit_a_ratio_range():
    a = free_form_mask(256, np.random.default_rng(7))
    b = free_form_mask(256, np.random.default_rng(7))
    assert a.shape == (256, 256) and a.dtype == np.float32 and set(np.unique(a)) <= {0.0, 1.0}
    assert np.array_equal(a, b) and 0 < hole_ratio(a) < 1
    rng = np.random.default_rng(0)
    for lo, hi in ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6)):
        assert lo < hole_ratio(free_form_mask(256, rng, (lo, hi))) <= hi


def test_lip_mask_covers_the_mouth_and_little_else(face_points):
    mask = lip_mask(face_points)
    assert mask.shape == (256, 256) and set(np.unique(mask)) == {0.0, 1.0}
    mouth = np.round(face_points[48:68]).astype(int)
    assert mask[mouth[:, 1], mouth[:, 0]].all()
    assert not mask[np.round(face_points[30, 1]).astype(int), 128]  # nose tip stays visible
    assert 0.02 < hole_ratio(mask) < 0.12


def test_cleft_runs_from_upper_lip_into_the_nostril_on_the_subjects_side(face_points):
    left = cleft_mask(face_points, "left")
    assert set(np.unique(left)) == {0.0, 1.0}
    x, _ = _centroid(left)
    assert x > 127.5  # the subject's left is the image's right
    top, bottom = np.nonzero(left.any(axis=1))[0][[0, -1]]
    assert top < face_points[34, 1]  # reaches up into the nostril
    assert bottom >= face_points[63, 1]  # down through the upper lip to the mouth opening
    assert bottom < face_points[57, 1]  # but not the lower lip's bottom edge
    sill, peak = np.round(face_points[34]).astype(int), np.round(face_points[52]).astype(int)
    assert left[sill[1], sill[0]] and left[peak[1], peak[0]]
    assert 0.005 < hole_ratio(left) < 0.05


def test_right_cleft_is_the_mirror_of_the_left(face_points):
    points = face_points + np.array([3.0, 2.0])  # not exactly symmetric about the crop's axis
    left = cleft_mask(points, "left")
    right_of_mirrored = cleft_mask(flip_landmarks(points, 256), "right")
    assert _iou(right_of_mirrored, left[:, ::-1]) > 0.95
    right = cleft_mask(points, "right")
    assert _centroid(right)[0] < 127.5 < _centroid(left)[0]
    both = cleft_mask(points, "both")
    assert np.array_equal(both, np.maximum(left, right))


def test_region_masks_sit_on_their_region(face_points):
    for region, parts in (
        ("nose", ["nose_bridge", "nostrils"]),
        ("eyebrows", ["right_brow", "left_brow"]),
        ("eyes", ["right_eye", "left_eye"]),
    ):
        mask = region_mask(face_points, region)
        for part in parts:
            x, y = np.round(face_points[list(REGIONS[part])].mean(0)).astype(int)
            assert mask[y, x] == 1.0, (region, part)
        assert hole_ratio(mask) < 0.15
    eyes = region_mask(face_points, "eyes")
    assert (
        eyes[np.round(face_points[33, 1]).astype(int), 128] == 0
    )  # nothing between nose and mouth


def test_unknown_kinds_are_refused(face_points):
    with pytest.raises(DataError, match="unknown cleft side 'middle'"):
        cleft_mask(face_points, "middle")
    with pytest.raises(DataError, match="unknown region 'ears'"):
        region_mask(face_points, "ears")
    with pytest.raises(DataError, match="unknown mask kind"):
        landmark_mask("chin", face_points)


def test_generate_free_form_masks_to_disk(tmp_path):
    written = generate_masks(
        "free-form", tmp_path / "ff", count=3, seed=1, size=64, ratio=(0.2, 0.4)
    )
    assert [p.name for p in written] == ["00000.png", "00001.png", "00002.png"]
    assert read_flist(tmp_path / "ff" / "masks.flist") == written
    assert all(0.2 < hole_ratio(load_mask(p)) <= 0.4 for p in written)
    with pytest.raises(DataError, match="name a folder made by `inclg data faces`"):
        generate_masks("lip", tmp_path / "lip")
    assert "cleft-both" in LANDMARK_MASKS
