import numpy as np
import pytest
import torch

from inclg.config import DataConfig
from inclg.data import DataError
from inclg.data.dataset import FaceDataset, color_jitter, square_resize
from inclg.data.filelists import write_flist
from inclg.data.landmarks import save_landmarks
from inclg.io.images import save_image


@pytest.fixture
def pairs(tmp_path, face_points):
    """Two aligned faces on disk: a 256 PNG and a 300 x 400 WebP (not square, not 256)."""
    rng = np.random.default_rng(0)
    images, landmarks = [], []
    for name, (h, w) in (("a.png", (256, 256)), ("b.webp", (300, 400))):
        images.append(tmp_path / name)
        save_image(images[-1], rng.integers(0, 256, (h, w, 3)).astype(np.uint8))
        landmarks.append(tmp_path / f"{name}.txt")
        side = min(h, w)  # pixel centres at integers: x -> (x + 0.5) * scale - 0.5
        save_landmarks(
            landmarks[-1], (face_points + 0.5) * (side / 256) - 0.5 + [(w - side) / 2, 0]
        )
    mask = np.zeros((512, 512), np.uint8)
    mask[100:300, 100:300] = 255
    save_image(tmp_path / "m.png", mask)
    return images, landmarks, [tmp_path / "m.png"]


def test_items_are_image_landmarks_mask_tensors(pairs):
    dataset = FaceDataset(*pairs)
    assert len(dataset) == 2
    for image, landmarks, mask in dataset:
        assert image.shape == (3, 256, 256) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        assert landmarks.shape == (68, 2) and landmarks.dtype == torch.float32
        assert mask.shape == (1, 256, 256) and mask.dtype == torch.float32
        assert set(mask.unique().tolist()) == {0.0, 1.0}


def test_landmarks_follow_the_centre_crop_and_resize(pairs, face_points):
    _, landmarks, _ = FaceDataset(*pairs)[1]  # 300 x 400 photo, face in its centre square
    np.testing.assert_allclose(landmarks.numpy(), face_points, atol=0.05)


def test_square_resize_keeps_pixel_centres():
    image = np.zeros((10, 20, 3), np.uint8)
    _, points = square_resize(image, np.array([[5.0, 0.0], [14.0, 9.0]], np.float32), 20)
    np.testing.assert_allclose(points, [[0.5, 0.5], [18.5, 18.5]])


def test_augmentation_flips_some_items_with_their_landmarks(pairs):
    plain = FaceDataset(*pairs)
    augmented = FaceDataset(*pairs, augment=True, jitter=0.0)
    torch.manual_seed(0)
    flips = 0
    for _ in range(20):
        image, landmarks, _ = augmented[0]
        if not torch.equal(image, plain[0][0]):
            assert torch.equal(image, plain[0][0].flip(-1))
            assert landmarks[36:42, 0].mean() < 128  # the right eye is still on the image's left
            flips += 1
    assert 3 < flips < 17


def test_colour_jitter_is_mild_and_stays_in_range():
    image = torch.rand(3, 32, 32)
    jittered = color_jitter(image, 0.05, torch.Generator().manual_seed(0))
    assert jittered.shape == image.shape and 0 <= jittered.min() and jittered.max() <= 1
    assert 0 < (jittered - image).abs().mean() < 0.05


def test_without_masks_free_form_masks_are_drawn(pairs):
    images, landmarks, _ = pairs
    _, _, mask = FaceDataset(images, landmarks)[0]
    assert mask.shape == (1, 256, 256) and 0 < mask.mean() < 1
    assert torch.equal(mask, FaceDataset(images, landmarks)[0][2])  # validation masks are fixed


def test_from_config_reads_file_lists(pairs, tmp_path):
    images, landmarks, masks = pairs
    for name, items in (("img", images), ("lmk", landmarks), ("msk", masks)):
        write_flist(tmp_path / f"{name}.flist", items)
    config = DataConfig(
        train_images=str(tmp_path / "img.flist"),
        train_landmarks=str(tmp_path / "lmk.flist"),
        train_masks=str(tmp_path / "msk.flist"),
    )
    dataset = FaceDataset.from_config(config, "train")
    assert len(dataset) == 2 and dataset.augment
    with pytest.raises(DataError, match="val_images and data.val_landmarks must name file lists"):
        FaceDataset.from_config(config, "val")


def test_mismatched_lists_are_refused(pairs):
    images, landmarks, _ = pairs
    with pytest.raises(DataError, match="2 images but 1 landmark files"):
        FaceDataset(images, landmarks[:1])
