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
