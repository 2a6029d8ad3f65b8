import numpy as np
import pytest

from inclg.data import DataError
from inclg.data.align import eye_distance
from inclg.data.filelists import read_flist
from inclg.data.landmarks import REGIONS, flip_landmarks
from inclg.data.masks import (
    LANDMARK_MASKS,
    UPPER_LIP_EDGE,
    MaskKind,
    cleft_mask,
    free_form_mask,
    generate_masks,
    hole_ratio,
    landmark_mask,
    lip_mask,
    mask_limit,
    measure_masks,
    ratio_group,
    region_mask,
    select_masks,
    upper_lip_region,
    write_mask_lists,
)
from inclg.io.images import load_mask, save_image


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


def open_mouth(points: np.ndarray, gap: float = 0.35) -> np.ndarray:
    """`points` with the mouth opened by `gap` eye distances, as when laughing: the upper lip
    rises a little, the lower lip, the inner lower lip and the chin drop."""
    eyes = eye_distance(points)
    opened = points.astype(np.float64).copy()
    opened[[61, 62, 63], 1] -= 0.05 * eyes
    opened[[49, 50, 51, 52, 53], 1] -= 0.03 * eyes
    opened[[65, 66, 67, 55, 56, 57, 58, 59], 1] += gap * eyes
    opened[[60, 64, 48, 54], 1] += 0.1 * gap * eyes
    opened[4:13, 1] += 0.6 * gap * eyes * np.sin(np.linspace(0, np.pi, 9))  # the chin drops
    return opened.astype(np.float32)


def below_upper_lip(points: np.ndarray, size: int = 256, tolerance: float = 0.5) -> np.ndarray:
    """[size, size] bool: pixel centres more than `tolerance` px below the upper lip's lower edge
    (the polyline 48, 60-64, 54), between the mouth corners."""
    edge = points[list(UPPER_LIP_EDGE)].astype(np.float64)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    line = np.interp(xs, edge[:, 0], edge[:, 1], left=np.inf, right=np.inf)
    return ys > line + tolerance


def faces(face_points: np.ndarray) -> dict[str, np.ndarray]:
    """Closed, smiling, open and wide-open mouths, and a tilted open one."""
    theta = np.deg2rad(12)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.array([127.5, 127.5])
    tilted = (open_mouth(face_points, 0.3) - centre) @ rotation.T + centre
    return {"closed": face_points, "smile": open_mouth(face_points, 0.12),
            "open": open_mouth(face_points, 0.35), "wide": open_mouth(face_points, 0.6),
            "tilted": tilted.astype(np.float32)}


def test_cleft_covers_the_upper_lip_and_nostril_sill_of_its_side(face_points):
    left = cleft_mask(face_points, "left")
    assert left.shape == (256, 256) and set(np.unique(left)) == {0.0, 1.0}
    assert _centroid(left)[0] > 127.5  # the subject's left is the image's right

    def on(mask: np.ndarray, point: np.ndarray) -> bool:
        x, y = np.round(point).astype(int)
        return bool(mask[y, x])

    # nostril sill and floor, alar base, Cupid's-bow peak, the red lip above its lower edge
    for index in (34, 35, 52):
        assert on(left, face_points[index]), index
    assert on(left, face_points[34] - [0, 5])  # into the nostril
    assert on(left, face_points[63] - [0, 1])  # down to the upper lip's lower edge
    assert not on(left, face_points[30])  # not the nose tip
    assert not on(left, face_points[31]) and not on(left, face_points[50])  # not the other side
    assert not on(left, face_points[66]) and not on(left, face_points[57])  # not the lower lip
    assert 0.005 < hole_ratio(left) < 0.04


def test_bilateral_is_both_sides_and_the_columella_base_not_the_nose_tip(face_points):
    left, right = cleft_mask(face_points, "left"), cleft_mask(face_points, "right")
    both = cleft_mask(face_points, "bilateral")
    assert (both >= np.maximum(left, right)).all()
    x, y = np.round(face_points[33]).astype(int)
    assert both[y, x] and both[y - 3, x]  # the base of the columella
    tip_x, tip_y = np.round(face_points[30]).astype(int)
    assert not both[tip_y, tip_x] and not both[tip_y + 4, tip_x]  # the nose tip stays
    assert hole_ratio(both) < hole_ratio(left) + hole_ratio(right) + 0.005


@pytest.mark.parametrize("name", ["closed", "smile", "open", "wide", "tilted"])
@pytest.mark.parametrize("kind", ["cleft-left", "cleft-right", "cleft-bilateral"])
def test_cleft_masks_stop_at_the_upper_lips_lower_edge(face_points, name, kind):
    points = faces(face_points)[name]
    below = below_upper_lip(points)
    for width, margin in ((0.18, 0.06), (0.26, 0.1), (0.13, 0.03)):  # defaults and jitter range
        mask = landmark_mask(kind, points) > 0.5 if (width, margin) == (0.18, 0.06) else \
            cleft_mask(points, kind.removeprefix("cleft-"), width=width, margin=margin) > 0.5
        assert not (mask & below).any(), (name, width, margin)
        # ... yet it reaches that edge: the red lip is covered down to the mouth opening
        inner = points[63] if kind != "cleft-right" else points[61]
        x, y = np.round(inner).astype(int)
        assert mask[y - 2:y + 1, x].any(), (name, width, margin)
    lip = landmark_mask("lip", points) > 0.5
    if name in ("open", "wide"):
        assert (lip & below).sum() > 100  # the lip mask does cover the open mouth


