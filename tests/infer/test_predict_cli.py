"""`inclg predict` end to end with dlib: the four outputs, resumable folder runs, one line per bad
photo, the UNTRAINED notice of the bundled model, and inputs that are never overwritten."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from inclg.cli import app
from inclg.data.imageio import load_rgb
from inclg.infer.pipeline import seed_for

pytestmark = pytest.mark.dlib

PHOTO = Path(__file__).parent / "fixtures" / "face_300x240.jpg"
runner = CliRunner()


def predict(*args: object) -> object:
    return runner.invoke(app, ["predict", *map(str, args)])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    return Path(shutil.copy(PHOTO, folder / "face.jpg"))


def test_one_photo_gives_result_before_after_landmarks_and_json(photo, tiny_weights):
    before = sha(photo)
    result = predict(photo, "--auto-mask", "lip", "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    out = photo.parent / "inclg-out"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["face.before_after.jpg", "face.json", "face.landmarks.jpg", "face.result.png"]
    assert sha(photo) == before  # the input is never touched
    assert "UNTRAINED" not in result.output

    with Image.open(out / "face.result.png") as img:
        assert img.size == (300, 240) and img.mode == "RGB"
        assert not img.getexif() and "exif" not in img.info  # no camera, no GPS
        pixels = np.asarray(img)
    with Image.open(photo) as img:
        assert img.getexif().get_ifd(0x8825)  # the fixture does carry a GPS position
    original = load_rgb(photo)
    record = json.loads((out / "face.json").read_text())
    x0, y0, x1, y1 = record["changed_box"]
    outside = np.ones(original.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(pixels[outside], original[outside])

    landmarks = np.array(record["landmarks"])
    assert landmarks.shape == (68, 2)
    assert (landmarks >= 0).all() and (landmarks <= [299, 239]).all()
    assert record["trained"] is True and record["warning"] is None
    assert record["model"]["id"] == "tiny"
    assert record["model"]["checksum"] == sha(tiny_weights / "model.safetensors")
    assert record["seed"] == seed_for(0, "face.jpg") and record["run_seed"] == 0
    assert record["mask"]["source"] == "auto:lip" and record["mask"]["area_px"] > 0
    assert record["face"]["faces_found"] == 1 and len(record["face"]["box"]) == 4
    assert record["size"] == [300, 240] and record["photo_sha256"] == before
    assert {"detect", "model", "paste", "render", "write", "end_to_end"} <= set(record["timings_s"])
    assert record["outputs"]["result"] == "face.result.png"


def test_bundled_untrained_model_says_so_everywhere(photo):
    result = predict(photo, "--auto-mask", "cleft-left", "-o", photo.parent / "o")
    assert result.exit_code == 0, result.output
    assert "warning: UNTRAINED MODEL" in result.stderr
    record = json.loads((photo.parent / "o" / "face.json").read_text())
    assert record["trained"] is False and "UNTRAINED" in record["warning"]
    assert record["model"]["id"] == "inclg-untrained-seed0"
    banner = np.asarray(Image.open(photo.parent / "o" / "face.before_after.jpg"))[36:60]
    red = (banner[..., 0] > 150) & (banner[..., 1] < 80) & (banner[..., 2] < 80)
    assert red.mean() > 0.5  # the red UNTRAINED strip under the title


def _write_variants(folder: Path) -> None:
    """A folder as a clinic might have it: good, rotated, greyscale and broken photos."""
    data = PHOTO.read_bytes()
    (folder / "good.jpg").write_bytes(data)
    img = Image.open(io.BytesIO(data))
    exif = img.getexif()
    exif[0x0112] = 6
    img.transpose(Image.Transpose.ROTATE_90).save(folder / "phone.jpg", quality=95, exif=exif)
    (folder / "sub").mkdir()
    img.convert("L").save(folder / "sub" / "grey.png")
    Image.new("RGB", (200, 160), (120, 130, 140)).save(folder / "noface.png")
    (folder / "broken.jpg").write_bytes(data[: len(data) // 2])
    pixels = np.asarray(img)
    Image.fromarray(np.concatenate([pixels, pixels], axis=1)).save(folder / "two.png")


def test_folder_run_reports_every_failure_and_resumes(tmp_path, tiny_weights):
    folder = tmp_path / "clinic"
    folder.mkdir()
    _write_variants(folder)
    result = predict(folder, "--auto-mask", "lip", "--weights", tiny_weights)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3
    reasons = " ".join(errors)
    assert "broken.jpg" in reasons and "truncated" in reasons
    assert "noface.png: no face found" in reasons
    assert "two.png: 2 faces found" in reasons and "--face N" in reasons
    assert "3 done, 0 already done, 3 failed" in result.stdout
    out = folder / "inclg-out"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    stems = {name.split(".")[0] for name in written if "summary" not in name}
    assert stems == {"good", "phone", "sub/grey"}  # nothing at all for the failed photos
    assert len(written) == 3 * 4 + 1
    summary = json.loads((out / "inclg-predict-summary.json").read_text())
    assert summary["ok"] == 3 and summary["failed"] == 3 and len(summary["failures"]) == 3
    phone = json.loads((out / "phone.json").read_text())
    assert phone["size"] == [300, 240] and "EXIF orientation 6 applied" in phone["input_notes"]
    assert Image.open(out / "phone.result.png").size == (300, 240)

    again = predict(folder, "--auto-mask", "lip", "--weights", tiny_weights)
    assert again.exit_code == 1 and "0 done, 3 already done, 3 failed" in again.stdout
    assert json.loads((out / "good.json").read_text())["run_seed"] == 0  # untouched

    reseeded = predict(folder, "--auto-mask", "lip", "--weights", tiny_weights, "--seed", "1")
    assert "3 done, 0 already done, 3 failed" in reseeded.stdout  # a new seed redoes them
    assert json.loads((out / "good.json").read_text())["run_seed"] == 1
    second = predict(folder / "two.png", "--auto-mask", "lip", "--weights", tiny_weights,
                     "--face", "1")
    assert second.exit_code == 0, second.output
    assert json.loads((out / "two.json").read_text())["face"]["index"] == 1


def test_masks_paired_by_name_and_refused_when_wrong(tmp_path, tiny_weights):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a", "b", "c", "d"):
        shutil.copy(PHOTO, folder / f"{name}.jpg")
    x, y = 150, 186  # the fixture's mouth
    mask = np.zeros((240, 300), np.uint8)
    cv2.ellipse(mask, (x, y), (22, 12), 0, 0, 360, 255, -1)
    Image.fromarray(mask).save(folder / "a.mask.png")  # beside the photo: not a photo itself
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(mask).save(masks / "b.png")
    Image.fromarray(mask[:200]).save(masks / "c.png")
    result = predict(folder, "--mask-dir", masks, "--weights", tiny_weights)
    assert result.exit_code == 1
    assert "c.png: the mask is 300x200 but the photo" in result.stderr
    assert "d.jpg: no mask for it" in result.stderr and "a.jpg: no mask for it" in result.stderr
    assert "1 done, 0 already done, 3 failed" in result.stdout
    beside = predict(folder / "a.jpg", "--mask-dir", folder, "--weights", tiny_weights)
    assert beside.exit_code == 0, beside.output
    record = json.loads((folder / "inclg-out" / "a.json").read_text())
    assert record["mask"]["source"].endswith("a.mask.png")
    assert record["mask"]["area_px"] == int((mask > 0).sum())


def test_usage_errors_are_one_line_with_status_2(photo, tmp_path):
    for args, message in [
        ((photo,), "give exactly one of --mask, --mask-dir or --auto-mask"),
        ((photo, "--auto-mask", "teeth"), "unknown automatic mask 'teeth'"),
        ((photo, "--mask", tmp_path / "none.png"), "no such file"),
        ((tmp_path / "nothing", "--auto-mask", "lip"), "no such photo or folder"),
        ((photo, "--auto-mask", "lip", "--precision", "fp16"), "--precision must be fp32 or bf16"),
        ((photo, "--auto-mask", "lip", "--weights", tmp_path), "is not a saved INCLG model"),
    ]:
        result = predict(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_an_output_never_overwrites_an_input(photo, tiny_weights, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mask = np.zeros((240, 300), np.uint8)
    mask[180:195, 130:170] = 255
    target = out / "face.result.png"  # where the result would go
    Image.fromarray(mask).save(target)
    before = sha(target)
    result = predict(photo, "--mask", target, "-o", out, "--weights", tiny_weights)
    assert result.exit_code == 1 and "would overwrite an input" in result.stderr
    assert sha(target) == before and not (out / "face.json").exists()
    beside = predict(photo, "--auto-mask", "lip", "-o", photo.parent, "--weights", tiny_weights)
    assert beside.exit_code == 0 and (photo.parent / "face.result.png").is_file()
    assert sha(photo) == sha(PHOTO)
