import json
import re

import pytest
import torch

from inclg.config import DiscriminatorConfig, GeneratorConfig
from inclg.model.discriminator import Discriminator
from inclg.model.generator import Generator
from inclg.model.io import WeightsError
from inclg.weights.original import import_original

TINY = GeneratorConfig(channels=8, residual_blocks=1)
BUFFER = re.compile(r"(running_mean|running_var|num_batches_tracked|weight_u|weight_v)$")


def built_parameters(state: dict[str, torch.Tensor]) -> int:
    """Parameters the original builds: buffers and twin registrations not counted."""
    seen, total = set(), 0
    for key, tensor in state.items():
        if not BUFFER.search(key) and id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel()
    return total


@pytest.mark.parametrize("kind,built,ours,model", [
    ("generator", 14_418_895, 13_894_479, Generator),
    ("discriminator", 3_243_426, 2_767_906, Discriminator),
])
def test_original_checkpoint_imports_and_accounts_for_dead_weights(original_state, tmp_path, kind,
                                                                   built, ours, model):
    state = original_state(kind)
    assert built_parameters(state) == built  # what the original builds
    path = tmp_path / f"InpaintingModel_{kind[:3]}.pth"
    torch.save({"iteration": 4242, kind: state}, path)
    net = model()
    report = import_original(path, net, kind)
    assert sum(p.numel() for p in net.parameters()) == ours
    assert report.dead_parameters == built - ours
    assert report.iteration == 4242


def test_generator_import_maps_values_to_the_right_layers(original_state):
    state = original_state("generator")
    g = Generator()
    import_original(state, g, "generator")
    pairs = {"fushion1_1.0.weight": "fuse2.0.weight", "middle.6.conv_block.5.bias": "middle.6.conv2.bias",
             "conv_afterarr_node3.weight": "landmark_head.node3.weight", "prelu.weight": "landmark_head.prelu.weight",
             "decoder2.0.gate_conv.weight": "decoder2.0.conv.weight", "landmark_gamma": "landmark_gamma",
             "conv_afteratt_first.1.running_var": "landmark_head.expand.1.running_var"}
    ours = g.state_dict()
    for original, mine in pairs.items():
        assert torch.equal(ours[mine], state[original]), mine
    # spectral norm: our eval-mode weight is the original's weight_orig / (u . W v)
    g.eval()
    w = state["auto_attn.model.conv1.weight_orig"]
    u, v = state["auto_attn.model.conv1.weight_u"], state["auto_attn.model.conv1.weight_v"]
    sigma = torch.dot(u, torch.mv(w.flatten(1), v))
    torch.testing.assert_close(g.attention.fuse.conv1.weight, w / sigma)
    with torch.no_grad():
        image, points = g(torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64))
    assert torch.isfinite(image).all() and torch.isfinite(points).all()


def test_import_refuses_wrong_or_unsafe_files(original_state, tmp_path):
    state = original_state("generator")
    del state["before_share1.0.bias"]
    with pytest.raises(WeightsError, match="unused parameters"):
        import_original(state, Generator(), "generator")
    state = original_state("generator")
    state["auto_attn.model.model.1.bias"] = state["auto_attn.model.model.1.bias"].clone() + 1
    with pytest.raises(WeightsError, match="should be the same tensor"):
        import_original(state, Generator(), "generator")
    with pytest.raises(WeightsError, match="do not fit"):
        import_original(original_state("generator"), Generator(TINY), "generator")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"generator": Evil()}, evil)
    with pytest.raises(WeightsError, match="cannot be read"):
        import_original(evil, Generator(), "generator")
    with pytest.raises(WeightsError, match="does not exist"):
        import_original(tmp_path / "missing.pth", Generator(), "generator")


def test_save_load_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    g = Generator(TINY).train()
    g(torch.rand(2, 3, 32, 32), torch.ones(2, 1, 32, 32))  # moves BN stats and SN u/v off init
    g.eval()
    g.save_pretrained(tmp_path / "m", metadata={"note": "test"})
    loaded = Generator.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == g.config
    for key, value in g.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x, m = torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(g(x, m)[0], loaded(x, m)[0])
    info = json.loads((tmp_path / "m" / "config.json").read_text())
    assert info["class"] == "Generator" and info["metadata"] == {"note": "test"}


def test_sharded_fp16_save_loads_and_replaces_stale_files(tmp_path):
    torch.manual_seed(0)
    g = Generator(TINY).eval()
    g.save_pretrained(tmp_path, dtype=torch.float16, max_shard_bytes=20_000)
    shards = sorted(p.name for p in tmp_path.glob("model*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "model.safetensors.index.json").exists()
    loaded = Generator.from_pretrained(tmp_path)
    for key, value in g.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(loaded.state_dict()[key], value.half().float()), key
    g.save_pretrained(tmp_path)  # one file again: old shards and index disappear
    assert sorted(p.name for p in tmp_path.glob("model*")) == ["model.safetensors"]


def test_load_errors_are_clear(tmp_path):
    Discriminator(DiscriminatorConfig(channels=4)).save_pretrained(tmp_path / "d")
    with pytest.raises(WeightsError, match="not a Generator"):
        Generator.from_pretrained(tmp_path / "d")
    with pytest.raises(WeightsError, match="does not exist"):
        Generator.from_pretrained(tmp_path / "nowhere")
    g_dir = Generator(TINY).save_pretrained(tmp_path / "g")
    weights = g_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="sha256"):
        Generator.from_pretrained(g_dir)
    (g_dir / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="cannot be read"):
        Generator.from_pretrained(g_dir)


def test_multi_gpu_checkpoints_with_module_prefix_import(original_state, tmp_path):
    """The original trained with DataParallel saves "module."-prefixed keys."""
    state = original_state("discriminator")
    plain, prefixed = Discriminator(), Discriminator()
    import_original({"discriminator": state}, plain, "discriminator")
    path = tmp_path / "InpaintingModel_dis.pth"
    torch.save({"discriminator": {f"module.{k}": v for k, v in state.items()}}, path)
    import_original(path, prefixed, "discriminator")
    for (key, a), b in zip(plain.state_dict().items(), prefixed.state_dict().values()):
        assert torch.equal(a, b), key


def test_a_float64_generator_stays_float64():
    g = Generator(TINY).double().eval()
    x, m = torch.rand(1, 3, 32, 32, dtype=torch.float64), torch.zeros(1, 1, 32, 32).double()
    with torch.no_grad():
        image, points = g(x, m)
    assert image.dtype == points.dtype == torch.float64
