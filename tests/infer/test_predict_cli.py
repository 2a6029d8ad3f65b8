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
from inclg.infer.pipeline import seed_for
from inclg.io.images import load_rgb
from inclg.weights import DEFAULT_DIR, UNTRAINED_ID, has_model, load_model

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
    assert names == ["face.lip.before_after.jpg", "face.lip.json", "face.lip.landmarks.jpg",
                     "face.lip.measurements.png", "face.lip.result.png"]
    assert sha(photo) == before  # the input is never touched
    assert "UNTRAINED" not in result.output

    with Image.open(out / "face.lip.result.png") as img:
        assert img.size == (300, 240) and img.mode == "RGB"
        assert not img.getexif() and "exif" not in img.info  # no camera, no GPS
        assert img.text["inclg:model_id"] == "tiny" and img.text["inclg:mask_kind"] == "lip"
        assert img.text["inclg:trained"] == "true" and "face" not in str(img.text)
        pixels = np.asarray(img)
    with Image.open(photo) as img:
        assert img.getexif().get_ifd(0x8825)  # the fixture does carry a GPS position
    original = load_rgb(photo)
    record = json.loads((out / "face.lip.json").read_text())
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
    assert {"detect", "model", "paste", "measure", "render", "write",
            "end_to_end"} <= set(record["timings_s"])
    assert record["outputs"]["result"] == "face.lip.result.png"
    assert record["mask"]["kind"] == "lip" and record["fit"]["plausible"] is True
    assert record["fit"]["score"] < 1 and record["fit"]["warnings"] == []
    measured = record["measurements"]
    assert measured["input"]["values"]["mouth_width"]["observed"] is False  # under the lip mask
    assert measured["predicted"]["pose"] and measured["difference"]["mouth_width"]["mm"] is None


def test_bundled_untrained_model_says_so_everywhere(photo, tmp_path, monkeypatch):
    # a package without trained weights (the state before the default model shipped)
    monkeypatch.setattr("inclg.weights.DEFAULT_DIR", tmp_path / "no-default")
    result = predict(photo, "--auto-mask", "cleft-left", "-o", photo.parent / "o")
    assert result.exit_code == 0, result.output
    assert "warning: UNTRAINED MODEL" in result.stderr
    record = json.loads((photo.parent / "o" / "face.cleft-left.json").read_text())
    assert record["trained"] is False and "UNTRAINED" in record["warning"]
    assert record["model"]["id"] == "inclg-untrained-seed0"
    banner = np.asarray(Image.open(photo.parent / "o" / "face.cleft-left.before_after.jpg"))[36:60]
    red = (banner[..., 0] > 150) & (banner[..., 1] < 80) & (banner[..., 2] < 80)
    assert red.mean() > 0.5  # the red UNTRAINED strip under the title
    with Image.open(photo.parent / "o" / "face.cleft-left.result.png") as img:
        assert img.text["inclg:trained"] == "false" and "UNTRAINED" in img.text["Description"]
        top = np.asarray(img)[:12]
    red = (top[..., 0] > 150) & (top[..., 1] < 80) & (top[..., 2] < 80)
    assert red.mean() > 0.5  # the shared result says so too


@pytest.mark.skipif(not has_model(DEFAULT_DIR), reason="no trained default model bundled")
def test_the_bundled_trained_model_carries_no_warning(photo):
    result = predict(photo, "--auto-mask", "lip", "-o", photo.parent / "o")
    assert result.exit_code == 0, result.output
    assert "UNTRAINED" not in result.stderr
    record = json.loads((photo.parent / "o" / "face.lip.json").read_text())
    assert record["trained"] is True and record.get("warning") is None
    assert record["model"]["id"] == load_model().model_id != UNTRAINED_ID
    with Image.open(photo.parent / "o" / "face.lip.result.png") as img:
        assert img.text["inclg:trained"] == "true"


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
    assert "note: " in result.stderr and "grey.png: greyscale" in result.stderr  # conversions
    assert "phone.jpg: EXIF orientation 6 applied" in result.stderr
    out = folder / "inclg-out"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    stems = {name.split(".")[0] for name in written if not name.startswith("inclg-predict")}
    assert stems == {"good", "phone", "sub/grey"}  # nothing at all for the failed photos
    assert len(written) == 3 * 5 + 2  # and the summary and the table
    summary = json.loads((out / "inclg-predict-summary.lip.json").read_text())
    assert summary["ok"] == 3 and summary["failed"] == 3 and len(summary["failures"]) == 3
    phone = json.loads((out / "phone.lip.json").read_text())
    assert phone["size"] == [300, 240] and "EXIF orientation 6 applied" in phone["input_notes"]
    assert Image.open(out / "phone.lip.result.png").size == (300, 240)

    again = predict(folder, "--auto-mask", "lip", "--weights", tiny_weights)
    assert again.exit_code == 1 and "0 done, 3 already done, 3 failed" in again.stdout
    assert json.loads((out / "good.lip.json").read_text())["run_seed"] == 0  # untouched
    summary = json.loads((out / "inclg-predict-summary.lip.json").read_text())
    assert summary["ok"] == 3 and summary["skipped"] == 3 and summary["done_this_run"] == 0
    assert [r["done"] for r in summary["runs"]] == [3, 0] and summary["done_all_runs"] == 3

    refused = predict(folder, "--auto-mask", "lip", "--weights", tiny_weights, "--seed", "1")
    assert refused.exit_code == 2 and "3 photos already have another run's result" in \
        refused.stderr and "seed 0 -> 1" in refused.stderr and "--overwrite" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert json.loads((out / "good.lip.json").read_text())["run_seed"] == 0  # untouched

    reseeded = predict(folder, "--auto-mask", "lip", "--weights", tiny_weights, "--seed", "1",
                       "--overwrite")
    assert "3 done, 0 already done, 3 failed" in reseeded.stdout  # a new seed redoes them
    assert json.loads((out / "good.lip.json").read_text())["run_seed"] == 1
    second = predict(folder / "two.png", "--auto-mask", "lip", "--weights", tiny_weights,
                     "--face", "1")
    assert second.exit_code == 0, second.output
    assert json.loads((out / "two.lip.json").read_text())["face"]["index"] == 1


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
    record = json.loads((folder / "inclg-out" / "a.mask.json").read_text())
    assert record["mask"]["source"].endswith("a.mask.png")
    assert record["mask"]["area_px"] == int((mask > 0).sum())


