import torch
import torch.nn.functional as F

from inclg.model.layers import Attention, GatedConv2d, SpectralResBlock


def explicit_attention(module: Attention, x, pre=None, mask=None):
    """The original's formulation: softmax over keys of q^T q (no scaling), written out in full."""
    b, c, h, w = x.shape
    q = module.query(x).view(b, -1, h * w)  # [B, C/4, N]
    attention = torch.softmax(torch.bmm(q.transpose(1, 2), q), dim=-1)  # [B, N, N]
    out = torch.bmm(x.view(b, c, h * w), attention.transpose(1, 2)).view(b, c, h, w)
    out = module.gamma * out + x
    if pre is None:
        return out
    context = torch.bmm(pre.view(b, c, h * w), attention.transpose(1, 2)).view(b, c, h, w)
    context = module.alpha * mask * context + (1 - mask) * pre
    return module.fuse(torch.cat([out, context], dim=1))


def test_attention_sdpa_equals_explicit_softmax():
    torch.manual_seed(0)
    module = Attention(16, long_range=True).eval()
    with torch.no_grad():
        module.gamma.fill_(0.7)
        module.alpha.fill_(-1.3)
        module.query.weight.mul_(10)  # sharper attention than at init
    x, pre = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    with torch.no_grad():
        torch.testing.assert_close(module(x, pre, mask), explicit_attention(module, x, pre, mask),
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(module(x), explicit_attention(module, x), rtol=1e-5, atol=1e-5)


def test_attention_starts_as_identity_and_copies_pre_outside_hole():
    """gamma = alpha = 0 at init: self-attention is the identity and context is pre off the hole."""
    torch.manual_seed(0)
    module = Attention(8, long_range=False)
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(module(x), x)
    long_range = Attention(8, long_range=True).eval()
    pre = torch.randn(1, 8, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 1:3, 1:3] = 1
    with torch.no_grad():  # the fused context is pre off the hole and 0 (alpha = 0) inside it
        expected = long_range.fuse(torch.cat([x, (1 - mask) * pre], dim=1))
        torch.testing.assert_close(long_range(x, pre, mask), expected)


def test_gated_conv_splits_features_and_gates():
    torch.manual_seed(0)
    layer = GatedConv2d(3, 4, 3, padding=1)
    x = torch.randn(1, 3, 5, 5)
    raw = layer.conv(x)
    torch.testing.assert_close(layer(x), raw[:, :4] * torch.sigmoid(raw[:, 4:]))
    up = GatedConv2d(4, 2, 4, stride=2, padding=1, transposed=True)
    assert up(torch.randn(1, 4, 5, 5)).shape == (1, 2, 10, 10)


def test_spectral_res_block_matches_definition():
    torch.manual_seed(0)
    block = SpectralResBlock(8, 4, 4).eval()
    x = torch.randn(1, 8, 6, 6)
    y = block.conv2(F.leaky_relu(block.conv1(F.leaky_relu(x, 0.01)), 0.01)) + block.shortcut(x)
    torch.testing.assert_close(block(x), y)
    weight = block.conv1.weight  # spectral-normalised: largest singular value 1 after power iteration
    assert torch.linalg.matrix_norm(weight.flatten(1), ord=2) <= 1.0 + 1e-3


def test_spectral_norm_follows_the_original_power_iteration():
    """Train-mode forwards from the same weight and u, v equal the hook-based
    `torch.nn.utils.spectral_norm` the original uses (v updated first), step after step."""
    import warnings

    from inclg.model.layers import spectral_conv

    torch.manual_seed(0)
    ours = spectral_conv(6, 4, 3, padding=1)
    reference = torch.nn.Conv2d(6, 4, 3, padding=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the hook-based API is deprecated
        reference = torch.nn.utils.spectral_norm(reference)
    sn = ours.parametrizations.weight[0]
    with torch.no_grad():
        reference.weight_orig.copy_(ours.parametrizations.weight.original)
        reference.bias.copy_(ours.bias)
        reference.weight_u.copy_(sn._u)
        reference.weight_v.copy_(sn._v)
        sn._u.copy_(torch.nn.functional.normalize(torch.randn(4), dim=0))  # a stale u, as after
        reference.weight_u.copy_(sn._u)  # an imported checkpoint's last step
    x = torch.randn(2, 6, 5, 5)
    for _ in range(3):
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(sn._u, reference.weight_u)
        torch.testing.assert_close(sn._v, reference.weight_v)


def test_state_dicts_of_pytorch_spectral_norm_load_unchanged():
    """Models saved before this implementation (PyTorch's parametrization) load as they are."""
    from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

    from inclg.model.layers import spectral_conv

    torch.manual_seed(0)
    old = torch_spectral_norm(torch.nn.Conv2d(6, 4, 3, padding=1))
    ours = spectral_conv(6, 4, 3, padding=1)
    assert set(old.state_dict()) == set(ours.state_dict())
    ours.load_state_dict(old.state_dict())
    x = torch.randn(1, 6, 5, 5)
    with torch.no_grad():  # eval: both divide by u^T W v of the stored u, v
        torch.testing.assert_close(ours.eval()(x), old.eval()(x))
