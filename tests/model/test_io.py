import json
import re
from pathlib import Path

import pytest
import torch

from inclg.config import DiscriminatorConfig, GeneratorConfig
from inclg.model.discriminator import Discriminator
from inclg.model.generator import Generator
from inclg.model.io import WeightsError, import_original

KEYS_FILE = Path(__file__).parent.parent / "fixtures" / "original_checkpoint_keys.txt"
TINY = GeneratorConfig(channels=8, residual_blocks=1)
# Keys the original registers twice (same module under two names) and the name they share.
TWINS = {"auto_attn.model.model.1.": "auto_attn.model.conv1.",
         "auto_attn.model.model.3.": "auto_attn.model.conv2.",
         "auto_attn.model.shortcut.0.": "auto_attn.model.bypass.",
         "features.0.": "conv1.0."}
BUFFER = re.compile(r"(running_mean|running_var|num_batches_tracked|weight_u|weight_v)$")


def original_keys() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    sections: dict[str, list] = {}
    current = None
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("["):
            current = line[1:line.index("]")]
            sections[current] = []
        elif current and line.strip() and not line.startswith("#"):
            key, shape = line.rsplit(" (", 1)
            sections[current].append((key, tuple(int(s) for s in shape.rstrip(",)").split(",") if s)))
    return sections


def synthetic_original(kind: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the original's key names and shapes, twins sharing one tensor."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in original_keys()[kind]:
        twin = next((key.replace(a, b, 1) for a, b in TWINS.items() if key.startswith(a)), None)
        if twin in state:
            state[key] = state[twin]
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    return state


def built_parameters(state: dict[str, torch.Tensor]) -> int:
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
def test_original_checkpoint_imports_and_accounts_for_dead_weights(tmp_path, kind, built, ours, model):
    state = synthetic_original(kind)
    assert built_parameters(state) == built  # what the original builds
    path = tmp_path / f"InpaintingModel_{kind[:3]}.pth"
    torch.save({"iteration": 4242, kind: state}, path)
    net = model()
    report = import_original(path, net, kind)
    assert sum(p.numel() for p in net.parameters()) == ours
    assert report.dead_parameters == built - ours
    assert report.iteration == 4242


def test_generator_import_maps_values_to_the_right_layers():
    state = synthetic_original("generator")
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


def test_import_refuses_wrong_or_unsafe_files(tmp_path):
    state = synthetic_original("generator")
    del state["before_share1.0.bias"]
    with pytest.raises(WeightsError, match="unused parameters"):
        import_original(state, Generator(), "generator")
    state = synthetic_original("generator")
    state["auto_attn.model.model.1.bias"] = state["auto_attn.model.model.1.bias"].clone() + 1
    with pytest.raises(WeightsError, match="should be the same tensor"):
        import_original(state, Generator(), "generator")
    with pytest.raises(WeightsError, match="do not fit"):
        import_original(synthetic_original("generator"), Generator(TINY), "generator")

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
