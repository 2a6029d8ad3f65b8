"""`inclg export onnx` and the onnxruntime backend: the exported tiny generator matches PyTorch
within the stated tolerances at batch 1 and 3, carries its model's id/checksum/trained flag, is
refused for another model, and `Predictor(backend="onnx")` / `inclg predict --backend onnx` give
the torch backend's result (cached export when no file is given)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from inclg.cli import app
from inclg.config import GeneratorConfig
from inclg.infer import PredictError, Predictor
from inclg.model.generator import Generator
from inclg.weights import load_model

pytest.importorskip("onnxruntime", reason="install the onnx extra: pip install 'inclg[onnx]'")
from inclg.export.onnx import (
    IMAGE_TOLERANCE,
    LANDMARK_TOLERANCE,
    ExportError,
    OnnxGenerator,
    cache_path,
    export_onnx,
    random_inputs,
)

PHOTO = Path(__file__).parents[1] / "infer" / "fixtures" / "face_300x240.jpg"
runner = CliRunner()


def tiny(folder: Path, seed: int, trained: bool = True) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Generator(GeneratorConfig(channels=8, residual_blocks=1))
    return model.save_pretrained(folder, metadata={"model_id": f"tiny{seed}", "trained": trained})


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny(tmp_path_factory.mktemp("tiny"), 0, trained=False)


@pytest.fixture(scope="module")
def exported(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return path, export_onnx(load_model(weights), path)


def test_export_matches_torch_at_batch_1_and_3(exported, weights):
    path, checks = exported
    assert [c.batch for c in checks] == [1, 3]
    for c in checks:
        assert c.image_max_abs <= IMAGE_TOLERANCE and c.landmarks_max_abs <= LANDMARK_TOLERANCE
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.onnx"]  # one file, no temp
    model = load_model(weights)
    runner_ = OnnxGenerator(path, model)
    image, mask = random_inputs(2, seed=7)  # a batch size not used by the export check
    out, points = runner_(image.numpy(), mask.numpy())
    with torch.inference_mode():
        ref, ref_points = model.generator(image, mask)
    assert out.shape == (2, 3, 256, 256) and points.shape == (2, 68, 2)
    assert np.abs(out - ref.numpy()).max() <= IMAGE_TOLERANCE
    assert np.abs(points - ref_points.numpy()).max() <= LANDMARK_TOLERANCE


def test_metadata_names_the_model_and_says_untrained(exported, weights):
    import onnx

    model = load_model(weights)
    props = {p.key: p.value for p in onnx.load(str(exported[0])).metadata_props}
    assert props["inclg.checksum"] == model.checksum
    assert props["inclg.model_id"] == "tiny0"
    assert props["inclg.trained"] == "false" and "UNTRAINED" in props["inclg.warning"]


def test_file_of_another_model_is_refused(exported, tmp_path):
    other = load_model(tiny(tmp_path / "other", 1))
    with pytest.raises(ExportError, match="not the selected 'tiny1'"):
        OnnxGenerator(exported[0], other)
    with pytest.raises(ExportError, match="no such ONNX file"):
        OnnxGenerator(tmp_path / "missing.onnx", other)


def test_predictor_onnx_backend_matches_torch(exported, weights):
    torch_result = Predictor.from_pretrained(weights, detector="stub")(PHOTO, auto_mask="lip")
    onnx_result = Predictor.from_pretrained(weights, detector="stub", backend="onnx",
                                            onnx_path=exported[0])(PHOTO, auto_mask="lip")
    assert not onnx_result.trained and "UNTRAINED" in onnx_result.warning
    diff = np.abs(onnx_result.image.astype(int) - torch_result.image.astype(int))
    assert diff.max() <= 1  # fp32 noise can flip a rounding at a few pixels
    np.testing.assert_allclose(onnx_result.landmarks, torch_result.landmarks, atol=1e-2)


def test_onnx_backend_refuses_bf16(exported, weights):
    with pytest.raises(PredictError, match="fp32 only"):
        Predictor.from_pretrained(weights, detector="stub", backend="onnx",
                                  onnx_path=exported[0], precision="bf16")


def test_cached_export_is_made_once_and_reused(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("INCLG_HOME", str(tmp_path / "home"))
    model = load_model(weights)
    Predictor(model, detector="stub", backend="onnx")
    path = cache_path(model)
    assert path.is_file() and path.parent == tmp_path / "home" / "onnx"
    stamp = path.stat().st_mtime_ns
    Predictor(model, detector="stub", backend="onnx")
    assert path.stat().st_mtime_ns == stamp
    path.write_bytes(b"damaged")  # a broken cache entry is exported again, not an error
    Predictor(model, detector="stub", backend="onnx")
    assert path.stat().st_size > 1000


def test_cli_export_and_predict_with_onnx(exported, weights, tmp_path):
    out = tmp_path / "cli.onnx"
    result = runner.invoke(app, ["export", "onnx", "--weights", str(weights), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "batch 3: max |onnx - torch|" in result.output and "UNTRAINED" in result.output
    result = runner.invoke(app, ["predict", str(PHOTO), "--auto-mask", "lip", "--detector", "stub",
                                 "--weights", str(weights), "--backend", "onnx", "--onnx",
                                 str(out), "-o", str(tmp_path / "pred")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "pred" / "face_300x240.lip.json").read_text())
    assert record["trained"] is False and "UNTRAINED" in record["warning"]
    result = runner.invoke(app, ["predict", str(PHOTO), "--auto-mask", "lip", "--detector", "stub",
                                 "--onnx", str(out)])
    assert result.exit_code == 2 and "--onnx needs --backend onnx" in result.output
