"""Predictor end to end on a real photo with dlib: geometry, bit-exact paste-back, and a clear
error for every kind of bad input."""

from __future__ import annotations

import io
import tracemalloc
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from inclg.data.align import eye_distance
from inclg.data.landmarks import Face
from inclg.data.masks import UPPER_LIP_EDGE
from inclg.errors import DataError, PredictError
from inclg.infer.pipeline import seed_for
from inclg.infer.report import result_png, result_record
from inclg.io.images import decode_rgb, read_photo

pytestmark = pytest.mark.dlib

PHOTO = Path(__file__).parent / "fixtures" / "face_300x240.jpg"


def encode(array: np.ndarray, fmt: str = "PNG", **params) -> bytes:
    """Encode an array (RGB, RGBA, L or I;16) with Pillow."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **params)
    return buffer.getvalue()


def ellipse_mask(shape: tuple[int, int], centre: tuple[int, int],
                 axes: tuple[int, int]) -> np.ndarray:
    """[H, W] uint8 mask, 255 inside an ellipse."""
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
    return mask


@pytest.fixture(scope="module")
def mouth(predictor, pixels) -> tuple[int, int]:
    """Centre (x, y) of the fixture's mouth, from the detector."""
    x, y = predictor.detect(pixels)[0].landmarks[48:68].mean(0)
    return round(float(x)), round(float(y))


@pytest.fixture(scope="module")
def lip_mask(pixels, mouth) -> np.ndarray:
    return ellipse_mask(pixels.shape[:2], mouth, (22, 12))


def check_result(result, pixels: np.ndarray) -> None:
    """Same size; only the dilated mask changed; landmarks and boxes inside the photo."""
    h, w = pixels.shape[:2]
    assert result.image.shape == pixels.shape and result.image.dtype == np.uint8
    changed = result.changed_region()
    assert np.array_equal(result.image[~changed], pixels[~changed])  # bit for bit
    assert (result.image[changed] != pixels[changed]).any()
    assert result.landmarks.shape == (68, 2)
    assert (result.landmarks >= 0).all() and (result.landmarks[:, 0] <= w - 1).all()
    assert (result.landmarks[:, 1] <= h - 1).all()
    x0, y0, x1, y1 = result.crop_box
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h


def test_auto_lip_mask_end_to_end(predictor, pixels, mouth):
    result = predictor(PHOTO, auto_mask="lip")
    check_result(result, pixels)
    assert result.trained and result.warning is None and result.model_id == "tiny"
    assert len(result.checksum) == 64 and result.details.mask_source == "auto:lip"
    # the mask drawn from the landmarks sits on the mouth
    ys, xs = np.nonzero(result.changed_region())
    assert abs(xs.mean() - mouth[0]) < 8 and abs(ys.mean() - mouth[1]) < 10
    assert set(result.timings) >= {"read", "detect", "align", "model", "paste", "total"}
    assert result.details.crop.image.shape == (256, 256, 3) and result.details.crop.hole.any()


@pytest.mark.parametrize("kind", ["cleft-left", "cleft-right", "cleft-bilateral", "nose"])
def test_every_auto_mask_lands_on_the_face(predictor, pixels, kind):
    result = predictor(pixels, auto_mask=kind)
    check_result(result, pixels)
    assert 0 < result.details.mask_stats["face_fraction"] < 0.2


def test_cleft_sides_are_the_subjects(predictor, pixels):
    left = predictor(pixels, auto_mask="cleft-left").changed_region()
    right = predictor(pixels, auto_mask="cleft-right").changed_region()
    assert np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean()  # subject's left = image right


def test_user_mask_changes_only_its_dilation(predictor, pixels, lip_mask):
    result = predictor(pixels, mask=lip_mask)
    check_result(result, pixels)
    region = result.details.region
    x0, y0, x1, y1 = region.window
    assert np.array_equal(region.mask, lip_mask[y0:y1, x0:x1] > 0)
    changed = result.changed_region()
    assert changed[lip_mask > 0].all()
    radius = int(np.ceil(result.details.mask_stats["feather_px"]))
    grown = cv2.dilate(lip_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                           (2 * radius + 3, 2 * radius + 3)))
    assert not changed[grown == 0].any()
    assert result.details.mask_stats["area_px"] == int((lip_mask > 0).sum())