def test_width_and_margin_change_the_cleft_mask(face_points):
    base = hole_ratio(cleft_mask(face_points, "left"))
    assert hole_ratio(cleft_mask(face_points, "left", width=0.3)) > base * 1.1
    assert hole_ratio(cleft_mask(face_points, "left", margin=0.12)) > base * 1.1
    assert hole_ratio(cleft_mask(face_points, "left", width=0.1, margin=0.0)) < base * 0.9


def test_upper_lip_region_is_everything_above_the_edge(face_points):
    points = open_mouth(face_points)
    region = upper_lip_region(points)
    assert region[:100].all() and not region[240:].any()
    x, y = np.round(points[62]).astype(int)
    assert region[y - 1, x] and not region[y + 2, x]
    assert (region == ~below_upper_lip(points, tolerance=0.0))[:, 95:160].mean() > 0.99


def test_right_cleft_is_the_mirror_of_the_left(face_points):
    for points in (face_points + np.array([3.0, 2.0]), open_mouth(face_points)):
        left = cleft_mask(points, "left")
        right_of_mirrored = cleft_mask(flip_landmarks(points, 256), "right")
        assert _iou(right_of_mirrored, left[:, ::-1]) > 0.95
        right = cleft_mask(points, "right")
        assert _centroid(right)[0] < 127.5 < _centroid(left)[0]


def test_one_mask_kind_enum_and_retired_names(face_points):
    assert [k.value for k in MaskKind] == [
        "lip", "cleft-left", "cleft-right", "cleft-bilateral", "nose"]
    assert MaskKind.parse("cleft-bilateral") is MaskKind.CLEFT_BILATERAL == "cleft-bilateral"
    assert MaskKind.CLEFT_LEFT.cleft_side == "left" and MaskKind.NOSE.cleft_side is None
    for old in ("cleft-both", "bilateral", "both"):
        with pytest.raises(DataError, match=f"'{old}' is now called 'cleft-bilateral'"):
            MaskKind.parse(old)
        with pytest.raises(DataError, match="now called 'cleft-bilateral'"):
            landmark_mask(old, face_points)
    with pytest.raises(DataError, match="unknown cleft side 'both'.*'bilateral'"):
        cleft_mask(face_points, "both")
    assert np.array_equal(landmark_mask(MaskKind.CLEFT_BILATERAL, face_points),
                          cleft_mask(face_points, "bilateral"))
    assert mask_limit("cleft-left", face_points) is not None
    assert mask_limit("lip", face_points) is None and mask_limit("eyes", face_points) is None


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
    with pytest.raises(DataError, match="now called 'cleft-bilateral'"):
        generate_masks("cleft-both", tmp_path / "old")
    with pytest.raises(DataError, match="choose one of lip, .*free-form, eyebrows, eyes"):
        generate_masks("chin", tmp_path / "chin")
    assert "cleft-bilateral" in LANDMARK_MASKS and "cleft-both" not in LANDMARK_MASKS


@pytest.mark.dlib
def test_cleft_masks_on_real_faces_stay_above_the_upper_lips_lower_edge():
    """The fixtures' faces (an infant, a smiling adult with teeth showing, ...) as dlib sees them
    in their aligned crops: each cleft kind reaches the red lip and stops at its lower edge."""
    from pathlib import Path

    from inclg.data.align import fit, transform_points
    from inclg.data.landmarks import create_detector
    from inclg.io.images import load_rgb

    detector = create_detector("dlib")
    photos = sorted((Path(__file__).parent / "fixtures").glob("*_*.*"))
    photos.append(Path(__file__).parents[1] / "infer" / "fixtures" / "face_300x240.jpg")
    gaps = []
    for photo in photos:
        rgb = load_rgb(photo)
        face = detector.detect(rgb)[0]
        points = transform_points(face.landmarks, fit(face.landmarks, rgb.shape[:2]).matrix)
        gaps.append((points[65:68, 1].mean() - points[61:64, 1].mean()) / eye_distance(points))
        below = below_upper_lip(points)
        for kind in ("cleft-left", "cleft-right", "cleft-bilateral"):
            mask = landmark_mask(kind, points) > 0.5
            assert not (mask & below).any(), (photo.name, kind)
            x, y = np.round(points[62]).astype(int)
            assert mask[y - 6:y + 1].any(), (photo.name, kind)  # down at the lip's edge
    assert max(gaps) > 0.12  # one of them smiles with the mouth open
