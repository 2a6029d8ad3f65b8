"""The app without a browser: the mask buttons' `Predictor.draw_auto_mask` matches what
`auto_mask=` predicts from, painted editor layers become the mask `Predictor` reads, the page has
its measurement table, and importing the app changes nothing in the process's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inclg.app.ui import GRADIO_ENVIRONMENT, MASK_BUTTONS, build, painted_mask, require_gradio
from inclg.config import GeneratorConfig
from inclg.data.masks import MaskKind
from inclg.errors import MissingExtraError
from inclg.infer import PredictError, Predictor
from inclg.model.generator import Generator

PHOTO = Path(__file__).parents[1] / "infer" / "fixtures" / "face_300x240.jpg"


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tiny = Generator(GeneratorConfig(channels=8, residual_blocks=1))
    folder = tiny.save_pretrained(tmp_path_factory.mktemp("tiny"), metadata={"model_id": "tiny"})
    return Predictor.from_pretrained(folder, detector="stub")


def test_every_button_draws_a_mask_on_the_face(predictor):
    for kind in MASK_BUTTONS.values():
        mask = predictor.draw_auto_mask(PHOTO, kind)
        assert mask.shape == (240, 300) and mask.dtype == bool
        assert 0 < mask.mean() < 0.3, kind
    with pytest.raises(PredictError, match="unknown automatic mask"):
        predictor.draw_auto_mask(PHOTO, "ear")


def test_buttons_name_the_subjects_side_and_every_mask_kind():
    assert set(MASK_BUTTONS.values()) == set(MaskKind)
    assert MASK_BUTTONS["cleft: subject's left"] is MaskKind.CLEFT_LEFT
    assert MASK_BUTTONS["cleft: subject's right"] is MaskKind.CLEFT_RIGHT
    assert not any(label in ("cleft left", "cleft right", "bilateral") for label in MASK_BUTTONS)


def test_proposed_mask_comes_with_its_fit_quality(predictor):
    mask, fit = predictor.propose_mask(PHOTO, "cleft-bilateral")
    assert np.array_equal(mask, predictor.draw_auto_mask(PHOTO, "cleft-bilateral"))
    assert fit.mask_area is not None and fit.misfit >= 0
    with pytest.raises(PredictError, match="now called 'cleft-bilateral'"):
        predictor.propose_mask(PHOTO, "bilateral")


def test_drawn_mask_predicts_like_auto_mask(predictor):
    mask = predictor.draw_auto_mask(PHOTO, "lip")
    drawn = predictor(PHOTO, (mask * 255).astype(np.uint8))
    auto = predictor(PHOTO, auto_mask="lip")
    overlap = (drawn.changed_region() & auto.changed_region()).sum()
    assert overlap / auto.changed_region().sum() > 0.9


def test_painted_layers_become_the_mask():
    layer = np.zeros((60, 75, 4), np.uint8)  # the editor may hand layers back at another size
    layer[10:20, 30:40] = (255, 0, 0, 150)
    mask = painted_mask({"background": None, "layers": [layer, None], "composite": None},
                        (120, 150))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert mask[20:40, 60:80].all() and mask.sum() == 255 * 20 * 20
    assert not painted_mask(None, (4, 4)).any()


def test_page_builds_with_the_untrained_banner(predictor, tmp_path):
    pytest.importorskip("gradio", reason="install the app extra: pip install 'inclg[app]'")
    untrained = Generator(GeneratorConfig(channels=8, residual_blocks=1)).save_pretrained(
        tmp_path / "u", metadata={"model_id": "u", "trained": False})
    page = build(Predictor.from_pretrained(untrained, detector="stub"))
    assert "UNTRAINED" in str(page.config)
    assert "UNTRAINED" not in str(build(predictor).config)
    assert "measurements" in str(build(predictor).config)  # the table of the lip and nose


def test_importing_the_app_leaves_the_environment_alone():
    names = sorted(GRADIO_ENVIRONMENT)
    code = ("import os, inclg.app.ui; "
            f"print([os.environ.get(n) for n in {names!r}])")
    clean = {k: v for k, v in os.environ.items() if k not in GRADIO_ENVIRONMENT}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean,
                         check=True).stdout
    assert out.strip() == str([None] * len(names))


def test_gradio_is_imported_offline_and_the_environment_restored():
    pytest.importorskip("gradio", reason="install the app extra: pip install 'inclg[app]'")
    code = ("import os, inclg.app.ui as ui; ui._gradio(); import huggingface_hub.constants as c; "
            "print(c.HF_HUB_OFFLINE, os.environ.get('GRADIO_ANALYTICS_ENABLED'), "
            "os.environ.get('HF_HUB_OFFLINE'))")
    clean = {k: v for k, v in os.environ.items() if k not in GRADIO_ENVIRONMENT}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean,
                         check=True).stdout
    assert out.split() == ["True", "None", "None"]


def test_a_missing_gradio_names_the_extra(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match=r"pip install 'inclg\[app\]'"):
        require_gradio()