def test_same_input_same_output_and_seeds_per_file(predictor, pixels, lip_mask):
    a = predictor(pixels, mask=lip_mask, seed=3)
    b = predictor(pixels, mask=lip_mask, seed=3)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.landmarks, b.landmarks)
    assert seed_for(0, "a.jpg") == seed_for(0, "a.jpg") != seed_for(0, "b.jpg")
    assert seed_for(0, "b.jpg") != seed_for(1, "b.jpg")
    assert 0 <= seed_for(7, "x.png") < 2**32


def _mask_variants(lip_mask: np.ndarray) -> dict[str, object]:
    white = lip_mask
    rgba = np.zeros((*white.shape, 4), np.uint8)
    rgba[..., 0] = 255  # red paint on a transparent layer: opacity is the region
    rgba[..., 3] = white
    white_paint = np.full((*white.shape, 4), 255, np.uint8)
    white_paint[..., 3] = white  # white paint on a transparent layer: the paint, not the page
    opaque = np.dstack([np.repeat(white[..., None], 3, axis=2), np.full(white.shape, 255,
                                                                        np.uint8)])
    palette = Image.fromarray(white).convert("P")
    return {
        "grey png": encode(white),
        "rgb png": encode(np.repeat(white[..., None], 3, axis=2)),
        "rgba png": encode(rgba),
        "white paint on transparency": encode(white_paint),
        "opaque white on black rgba": encode(opaque),
        "la png": encode(np.dstack([np.zeros_like(white), white])),
        "palette png": _pil_bytes(palette),
        "16-bit png": encode(white.astype(np.uint16) * 257),
        "1-bit png": _one_bit(white),
        "bool array": white > 0,
        "float array": white.astype(np.float32) / 255,
        "pil image": Image.fromarray(white),
    }


def _pil_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def _one_bit(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask > 0).save(buffer, "PNG")
    return buffer.getvalue()


def test_every_mask_format_gives_the_same_region(predictor, pixels, lip_mask):
    for name, variant in _mask_variants(lip_mask).items():
        region = predictor(pixels, mask=variant).details.region
        x0, y0, x1, y1 = region.window
        assert np.array_equal(region.mask, lip_mask[y0:y1, x0:x1] > 0), name


def test_anti_aliased_edges_are_thresholded(predictor, pixels, lip_mask):
    soft = cv2.GaussianBlur(lip_mask, (0, 0), 0.8)
    region = predictor(pixels, mask=soft).details.region
    x0, y0, x1, y1 = region.window
    expected = lip_mask[y0:y1, x0:x1] > 0
    assert (region.mask != expected).sum() < 0.05 * expected.sum()


