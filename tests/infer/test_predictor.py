"""The Predictor's contract without dlib (the stub detector): prepare / run / postprocess, no
hidden global state, and the measurements of the face as it is against the predicted face in the
result, the JSON, the figure, the batch table and the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from inclg.cli import app
from inclg.errors import DataError, PredictError
from inclg.infer import Predictor
from inclg.infer.batch import Scale, measurement_row
from inclg.infer.pipeline import torch_threads
from inclg.infer.report import measurement_rows, measurements_image, result_record
from inclg.measurements import MEASUREMENT_NAMES, Comparison
from inclg.weights import load_model

PHOTO = Path(__file__).parent / "fixtures" / "face_300x240.jpg"
runner = CliRunner()


@pytest.fixture(scope="module")
def stub(tiny_weights: Path) -> Predictor:
    return Predictor.from_pretrained(tiny_weights, detector="stub")


@pytest.fixture(scope="module")
def lip(stub: Predictor):
    return stub(PHOTO, auto_mask="lip", seed=1)


def test_call_is_prepare_run_postprocess(stub, lip):
    prepared = stub.prepare(PHOTO, auto_mask="lip")
    assert prepared.crop.shape == (256, 256, 3) and prepared.region.hole.any()
    output, points = stub.run(prepared.crop, prepared.region.hole, seed=1)
    result = stub.postprocess(prepared, output, points, seed=1)
    assert np.array_equal(result.image, lip.image)
    assert np.array_equal(result.landmarks, lip.landmarks)
    assert set(lip.timings) >= {"read", "detect", "align", "model", "paste", "total"}


def test_the_callers_generator_is_not_changed(tiny_weights):
    model = load_model(tiny_weights)
    model.generator.train()
    weight = model.generator.encoder1[1].conv.weight  # [2C, 3, 7, 7]
    assert not weight.is_contiguous(memory_format=torch.channels_last)
    predictor = Predictor(model, detector="stub")
    assert model.generator.training and weight.is_contiguous()  # as the caller left it
    assert predictor.generator is not model.generator and not predictor.generator.training
    assert predictor.model.checksum == model.checksum
    own = Predictor.from_pretrained(tiny_weights, detector="stub")
    assert own.generator is own.model.generator  # loaded for itself: converted, not copied


def test_threads_are_set_for_the_network_call_only(tiny_weights, monkeypatch):
    before = torch.get_num_threads()
    wanted = 2 if before != 2 else 1
    predictor = Predictor.from_pretrained(tiny_weights, detector="stub", threads=wanted)
    assert torch.get_num_threads() == before
    seen = []
    forward = predictor.generator.forward

    def recording(*args):
        seen.append(torch.get_num_threads())
        return forward(*args)

    monkeypatch.setattr(predictor.generator, "forward", recording)
    predictor(PHOTO, auto_mask="lip")
    assert seen == [wanted] and torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(PredictError, match="threads must be at least 1"):
        Predictor(predictor.model, detector="stub", threads=0)


def test_measurements_compare_the_detected_and_predicted_faces(lip):
    m = lip.measurements()
    assert isinstance(m, Comparison) and m.input.mm_per_iod is None
    np.testing.assert_allclose(m.input.landmarks, lip.face.landmarks, atol=1e-4)
    inside = (lip.landmarks > 0).all(1) & (lip.landmarks < [299, 239]).all(1)
    np.testing.assert_allclose(m.predicted.landmarks[inside], lip.landmarks[inside], atol=1e-3)
    assert m.input["mouth_width"].observed is False  # the mouth is inside the lip mask
    assert m.input["nose_tip_midline_deviation"].observed is True
    assert m.predicted["mouth_width"].observed is None  # the prediction has no mask
    mm = lip.measurements(eye_distance_mm=60.0)
    width = mm.input["mouth_width"]
    assert width.mm == pytest.approx(width.iod * 60.0)
    with pytest.raises(DataError, match="either"):
        lip.measurements(eye_distance_mm=60.0, mm_per_px=0.1)


def test_json_figure_and_table_rows_carry_the_measurements(lip):
    m = lip.measurements(mm_per_px=0.25)
    record = result_record(lip, {}, measurements=m)
    doc = json.loads(json.dumps(record))["measurements"]
    assert set(doc) == {"input", "predicted", "difference"}
    assert doc["input"]["values"]["mouth_width"]["observed"] is False
    assert measurement_row(doc) == m.to_row()  # the CSV row, rebuilt from the JSON
    assert measurement_row(None) == {}
    assert result_record(lip, {})["measurements"] is None
    figure = measurements_image(lip, m)
    assert figure.dtype == np.uint8 and figure.ndim == 3 and figure.shape[1] == 1024
    rows = measurement_rows(m)
    assert [row[1] for row in rows] == [name.replace("_", " ") for name in MEASUREMENT_NAMES]
    assert rows[0][2].endswith("*") and not rows[12][2].endswith("*")  # mouth hidden, nose not


def test_scale_takes_one_positive_value():
    assert Scale().given() == {} and Scale(eye_distance_mm=62).given() == {"eye_distance_mm": 62}
    with pytest.raises(PredictError, match="either --eye-distance-mm or --mm-per-px"):
        Scale(62, 0.1)
    with pytest.raises(PredictError, match="--mm-per-px must be a positive number"):
        Scale(mm_per_px=-1)


def predict(*args: object):
    return runner.invoke(app, ["predict", *map(str, args)])


def test_folder_run_writes_figures_json_and_one_table_row_per_photo(tmp_path, tiny_weights):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a", "b"):
        shutil.copy(PHOTO, folder / f"{name}.jpg")
    Image.new("RGB", (200, 160), (128, 128, 128)).save(folder / "flat.png")  # no face
    args = (folder, "--auto-mask", "cleft-left", "--weights", tiny_weights, "--detector", "stub")
    result = predict(*args, "--eye-distance-mm", 62)
    assert result.exit_code == 1, result.output
    out = folder / "inclg-out"
    assert (out / "a.cleft-left.measurements.png").is_file()
    record = json.loads((out / "a.cleft-left.json").read_text())
    assert record["measurements"]["input"]["mm_per_iod"] == 62.0
    assert record["outputs"]["measurements"] == "a.cleft-left.measurements.png"
    assert record["request_inputs"]["eye_distance_mm"] == 62.0
    table = out / "inclg-predict.cleft-left.csv"
    rows = list(csv.DictReader(table.open()))
    assert [(Path(r["photo"]).name, r["status"]) for r in rows] == [
        ("a.jpg", "ok"), ("b.jpg", "ok"), ("flat.png", "failed")]
    assert "no face found" in rows[2]["reason"] and rows[2]["input_mouth_width_iod"] == ""
    assert float(rows[0]["input_mouth_width_mm"]) > 0 and rows[0]["difference_mouth_width_mm"]
    assert rows[0]["trained"] == "True" and rows[0]["model_id"] == "tiny"
    assert "table inclg-predict.cleft-left.csv" in result.stdout

    again = predict(*args, "--eye-distance-mm", 62)  # resumed: rows come from the JSON files
    assert "0 done, 2 already done, 1 failed" in again.stdout
    assert list(csv.DictReader(table.open())) == rows
    other = predict(*args, "--eye-distance-mm", 60)
    assert other.exit_code == 2 and "eye distance 62.0 -> 60.0" in other.stderr
    both = predict(*args, "--eye-distance-mm", 60, "--mm-per-px", 0.2)
    assert both.exit_code == 2 and len(both.stderr.strip().splitlines()) == 1
    assert "either --eye-distance-mm or --mm-per-px" in both.stderr


def test_a_run_without_a_scale_keeps_earlier_keys_valid(tmp_path, tiny_weights):
    photo = tmp_path / "face.jpg"
    shutil.copy(PHOTO, photo)
    args = (photo, "--auto-mask", "nose", "--weights", tiny_weights, "--detector", "stub")
    assert predict(*args).exit_code == 0
    record = json.loads((tmp_path / "inclg-out" / "face.nose.json").read_text())
    assert "eye_distance_mm" not in record["request_inputs"]
    assert record["measurements"]["input"]["values"]["mouth_width"]["mm"] is None
    assert "already done" in predict(*args).stdout
