import pytest
import torch

from inclg.config import GeneratorConfig
from inclg.model.generator import Generator, holes_outside, window_box
from inclg.model.masking import masked_input

WINDOWED = GeneratorConfig(channels=8, residual_blocks=1, window=(64, 100, 128))


def crops(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, 256, 256, generator=g)
    mask = torch.zeros(batch, 1, 256, 256)
    mask[..., 150:180, 100:160] = 1  # the mouth of the alignment template
    return image, mask


def test_window_box_defaults_to_the_whole_crop_and_checks_the_fit():
    assert window_box(GeneratorConfig()) == (0, 0, 256)
    assert window_box(WINDOWED) == (64, 100, 128)
    with pytest.raises(ValueError, match="does not fit"):
        window_box(GeneratorConfig(window=(200, 100, 128)))
    with pytest.raises(ValueError, match="multiple of 4"):
        window_box(GeneratorConfig(window=(64, 100, 126)))


def test_windowed_inpaint_runs_the_network_on_the_window_only():
    torch.manual_seed(0)
    g = Generator(WINDOWED).eval()
    image, mask = crops()
    with torch.no_grad():
        out, points = g.inpaint(image, mask)
        direct, direct_points = g(masked_input(image[..., 100:228, 64:192],
                                               mask[..., 100:228, 64:192]),
                                  mask[..., 100:228, 64:192])
    assert out.shape == image.shape and points.shape == (2, 68, 2)
    assert torch.equal(out[..., 100:228, 64:192], direct)
    outside = torch.ones(256, 256, dtype=torch.bool)
    outside[100:228, 64:192] = False
    assert torch.equal(out[..., outside], image[..., outside])  # the crop, bit for bit
    torch.testing.assert_close(points, direct_points + torch.tensor([64.0, 100.0]))


def test_whole_crop_inpaint_equals_forward_on_the_masked_input():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(channels=8, residual_blocks=1)).eval()
    image, mask = crops(batch=1)
    with torch.no_grad():
        out, points = g.inpaint(image, mask)
        ref, ref_points = g(masked_input(image, mask), mask)
    assert torch.equal(out, ref) and torch.equal(points, ref_points)


def test_holes_outside_the_window_are_refused():
    g = Generator(WINDOWED).eval()
    image, mask = crops(batch=1)
    mask[..., 10:20, 10:20] = 1  # an eye-level hole
    assert holes_outside(mask, window_box(WINDOWED)) == 100
    with pytest.raises(ValueError, match="100 hole pixels lie outside"):
        g.inpaint(image, mask)


def test_windowed_model_round_trips_through_save_pretrained(tmp_path):
    g = Generator(WINDOWED)
    g.save_pretrained(tmp_path / "m")
    loaded = Generator.from_pretrained(tmp_path / "m")
    assert loaded.config.window == (64, 100, 128)