def bad(predictor, photo, match: str, **kwargs) -> str:
    """Run the predictor expecting a one-line DataError that matches `match`."""
    with pytest.raises(DataError, match=match) as info:
        predictor(photo, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_masks_are_refused_with_their_reason(predictor, pixels, lip_mask):
    bad(predictor, pixels, "mask is 200x100 but the photo", mask=np.zeros((100, 200), np.uint8))
    bad(predictor, pixels, "mask is empty", mask=np.zeros_like(lip_mask))
    gradient = np.tile(np.linspace(0, 255, pixels.shape[1]).astype(np.uint8), (pixels.shape[0], 1))
    bad(predictor, pixels, "not black and white", mask=gradient)
    bad(predictor, pixels, "not black and white", mask=encode(pixels))  # the photo as its own mask
    bad(predictor, pixels, r"covers \d+% of the face, more than 60%", mask=255 - lip_mask)
    corner = np.zeros_like(lip_mask)
    corner[:8, :8] = 255
    bad(predictor, pixels, "does not touch the face", mask=corner)
    bad(predictor, pixels, "cannot be read as a mask", mask=b"not an image")
    bad(predictor, pixels, "either a mask or an automatic mask", mask=lip_mask, auto_mask="lip")
    bad(predictor, pixels, "either a mask or an automatic mask")
    bad(predictor, pixels, "unknown automatic mask 'teeth'", auto_mask="teeth")


def test_bad_photos_are_refused_with_their_reason(predictor, pixels):
    data = PHOTO.read_bytes()
    bad(predictor, data[: len(data) // 2], "truncated", name="half.jpg", auto_mask="lip")
    bad(predictor, b"hello", "cannot be read as an image", auto_mask="lip")
    bad(predictor, PHOTO.parent / "missing.jpg", "cannot be opened", auto_mask="lip")
    flat = np.full_like(pixels, 128)
    bad(predictor, flat, "no face found", auto_mask="lip")
    huge = io.BytesIO()
    Image.new("1", (12000, 9000)).save(huge, "PNG")  # 108 MP, refused from the header alone
    bad(predictor, huge.getvalue(), "12000x9000 is 108 megapixels, above the 100 MP limit",
        auto_mask="lip")
    bad(predictor, np.zeros((4, 4, 4), np.float32), "must be H x W x 3", auto_mask="lip")


def test_several_faces_are_listed_and_one_can_be_chosen(predictor, pixels):
    two = np.concatenate([pixels, pixels[:, ::-1]], axis=1)  # [240, 600, 3]
    message = bad(predictor, two, r"2 faces found, largest first: 0: box \(\d+,\d+\)-\(\d+,\d+\), "
                  r"\d+ px; 1: box .*choose one with --face N", auto_mask="lip")
    assert "image" in message
    result = predictor(two, auto_mask="lip", face=1)
    check_result(result, two)
    assert result.details.face_index == 1 and len(result.details.faces) == 2
    chosen_x = (result.face.box[0] + result.face.box[2]) / 2
    other_x = (result.details.faces[0].box[0] + result.details.faces[0].box[2]) / 2
    xs = np.nonzero(result.changed_region())[1]
    assert abs(xs.mean() - chosen_x) < abs(xs.mean() - other_x)
    bad(predictor, two, "there is no face 5; found 2", auto_mask="lip", face=5)


def _exif_rotated(data: bytes) -> bytes:
    """The photo stored turned by 90 degrees with EXIF orientation 6, as phones save it."""
    img = Image.open(io.BytesIO(data))
    stored = img.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back when shown
    exif = img.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def test_exif_rotated_phone_photo_is_predicted_upright(predictor, pixels):
    data = _exif_rotated(PHOTO.read_bytes())
    assert Image.open(io.BytesIO(data)).size == (240, 300)  # stored portrait
    upright = decode_rgb(data)
    assert upright.shape == pixels.shape  # shown landscape, as the original
    result = predictor(data, auto_mask="lip", name="phone.jpg")
    check_result(result, upright)
    assert "EXIF orientation 6 applied" in result.photo.notes
    stored_mask = np.zeros((300, 240), np.uint8)  # drawn on the file's pixels, not as shown
    stored_mask[100:120, 100:140] = 255
    bad(predictor, data, "displayed rotated .*EXIF orientation 6", mask=stored_mask,
        name="phone.jpg")


@pytest.mark.parametrize("variant", ["greyscale", "rgba", "16-bit grey", "16-bit rgb"])
def test_unusual_pngs_are_converted_and_noted(predictor, pixels, variant):
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    if variant == "greyscale":
        data, note = encode(grey), "greyscale"
    elif variant == "rgba":
        data, note = encode(np.dstack([pixels, np.full(grey.shape, 200, np.uint8)])), "transparency"
    elif variant == "16-bit grey":
        data, note = encode(grey.astype(np.uint16) * 257), "16-bit"
    else:
        png = cv2.imencode(".png", pixels[..., ::-1].astype(np.uint16) * 257)[1]
        data, note = png.tobytes(), "16-bit"
    photo = read_photo(data, variant)
    assert any(note in n for n in photo.notes), photo.notes
    result = predictor(photo, auto_mask="lip")
    check_result(result, photo.pixels)


def test_8000x6000_photo_stays_lean(predictor, pixels):
    """Only a window around the face is processed (the speed of this lives in benchmarks/)."""
    big = cv2.resize(pixels, (8000, 6000), interpolation=cv2.INTER_LINEAR)
    tracemalloc.start()
    try:
        result = predictor(big, auto_mask="lip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.image.shape == big.shape and result.face.method == "hog-up0"
    assert peak < 2.5 * big.nbytes, f"peak {peak / 1e6:.0f} MB"  # the result copy + the window
    x0, y0, x1, y1 = result.details.region.window  # outside the window, the photo is untouched
    for outside in (np.s_[:y0], np.s_[y1:], np.s_[y0:y1, :x0], np.s_[y0:y1, x1:]):
        assert np.array_equal(result.image[outside], big[outside])
    inside = np.s_[y0:y1, x0:x1]
    changed = result.details.region.alpha > 0
    assert np.array_equal(result.image[inside][~changed], big[inside][~changed])
    # landmarks found on the 640 px copy land where full-resolution detection would put them
    ratio = np.array([8000 / 300, 6000 / 240])
    expected = (predictor.detect(pixels)[0].landmarks + 0.5) * ratio - 0.5
    assert np.abs(result.face.landmarks[36:48] - expected[36:48]).max() < 2 * ratio.max()


def test_a_face_small_in_the_detection_copy_is_refined_at_full_detail(predictor, pixels):
    canvas = np.full((960, 1280, 3), 90, np.uint8)  # the face is 300 px of 1280: 150 px at 640
    canvas[360:600, 490:790] = pixels
    result = predictor(canvas, auto_mask="lip")
    check_result(result, canvas)
    assert result.face.method.endswith("-refined")
    truth = predictor.detector.detect(pixels)[0].landmarks + np.float32([490, 360])
    assert np.abs(result.face.landmarks - truth).mean() < 0.5


def test_bf16_precision_runs_and_stays_close(tiny_weights, pixels):
    from inclg.infer import Predictor

    fp32 = Predictor.from_pretrained(tiny_weights)(pixels, auto_mask="lip")
    bf16 = Predictor.from_pretrained(tiny_weights, precision="bf16")(pixels, auto_mask="lip")
    difference = np.abs(fp32.details.crop.output.astype(int) - bf16.details.crop.output.astype(int))
    assert difference.mean() < 3
    with pytest.raises(PredictError, match="precision must be fp32 or bf16"):
        Predictor.from_pretrained(tiny_weights, precision="fp16")  # type: ignore[arg-type]


class FixedDetector:
    """A detector that finds one face with the given landmarks (photo pixels)."""

    name = "fixed"

    def __init__(self, points: np.ndarray) -> None:
        self.points = np.asarray(points, np.float32)

    def detect(self, image: np.ndarray) -> list[Face]:
        (x0, y0), (x1, y1) = self.points.min(0), self.points.max(0)
        return [Face((float(x0), float(y0), float(x1), float(y1)), self.points.copy(), 1.0,
                     "fixed")]


def laughing(points: np.ndarray, gap: float = 0.4) -> np.ndarray:
    """The face's landmarks with the mouth wide open (`gap` eye distances between the lips)."""
    eyes = eye_distance(points)
    opened = points.astype(np.float64).copy()
    opened[[61, 62, 63], 1] -= 0.04 * eyes
    opened[[65, 66, 67, 55, 56, 57, 58, 59], 1] += gap * eyes
    opened[4:13, 1] += 0.6 * gap * eyes * np.sin(np.linspace(0, np.pi, 9))
    return opened.astype(np.float32)


def below_edge(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[H, W] bool: pixels more than half a pixel below the upper lip's lower edge (points 48,
    60-64, 54), between the mouth corners."""
    edge = points[list(UPPER_LIP_EDGE)].astype(np.float64)
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return ys > np.interp(xs, edge[:, 0], edge[:, 1], left=np.inf, right=np.inf) + 0.5


def test_cleft_masks_change_nothing_below_the_upper_lip_of_an_open_mouth(predictor, pixels):
    from inclg.infer import Predictor

    points = laughing(predictor.detect(pixels)[0].landmarks)
    fixed = Predictor(predictor.model, detector=FixedDetector(points))
    below = below_edge(points, pixels.shape[:2])
    for kind in ("cleft-left", "cleft-right", "cleft-bilateral"):
        result = fixed(pixels, auto_mask=kind)
        changed = result.changed_region()
        check_result(result, pixels)
        assert (changed & below).sum() <= 0.002 * changed.sum(), kind  # ~none (was ~15 %)
        assert result.fit is not None and result.mask_kind == kind
    lip = fixed(pixels, auto_mask="lip").changed_region()
    assert (lip & below).sum() > 0.3 * lip.sum()  # the lip mask does take the lower lip


def test_implausible_landmark_fit_is_reported_with_advice(predictor, pixels):
    from inclg.infer import Predictor

    points = predictor.detect(pixels)[0].landmarks
    good = predictor(pixels, auto_mask="lip").fit
    assert good.plausible and good.score < 1 and good.mask_area is not None
    eyes = eye_distance(points)
    bad = points.copy()
    bad[48:68, 1] += 0.75 * eyes  # the mouth points slid down to the chin
    bad[48:68, 0] = (bad[48:68, 0] - bad[48:68, 0].mean()) * 1.6 + bad[48:68, 0].mean()
    result = Predictor(predictor.model, detector=FixedDetector(bad))(pixels, auto_mask="lip")
    fit = result.fit
    assert not fit.plausible and fit.score > 1
    assert any("mouth landmarks" in w for w in fit.warnings)
    assert any("away from where a lip mask usually lies" in w for w in fit.warnings)
    record = result_record(result, {})
    assert record["fit"]["plausible"] is False and "--mask" in record["fit"]["advice"]
    mask, proposed = Predictor(predictor.model, detector=FixedDetector(bad)).propose_mask(
        pixels, "lip")
    assert mask.any() and proposed.warnings == fit.warnings


def test_messages_name_the_right_file(predictor, pixels, lip_mask, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    bad(predictor, empty, r"empty.jpg: the file is empty \(0 bytes\)", auto_mask="lip")
    bad(predictor, pixels, r"m.png: the file is empty \(0 bytes\)", mask=_empty_file(tmp_path))
    message = bad(predictor, b"GIF89a not really", "cannot be read as an image",
                  auto_mask="lip")
    assert "BytesIO" not in message and "object at 0x" not in message
    message = bad(predictor, pixels, "cannot be read as a mask", mask=b"not an image")
    assert "BytesIO" not in message and "object at 0x" not in message
    full = tmp_path / "full.png"
    Image.fromarray(255 - lip_mask).save(full)
    message = bad(predictor, pixels, r"full.png: the mask covers \d+% of the face", mask=full,
                  name="photo.jpg")
    assert message.startswith(str(full)) and "photo.jpg" in message
    bad(predictor, pixels, "'cleft-both' is now called 'cleft-bilateral'", auto_mask="cleft-both")


def _empty_file(folder: Path) -> Path:
    path = folder / "m.png"
    path.write_bytes(b"")
    return path


def test_result_png_carries_provenance_and_the_untrained_banner(predictor, pixels):
    result = predictor(pixels, auto_mask="cleft-left", seed=5)
    with Image.open(io.BytesIO(result_png(result))) as img:
        text = dict(img.text)
        assert np.array_equal(np.asarray(img.convert("RGB")), result.image)  # trained: as is
        assert not img.getexif()
    assert text["inclg:model_id"] == "tiny" and text["inclg:trained"] == "true"
    assert text["inclg:model_checksum"] == result.checksum
    assert text["inclg:mask_kind"] == "cleft-left" and text["inclg:seed"] == "5"
    assert text["Software"].startswith("inclg ")
    assert not any("face" in v.lower() and ".jpg" in v for v in text.values())  # no photo name
    untrained = replace(result, trained=False)
    with Image.open(io.BytesIO(result_png(untrained))) as img:
        banner = np.asarray(img.convert("RGB"))[:16]
        assert img.text["inclg:trained"] == "false" and "UNTRAINED" in img.text["Description"]
    red = (banner[..., 0] > 150) & (banner[..., 1] < 80) & (banner[..., 2] < 80)
    assert red.mean() > 0.5 and banner.shape[1] == pixels.shape[1]
