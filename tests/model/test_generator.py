import pytest
import torch

from inclg.config import GeneratorConfig
from inclg.model.generator import Generator, landmark_map, parameter_count
from inclg.model.masking import masked_input

TINY = GeneratorConfig(channels=8, residual_blocks=2)


def tiny_batch(batch=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g)
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 4: size // 2, size // 4: 3 * size // 4] = 1
    return masked_input(image, mask), mask


def test_paper_network_parameter_counts_match_the_original():
    g = Generator()
    assert parameter_count(g) == 13_894_479
    parts = {
        "encoder1": 18_944, "encoder2": 262_400, "encoder3": 1_049_088, "middle": 8_261_120,
        "attention": 1_917_762, "decoder1": 1_048_832, "decoder2": 524_416, "decoder3": 18_819,
        "fuse1": 65_792, "fuse2": 83_200, "fuse3": 16_512,
    }
    for name, count in parts.items():
        assert parameter_count(getattr(g, name)) == count, name
    head = parameter_count(g.landmark_head) + parameter_count(g.landmark_fc) + g.landmark_gamma.numel()
    assert head == 627_594


def test_paper_network_shapes(device):
    g = Generator().to(device).eval()
    x, m = tiny_batch(batch=1, size=64)
    with torch.no_grad():
        image, points = g(x.to(device), m.to(device))
    assert image.shape == (1, 3, 64, 64) and points.shape == (1, 68, 2)
    assert image.min() >= 0 and image.max() <= 1


def test_rejects_size_not_multiple_of_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        Generator(TINY)(torch.rand(1, 3, 30, 30), torch.zeros(1, 1, 30, 30))


def reference_landmark_map(points, height, width):
    """The original's definition, one point at a time."""
    out = torch.zeros(points.shape[0], 1, height, width)
    for b in range(points.shape[0]):
        for x, y in points[b].tolist():
            col = int(min(max(x * width, 0), width - 1))
            row = int(min(max(y * height, 0), height - 1))
            out[b, 0, row, col] = 1
    return out


def test_landmark_map_equals_per_point_definition():
    torch.manual_seed(0)
    points = torch.rand(3, 68, 2) * 1.4 - 0.2  # some outside [0, 1] to exercise the clamping
    points[0, :5] = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.999, 0.5], [0.5, 0.99999], [-3, 7]])
    assert torch.equal(landmark_map(points, 32, 24), reference_landmark_map(points, 32, 24))
    assert torch.equal(landmark_map(points, 128, 128), reference_landmark_map(points, 128, 128))


def test_landmarks_are_pixels_and_feed_the_map():
    torch.manual_seed(0)
    g = Generator(TINY).eval()
    x, m = tiny_batch()
    with torch.no_grad():
        image, points = g(x, m)
        g.landmark_fc.bias.fill_(0.5)  # every point at the centre of the image
        g.landmark_fc.weight.zero_()
        _, centred = g(x, m)
    assert torch.allclose(centred, torch.full_like(centred, 16.0))  # 0.5 * 32 px
    assert not torch.allclose(points, centred)


def gradients(g, x, m):
    g.zero_grad()
    image, points = g(x, m)
    (image.mean() + points.mean()).backward()
    return {n: p.grad for n, p in g.named_parameters()}


def test_zero_initialised_gammas_receive_gradients():
    torch.manual_seed(0)
    grads = gradients(Generator(TINY).train(), *tiny_batch())
    for name in ("landmark_gamma", "attention.gamma", "attention.alpha", "fuse2.0.weight"):
        assert grads[name].abs().sum() > 0, name


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    g = Generator(TINY).train()
    with torch.no_grad():  # as after some training; at 0 they block the attention query's gradient
        g.attention.gamma.fill_(0.5)
        g.attention.alpha.fill_(0.5)
    grads = gradients(g, *tiny_batch())
    assert [n for n, grad in grads.items() if grad is None or not torch.any(grad != 0)] == []


def test_no_gradient_flows_through_the_landmark_map():
    torch.manual_seed(0)
    g = Generator(TINY).train()
    x, m = tiny_batch()
    image, _ = g(x, m)
    image.mean().backward()
    for name, p in g.named_parameters():
        if name.startswith(("landmark_head", "landmark_fc", "landmark_gamma")):
            assert p.grad is None or torch.all(p.grad == 0), name


def test_same_seed_same_output():
    x, m = tiny_batch()
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        g = Generator(TINY).eval()
        with torch.no_grad():
            outputs.append(g(x, m))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    torch.manual_seed(124)
    with torch.no_grad():
        other = Generator(TINY).eval()(x, m)[0]
    assert not torch.equal(outputs[0][0], other)


def test_bfloat16_autocast_runs_and_stays_close(device):
    torch.manual_seed(0)
    g = Generator(TINY).to(device).eval()
    x, m = (t.to(device) for t in tiny_batch())
    with torch.no_grad():
        ref_image, ref_points = g(x, m)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            image, points = g(x, m)
    assert image.dtype == torch.bfloat16 and points.dtype == torch.float32
    assert torch.isfinite(image.float()).all()
    assert (image.float() - ref_image).abs().max() < 0.05
    assert (points - ref_points).abs().max() < 0.5  # pixels


def test_batch_independence_in_eval_mode():
    torch.manual_seed(0)
    g = Generator(TINY).eval()
    x, m = tiny_batch(batch=3)
    with torch.no_grad():
        full, _ = g(x, m)
        single, _ = g(x[1:2], m[1:2])
    torch.testing.assert_close(full[1:2], single, rtol=1e-4, atol=1e-5)
