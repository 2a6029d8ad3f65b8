from pathlib import Path

import numpy as np
import pytest
import torch

from inclg.data import DataError
from inclg.data.align import eye_distance
from inclg.data.dataset import flip_horizontal
from inclg.data.landmarks import (
    IBUG68_FLIP,
    REGIONS,
    MissingBackendError,
    StubDetector,
    create_detector,
    dlib_predictor_path,
    flip_landmarks,
    load_landmarks,
    save_landmarks,
)
from inclg.io.images import load_rgb

FIXTURES = Path(__file__).parent / "fixtures"


def _random_points(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (68, 2)).astype(np.float32)


def test_flip_permutation_is_an_involution_over_all_68_points():
    assert sorted(IBUG68_FLIP) == list(range(68))
    assert all(IBUG68_FLIP[IBUG68_FLIP[i]] == i for i in range(68))
    on_axis = [i for i in range(68) if IBUG68_FLIP[i] == i]
    assert on_axis == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]  # chin, nose, lip centres


def test_flipping_twice_is_identity():
    points = _random_points()
    np.testing.assert_allclose(flip_landmarks(flip_landmarks(points, 256), 256), points, atol=1e-4)


def test_flipped_set_is_the_permutation_of_mirrored_points():
    points = _random_points(1)
    mirrored = points.copy()
    mirrored[:, 0] = 255 - mirrored[:, 0]
    np.testing.assert_allclose(flip_landmarks(points, 256), mirrored[list(IBUG68_FLIP)])


def test_left_eye_becomes_right_eye(face_points):
    flipped = flip_landmarks(face_points, 256)
    right, left = list(REGIONS["right_eye"]), list(REGIONS["left_eye"])
    # the right eye is on the image's left; after the flip the new right eye is the old left eye
    assert face_points[right, 0].mean() < 128 < face_points[left, 0].mean()
    np.testing.assert_allclose(
        flipped[right, 0].mean(), 255 - face_points[left, 0].mean(), atol=1e-4
    )
    assert flipped[right, 0].mean() < 128
    # outer corner stays an outer corner: 36 (right outer) <- 45 (left outer)
    np.testing.assert_allclose(
        flipped[36], [255 - face_points[45, 0], face_points[45, 1]], atol=1e-4
    )
    # a symmetric face is its own mirror image
    np.testing.assert_allclose(flipped, face_points, atol=1e-3)


def test_tensor_flip_matches_numpy_flip():
    points = _random_points(2)
    image = torch.rand(3, 256, 256)
    flipped_image, flipped_points = flip_horizontal(image, torch.from_numpy(points))
    np.testing.assert_allclose(flipped_points.numpy(), flip_landmarks(points, 256), atol=1e-5)
    assert torch.equal(flipped_image[:, :, 0], image[:, :, 255])
    again_image, again_points = flip_horizontal(flipped_image, flipped_points)
    assert torch.equal(again_image, image) and torch.allclose(
        again_points, torch.from_numpy(points)
    )


def test_landmark_text_round_trip(tmp_path):
    points = _random_points(3)
    save_landmarks(tmp_path / "a.txt", points)
    text = (tmp_path / "a.txt").read_text()
    assert len(text.split()) == 136 and text.count("\n") == 1
    np.testing.assert_allclose(load_landmarks(tmp_path / "a.txt"), points, atol=0.006)
    np.testing.assert_allclose(np.genfromtxt(tmp_path / "a.txt").reshape(68, 2), points, atol=0.006)
    (tmp_path / "b.txt").write_text("1 2 3")
    with pytest.raises(DataError, match="b.txt: has 3 numbers, expected 136"):
        load_landmarks(tmp_path / "b.txt")


def test_stub_detector_is_deterministic_and_covers_the_reject_cases():
    stub = create_detector("stub")
    photo = load_rgb(FIXTURES / "celeba_183209.webp")
    faces = stub.detect(photo)
    assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2)
    np.testing.assert_array_equal(faces[0].landmarks, StubDetector().detect(photo)[0].landmarks)
    assert stub.detect(np.full((100, 100, 3), 128, np.uint8)) == []
    assert len(stub.detect(np.concatenate([photo, photo], axis=1))) == 1  # 2:1 is still one
    wide = np.concatenate([photo, photo, photo], axis=1)
    assert len(stub.detect(wide)) == 2


def test_unknown_detector_names_the_choices():
    with pytest.raises(DataError, match="choose one of dlib, fan, stub"):
        create_detector("mtcnn")


def test_fan_without_face_alignment_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "face_alignment", None)  # as if not installed
    with pytest.raises(MissingBackendError, match="pip install face-alignment.*place its weights"):
        create_detector("fan")


@pytest.mark.dlib
def test_dlib_predictor_file_is_found_without_importing_the_package():
    path = dlib_predictor_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.stat().st_size > 50_000_000


@pytest.mark.dlib
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*_*.*")))
def test_dlib_finds_one_face_with_plausible_landmarks(name):
    detector = create_detector("dlib")
    image = load_rgb(FIXTURES / name)
    faces = detector.detect(image)
    assert len(faces) == 1
    points = faces[0].landmarks
    assert points.shape == (68, 2) and points.dtype == np.float32
    # anatomy, in image coordinates: brows above eyes above nose tip above mouth above chin,
    # the subject's right eye on the image's left
    y = {k: points[list(v), 1].mean() for k, v in REGIONS.items()}
    assert y["right_brow"] < y["right_eye"] < y["nostrils"] < y["outer_lips"] < points[8, 1]
    assert (
        points[list(REGIONS["right_eye"]), 0].mean() < points[list(REGIONS["left_eye"]), 0].mean()
    )
    assert 0.15 * image.shape[1] < eye_distance(points) < 0.6 * image.shape[1]
    assert detector.name.startswith("dlib-")


def test_fan_with_the_package_but_no_weights_names_the_files_and_downloads_nothing(
    monkeypatch, tmp_path
):
    import sys
    import types

    def no_download(*args, **kwargs):
        raise AssertionError(
            "FaceAlignment must not be built (it would download) without the weights"
        )

    package = types.ModuleType("face_alignment")
    package.api = types.SimpleNamespace(
        models_urls={},
        default_model_urls={"2DFAN-4": "https://example.invalid/2DFAN4-cd938726ad.zip"},
    )
    package.FaceAlignment = no_download
    sfd = types.ModuleType("face_alignment.detection.sfd.sfd_detector")
    sfd.models_urls = {"s3fd": "https://example.invalid/s3fd-619a316812.pth"}
    for name, module in (
        ("face_alignment", package),
        ("face_alignment.detection", types.ModuleType("d")),
        ("face_alignment.detection.sfd", types.ModuleType("s")),
        ("face_alignment.detection.sfd.sfd_detector", sfd),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(
        MissingBackendError,
        match="weights are not on disk.*2DFAN4-cd938726ad.zip.*s3fd-619a316812.pth",
    ):
        create_detector("fan")
