"""Which model `inclg predict` runs: the bundled default (untrained if its files are missing),
any saved folder, or an imported original checkpoint; each with an id and a checksum for the
outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from inclg.model.discriminator import Discriminator
from inclg.model.io import WeightsError
from inclg.weights import (
    DEFAULT_DIR,
    UNTRAINED_ID,
    has_model,
    load_model,
    state_checksum,
    untrained_generator,
)


def test_without_its_weights_the_default_is_deterministic_and_says_so(tmp_path, monkeypatch):
    import inclg.weights

    monkeypatch.setattr(inclg.weights, "DEFAULT_DIR", tmp_path)  # an installation without them
    rng_before = torch.random.get_rng_state()
    first = load_model()
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the global RNG is left alone
    second = load_model("default")
    assert first.model_id == UNTRAINED_ID and not first.trained and first.source == "bundled"
    assert first.checksum == second.checksum == state_checksum(untrained_generator())
    assert len(first.checksum) == 64
    assert "UNTRAINED" in first.warning and "noise" in first.warning
    assert sum(p.numel() for p in first.generator.parameters()) == 13_894_479


@pytest.mark.skipif(not has_model(DEFAULT_DIR), reason="no bundled model in this checkout")
def test_the_shipped_default_is_the_trained_compact_model_of_the_model_card():
    model = load_model()
    assert model.trained and model.warning is None and model.model_id == "inclg-compact-cpu-v1"
    files = list(DEFAULT_DIR.glob("*.safetensors"))
    assert files and sum(f.stat().st_size for f in files) <= 10 * 1024 * 1024
    from safetensors import safe_open

    with safe_open(str(files[0]), "pt") as fh:
        dtypes = {fh.get_tensor(k).dtype for k in fh.keys()}
    assert torch.float16 in dtypes
    card = (Path(__file__).parents[2] / "MODEL_CARD.md").read_text()
    assert model.checksum in card  # the card describes the weights that ship


def test_default_folder_is_package_data_with_a_readme():
    assert (DEFAULT_DIR / "README.md").is_file()


def test_state_checksum_sees_every_byte():
    g = untrained_generator()
    before = state_checksum(g)
    with torch.no_grad():
        g.landmark_gamma += 1e-7
    assert state_checksum(g) != before


def test_saved_folder_gives_its_file_checksum_and_id(tiny_weights):
    model = load_model(tiny_weights)
    digest = hashlib.sha256((tiny_weights / "model.safetensors").read_bytes()).hexdigest()
    assert model.checksum == digest and model.model_id == "tiny"
    assert model.trained and model.warning is None and model.source == str(tiny_weights)


def test_folder_marked_untrained_carries_a_warning(tmp_path):
    from inclg.config import GeneratorConfig
    from inclg.model.generator import Generator

    Generator(GeneratorConfig(channels=8, residual_blocks=1)).save_pretrained(
        tmp_path / "m", metadata={"trained": False}, max_shard_bytes=20_000)
    model = load_model(tmp_path / "m")
    assert not model.trained and model.model_id == "m" and "UNTRAINED MODEL (m)" in model.warning
    assert len(model.checksum) == 64  # sharded: the hash of the per-file hashes


def test_imported_original_checkpoint_is_named_after_its_file(tmp_path, original_state):
    from typer.testing import CliRunner

    from inclg.cli import app

    src = tmp_path / "InpaintingModel_gen.pth"
    torch.save({"iteration": 77, "generator": original_state("generator")}, src)
    result = CliRunner().invoke(app, ["weights", "import-original", str(src), "--out",
                                      str(tmp_path / "imported")])
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "imported")
    assert model.model_id == "original InpaintingModel_gen.pth iteration 77" and model.trained


def test_wrong_folders_are_refused(tmp_path):
    Discriminator().save_pretrained(tmp_path / "d")
    with pytest.raises(WeightsError, match="not an INCLG generator"):
        load_model(tmp_path / "d")
    with pytest.raises(WeightsError, match="does not exist"):
        load_model(tmp_path / "missing")
