"""The CLI of the network package: exit codes, one-line errors, files written."""

import torch
from typer.testing import CliRunner

from inclg.cli import app
from inclg.model.generator import Generator

runner = CliRunner()


def test_model_info_reports_the_paper_counts():
    result = runner.invoke(app, ["model", "info"])
    assert result.exit_code == 0, result.output
    assert "13,894,479" in result.output and "2,767,906" in result.output
    assert "matches the original" in result.output


def test_config_show_applies_overrides_and_rejects_typos():
    result = runner.invoke(app, ["config", "show", "train.lr=0.001", "loss.gan_type=hinge"])
    assert result.exit_code == 0 and "lr: 0.001" in result.output and "gan_type: hinge" in result.output
    bad = runner.invoke(app, ["config", "show", "train.batchsize=3"])
    assert bad.exit_code == 2 and "did you mean 'batch_size'" in bad.output
    assert "Traceback" not in bad.output


def test_import_original_writes_a_loadable_model(tmp_path, original_state):
    src = tmp_path / "InpaintingModel_gen.pth"
    torch.save({"iteration": 77, "generator": original_state("generator")}, src)
    dis = tmp_path / "InpaintingModel_dis.pth"
    torch.save({"discriminator": original_state("discriminator")}, dis)
    out = tmp_path / "imported"
    result = runner.invoke(app, ["weights", "import-original", str(src), "--out", str(out),
                                 "--discriminator", str(dis)])
    assert result.exit_code == 0, result.output
    assert "524,416 unused" in result.output and "475,520 unused" in result.output
    g = Generator.from_pretrained(out)
    assert torch.equal(g.state_dict()["fuse2.0.weight"], original_state("generator")["fushion1_1.0.weight"])
    assert (out / "discriminator" / "model.safetensors").exists()


def test_import_original_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["weights", "import-original", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "cannot be read" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_help_and_version_load_no_torch_or_opencv():
    """`inclg --help` must answer at once: the command modules import the library lazily."""
    import subprocess
    import sys

    for args in (["--help"], ["predict", "--help"]):
        code = (f"import sys; from inclg.cli import app; sys.argv = ['inclg', *{args!r}]\n"
                "try:\n    app()\nexcept SystemExit:\n    pass\n"
                "print(sorted(m for m in ('torch', 'cv2', 'numpy', 'PIL') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        assert "--auto-mask" in out or "predict" in out
        assert out.strip().endswith("[]"), args
    version = subprocess.run([sys.executable, "-m", "inclg", "--version"], capture_output=True,
                             text=True, check=True)
    assert version.stdout.startswith("inclg ")


def test_every_library_error_is_one_line_with_status_2():
    from inclg.errors import ConfigError, InclgError

    assert issubclass(ConfigError, InclgError) and issubclass(ConfigError, ValueError)
    result = runner.invoke(app, ["config", "show", "--config", "/nonexistent.yaml"])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_bad_option_values_are_one_line_with_status_2():
    result = runner.invoke(app, ["tune", "--stage", "everything"])
    assert result.exit_code == 2 and "'everything' is not one of 'landmark', 'optim'" in \
        result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["data", "gen-masks", "free-form", "-o", "x", "--ratio", "lots"])
    assert result.exit_code == 2 and "must look like 0.2-0.4" in result.stderr


def test_every_error_class_derives_from_the_base():
    from inclg.config import ConfigError
    from inclg.data import DataError
    from inclg.errors import InclgError
    from inclg.infer import PredictError
    from inclg.io.images import ImageError
    from inclg.train.checkpoint import CheckpointError
    from inclg.train.loop import TrainingError
    from inclg.train.tune import TuneError

    for cls in (ConfigError, DataError, PredictError, ImageError, CheckpointError,
                TrainingError, TuneError):
        assert issubclass(cls, InclgError), cls
