import numpy as np
import pytest
import torch

from inclg.config import DataConfig
from inclg.data import DataError
from inclg.data.filelists import write_flist
from inclg.data.landmarks import save_landmarks
from inclg.data.masks import lip_mask
from inclg.data.memory import CropStore, MemoryFaceDataset, Region, jittered_landmark_mask
from inclg.io.images import save_image

WINDOW = (64, 100, 128)


@pytest.fixture
def lists(tmp_path, face_points):
    """Three 256 crops whose pixels encode their coordinates, landmark files and a mask list."""
    yy, xx = np.mgrid[0:256, 0:256]
    images, marks = [], []
    for i in range(3):
        pixels = np.stack([xx, yy, np.full_like(xx, 40 * i)], -1).astype(np.uint8)
        images.append(tmp_path / f"{i}.png")
        save_image(images[-1], pixels)
        marks.append(tmp_path / f"{i}.txt")
        save_landmarks(marks[-1], face_points)
    mask = np.zeros((256, 256), np.uint8)
    mask[:64, :] = 255
    save_image(tmp_path / "m.png", mask)
    for name, items in (("images", images), ("landmarks", marks), ("masks", [tmp_path / "m.png"])):
        write_flist(tmp_path / f"{name}.flist", items)
    return tmp_path


def config(folder, **kw) -> DataConfig:
    return DataConfig(train_images=str(folder / "images.flist"),
                      train_landmarks=str(folder / "landmarks.flist"),
                      train_masks=str(folder / "masks.flist"), val_images=str(folder / "images.flist"),
                      val_landmarks=str(folder / "landmarks.flist"),
                      val_masks=str(folder / "masks.flist"), in_memory=True, **kw)


def test_items_are_the_window_with_landmarks_in_window_pixels(lists, face_points):
    dataset = MemoryFaceDataset.from_config(config(lists), WINDOW, "val")
    image, landmarks, mask = dataset[1]
    assert image.shape == (3, 128, 128) and mask.shape == (1, 128, 128)
    # the red / green channels hold x / y of the crop: the window starts at (64, 100)
    assert image[0, 0, 0] * 255 == pytest.approx(64) and image[1, 0, 0] * 255 == pytest.approx(100)
    assert image[2, 5, 5] * 255 == pytest.approx(40)  # item 1
    np.testing.assert_allclose(landmarks.numpy(), face_points - [64, 100], atol=1e-5)


def test_validation_holes_are_fixed_per_item(lists):
    dataset = MemoryFaceDataset.from_config(config(lists, landmark_masks=0.5), WINDOW, "val")
    for i in range(3):
        assert torch.equal(dataset[i][2], dataset[i][2])


def test_training_shift_moves_image_and_landmarks_together(lists, face_points):
    dataset = MemoryFaceDataset.from_config(config(lists, shift=6, color_jitter=0.0, flip=False),
                                            WINDOW, "train")
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, landmarks, _ = dataset[0]
        x0, y0 = round(float(image[0, 0, 0]) * 255), round(float(image[1, 0, 0]) * 255)
        seen.add((x0, y0))
        assert 58 <= x0 <= 70 and 94 <= y0 <= 106
        np.testing.assert_allclose(landmarks.numpy(), face_points - [x0, y0], atol=1e-4)
    assert len(seen) > 1


def test_landmark_holes_cover_the_mouth(lists, face_points):
    dataset = MemoryFaceDataset.from_config(config(lists, landmark_masks=1.0), WINDOW, "train")
    mouth = np.round(face_points[48:68] - [64, 100]).astype(int)
    for seed in range(10):
        torch.manual_seed(seed)
        _, _, mask = dataset[0]
        assert 0.01 < float(mask.mean()) < 0.6
        # every kind (lip, cleft, nose) touches the upper lip or the nose base
        assert mask[0, mouth[:, 1].min() - 20:mouth[:, 1].max(), mouth[:, 0].min():
                    mouth[:, 0].max()].any()


def test_jittered_lip_mask_stays_near_the_exact_one(face_points):
    exact = lip_mask(face_points) > 0
    for seed in range(5):
        drawn = jittered_landmark_mask("lip", face_points, 256, np.random.default_rng(seed)) > 0
        overlap = (exact & drawn).sum() / (exact | drawn).sum()
        assert overlap > 0.5


def test_cache_is_written_and_reused(lists):
    from inclg.data.filelists import read_flist

    images, marks = read_flist(lists / "images.flist"), read_flist(lists / "landmarks.flist")
    first = CropStore.load(images, marks, Region(*WINDOW), 256, lists / "cache")
    assert len(list((lists / "cache").glob("crops-*.npy"))) == 2
    second = CropStore.load(images, marks, Region(*WINDOW), 256, lists / "cache")
    np.testing.assert_array_equal(first.images, second.images)


def test_window_that_does_not_fit_is_refused(lists):
    with pytest.raises(DataError, match="does not fit"):
        MemoryFaceDataset.from_config(config(lists, shift=40), (64, 100, 128), "train")


def test_without_a_mask_list_all_holes_must_be_landmark_drawn(lists):
    cfg = config(lists)
    cfg.train_masks = None
    with pytest.raises(DataError, match="landmark_masks"):
        MemoryFaceDataset.from_config(cfg, WINDOW, "train")
