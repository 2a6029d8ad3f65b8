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