def test_usage_errors_are_one_line_with_status_2(photo, tmp_path):
    for args, message in [
        ((photo,), "give exactly one of --mask, --mask-dir or --auto-mask"),
        ((photo, "--auto-mask", "teeth"), "unknown automatic mask 'teeth'"),
        ((photo, "--auto-mask", "cleft-both"), "'cleft-both' is now called 'cleft-bilateral'"),
        ((photo, "--auto-mask", "lip", "--device", "tpu9"), "--device 'tpu9'"),
        ((photo, "--mask", tmp_path / "none.png"), "no such file"),
        ((tmp_path / "nothing", "--auto-mask", "lip"), "no such photo or folder"),
        ((photo, "--auto-mask", "lip", "--precision", "fp16"),
         "'fp16' is not one of 'fp32', 'bf16'"),
        ((photo, "--auto-mask", "lip", "--threads", "0"), "--threads"),
        ((photo, "--auto-mask", "lip", "--onnx", tmp_path / "m.onnx"),
         "--onnx needs --backend onnx"),
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
    target = out / "face.mask.result.png"  # where the result would go
    Image.fromarray(mask).save(target)
    before = sha(target)
    result = predict(photo, "--mask", target, "-o", out, "--weights", tiny_weights)
    assert result.exit_code == 1 and "would overwrite an input" in result.stderr
    assert sha(target) == before and not (out / "face.mask.json").exists()
    beside = predict(photo, "--auto-mask", "lip", "-o", photo.parent, "--weights", tiny_weights)
    assert beside.exit_code == 0 and (photo.parent / "face.lip.result.png").is_file()
    assert sha(photo) == sha(PHOTO)


def test_mask_kinds_sit_side_by_side_and_nothing_is_replaced_silently(photo, tiny_weights):
    out = photo.parent / "inclg-out"
    for kind in ("lip", "cleft-left"):
        result = predict(photo, "--auto-mask", kind, "--weights", tiny_weights)
        assert result.exit_code == 0, result.output
    lip, cleft = out / "face.lip.result.png", out / "face.cleft-left.result.png"
    assert lip.is_file() and cleft.is_file() and sha(lip) != sha(cleft)
    before = sha(cleft)
    refused = predict(photo, "--auto-mask", "cleft-left", "--weights", tiny_weights, "--seed", "4")
    assert refused.exit_code == 2 and "--overwrite" in refused.stderr and sha(cleft) == before
    replaced = predict(photo, "--auto-mask", "cleft-left", "--weights", tiny_weights, "--seed",
                       "4", "--overwrite")
    assert replaced.exit_code == 0 and sha(cleft) != before and sha(lip) != sha(cleft)


def test_ctrl_c_writes_the_summary_and_a_rerun_resumes(tmp_path, tiny_weights, monkeypatch):
    from inclg.infer.batch import PredictJob

    folder = tmp_path / "many"
    folder.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(PHOTO, folder / f"{name}.jpg")
    process = PredictJob.process
    calls = []

    def interrupted(self, item):
        calls.append(item)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return process(self, item)

    monkeypatch.setattr(PredictJob, "process", interrupted)
    result = predict(folder, "--auto-mask", "nose", "--weights", tiny_weights)
    assert result.exit_code == 130
    assert "interrupted: 1 done, 2 to go; rerun to resume" in result.stderr
    summary_path = folder / "inclg-out" / "inclg-predict-summary.nose.json"
    summary = json.loads(summary_path.read_text())
    assert summary["interrupted"] and summary["ok"] == 1 and summary["pending"] == 2
    monkeypatch.setattr(PredictJob, "process", process)
    again = predict(folder, "--auto-mask", "nose", "--weights", tiny_weights)
    assert again.exit_code == 0 and "2 done, 1 already done, 0 failed" in again.stdout
    summary = json.loads(summary_path.read_text())
    assert summary["ok"] == 3 and summary["skipped"] == 1 and not summary["interrupted"]
    assert [r["done"] for r in summary["runs"]] == [1, 2] and summary["done_all_runs"] == 3


def test_version_and_uniform_help():
    import inclg

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"inclg {inclg.__version__}"
    text = runner.invoke(app, ["predict", "--help"], terminal_width=200).stdout
    for kind in ("lip", "cleft-left", "cleft-right", "cleft-bilateral", "nose"):
        assert kind in text
    for option in ("--device", "--overwrite", "--face", "--out"):
        assert option in text
    assert "[default: (the only face" in text and "cleft-both" not in text
