import json

from typer.testing import CliRunner

from inclg.cli import app
from inclg.data.filelists import read_flist

runner = CliRunner()


def test_the_data_commands_prepare_a_folder_end_to_end(photo_dirs, tmp_path):
    out = tmp_path / "prepared"
    faces = ["data", "faces", *map(str, photo_dirs), "--out", str(out), "--detector", "stub",
             "--workers", "0"]
    result = runner.invoke(app, faces)
    assert result.exit_code == 0, result.output
    assert "accepted 4, rejected 0" in result.output
    again = runner.invoke(app, faces)
    assert "0 photos to prepare, 4 already done" in again.output

    result = runner.invoke(app, ["data", "split", str(out), "--val", "0.5", "--test", "0"])
    assert result.exit_code == 0, result.output
    assert len(read_flist(out / "lists" / "train_images.flist")) == 2

    masks = tmp_path / "masks"
    result = runner.invoke(
        app, ["data", "gen-masks", "cleft-left", "--prepared", str(out), "--out", str(masks)]
    )
    assert result.exit_code == 0, result.output
    assert (masks / "utkface" / "infant_1_0_0.png").is_file()

    result = runner.invoke(
        app,
        [
            "data",
            "preview",
            str(out),
            "--out",
            str(tmp_path / "s.png"),
            "--masks",
            str(masks / "masks.flist"),
            "--cell",
            "64",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.png").is_file()


def test_the_masks_command_writes_lists(tmp_path):
    runner.invoke(
        app,
        [
            "data",
            "gen-masks",
            "free-form",
            "--out",
            str(tmp_path / "ff"),
            "--count",
            "6",
            "--ratio",
            "0.01-0.6",
            "--size",
            "64",
        ],
    )
    result = runner.invoke(
        app,
        [
            "data",
            "masks",
            str(tmp_path / "ff"),
            "--out",
            str(tmp_path / "lists"),
            "--train-per-group",
            "0",
            "--val-per-group",
            "0",
            "--size",
            "64",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "lists" / "summary.json").read_text())["masks"] == 6


def test_user_errors_are_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "face_alignment", None)
    result = runner.invoke(
        app, ["data", "faces", str(tmp_path), "--out", str(tmp_path / "o"), "--detector", "fan"]
    )
    assert result.exit_code == 2
    assert "error: the fan backend needs the face-alignment package" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["data", "split", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "run `inclg data faces` first" in result.output
