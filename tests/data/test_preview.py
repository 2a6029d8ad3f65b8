import numpy as np
import pytest

from inclg.data import DataError
from inclg.data.faces import FaceJob, FaceOptions
from inclg.data.preview import contact_sheet, draw_face, preview_prepared
from inclg.io.images import load_rgb, save_image


def test_draw_face_marks_landmarks_and_mask(face_points):
    image = np.full((256, 256, 3), 100, np.uint8)
    mask = np.zeros((256, 256), np.float32)
    mask[200:, :] = 1
    drawn = draw_face(image, face_points, mask)
    assert drawn.shape == image.shape and (image == 100).all()  # the input is not modified
    x, y = np.round(face_points[37]).astype(int)
    assert tuple(drawn[y, x]) == (0, 255, 0)  # the subject's right eye in green
    assert drawn[250, 5, 0] > drawn[250, 5, 1]  # the hole is tinted red


def test_contact_sheet_tiles_cells():
    cells = [np.full((10, 10, 3), i, np.uint8) for i in range(5)]
    sheet = contact_sheet(cells, columns=3, gap=2)
    assert sheet.shape == (2 * 12 + 2, 3 * 12 + 2, 3)
    assert sheet[14, 2, 0] == 3  # first cell of the second row
    with pytest.raises(DataError, match="nothing to show"):
        contact_sheet([])


def test_preview_of_a_prepared_folder(photo_dirs, tmp_path):
    save_image(photo_dirs[0] / "blank.png", np.full((64, 64, 3), 9, np.uint8))
    prepared = tmp_path / "prepared"
    list(FaceJob(photo_dirs, prepared, FaceOptions(detector="stub")).run(0))
    cells = preview_prepared(
        prepared, tmp_path / "sheet.png", count=10, columns=3, cell=64, rejects=2
    )
    assert cells == 5  # 4 faces + 1 reject
    assert load_rgb(tmp_path / "sheet.png").shape == (2 * 66 + 2, 3 * 66 + 2, 3)
