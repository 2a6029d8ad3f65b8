"""Losses against hand computations on tiny tensors; a random VGG19 stands in for ImageNet."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inclg.config import LossConfig
from inclg.losses import (
    AdversarialLoss,
    InpaintingLoss,
    PerceptualStyleLoss,
    gram,
    landmark_loss,
    pixel_l1,
    total_variation,
)
from inclg.model.vgg import VGGFeatures


@pytest.fixture(scope="module")
def feature_net() -> VGGFeatures:
    """Random VGG19 with He initialisation so activations stay O(1) down to relu5_2."""
    torch.manual_seed(0)
    net = VGGFeatures("vgg19")
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.normal_(module.bias, std=0.1)
    return net


def _batch(seed: int = 0, b: int = 2, size: int = 32):
    g = torch.Generator().manual_seed(seed)
    out = torch.rand(b, 3, size, size, generator=g)
    img = torch.rand(b, 3, size, size, generator=g)
    mask = torch.zeros(b, 1, size, size)
    mask[:, :, 8:24, 4:20] = 1
    return out, img, mask


# --- small losses ----------------------------------------------------------------------------


def test_pixel_l1_divides_by_hole_fraction() -> None:
    img = torch.zeros(1, 3, 2, 2)
    out = torch.zeros(1, 3, 2, 2)
    out[0, 0, 0, 0] = 1.2  # one of 12 values off by 1.2 -> mean 0.1
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # hole fraction 0.25
    assert pixel_l1(out, img, mask).item() == pytest.approx(0.1 / 0.25)


def test_pixel_l1_with_empty_mask_is_plain_l1() -> None:
    out, img, _ = _batch()
    loss = pixel_l1(out, img, torch.zeros(2, 1, 32, 32))
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, F.l1_loss(out, img))


def test_gram_by_hand() -> None:
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [1, C=2, H=1, W=2]
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / (2 * 1 * 2)
    torch.testing.assert_close(gram(features), expected)


def test_gram_is_float32_under_bf16_autocast() -> None:
    features = torch.rand(2, 8, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = gram(features.to(torch.bfloat16))
    assert result.dtype == torch.float32
    f = features.to(torch.bfloat16).float().reshape(2, 8, 16)
    torch.testing.assert_close(result, f @ f.transpose(1, 2) / 128)


def test_total_variation_by_hand() -> None:
    x = torch.tensor([[[[0.0, 1.0], [3.0, 7.0]]]])
    # vertical |3-0|, |7-1| -> mean 4.5; horizontal |1-0|, |7-3| -> mean 2.5
    assert total_variation(x).item() == pytest.approx(7.0)


def test_landmark_loss_per_face_l2_then_batch_mean() -> None:
    gt = torch.zeros(2, 68, 2)
    pred = torch.zeros(2, 68, 2)
    pred[0, 10] = torch.tensor([3.0, 0.0])
    pred[0, 40] = torch.tensor([0.0, 4.0])  # face 0: sqrt(3² + 4²) = 5; face 1: 0
    assert landmark_loss(pred, gt).item() == pytest.approx(2.5)
    pred.requires_grad_(True)
    landmark_loss(pred, gt).backward()
    assert torch.isfinite(pred.grad).all()  # a perfect face (norm 0) gives no NaN


# --- adversarial -----------------------------------------------------------------------------

LOGITS = torch.tensor([[-2.0, -0.5], [0.3, 1.7]])


def test_lsgan_is_mse_of_sigmoid() -> None:
    gan, p = AdversarialLoss("lsgan"), torch.sigmoid(LOGITS)
    torch.testing.assert_close(gan(LOGITS, True), ((p - 1) ** 2).mean())
    torch.testing.assert_close(gan(LOGITS, False), (p**2).mean())
    torch.testing.assert_close(gan(LOGITS, True, for_discriminator=False), ((p - 1) ** 2).mean())


def test_nsgan_equals_sigmoid_then_bce() -> None:
    gan, p = AdversarialLoss("nsgan"), torch.sigmoid(LOGITS)
    torch.testing.assert_close(gan(LOGITS, True), -torch.log(p).mean())
    torch.testing.assert_close(gan(LOGITS, False), -torch.log(1 - p).mean())
    torch.testing.assert_close(gan(LOGITS, True), F.binary_cross_entropy(p, torch.ones_like(p)))
    torch.testing.assert_close(gan(LOGITS, True, for_discriminator=False), -torch.log(p).mean())


def test_hinge_edgeconnect_form() -> None:
    gan = AdversarialLoss("hinge")
    torch.testing.assert_close(gan(LOGITS, True), torch.clamp(1 - LOGITS, min=0).mean())
    torch.testing.assert_close(gan(LOGITS, False), torch.clamp(1 + LOGITS, min=0).mean())
    torch.testing.assert_close(gan(LOGITS, True, for_discriminator=False), -LOGITS.mean())
    with pytest.raises(ValueError, match="target_is_real=True"):
        gan(LOGITS, False, for_discriminator=False)


def test_unknown_gan_type() -> None:
    with pytest.raises(ValueError, match="wgan"):
        AdversarialLoss("wgan")


# --- perceptual and style --------------------------------------------------------------------


def _naive_perceptual_style(net: VGGFeatures, out, img, mask):
    """The original's formula: four separate passes of the feature network."""
    fo, fi, fom, fim = net(out), net(img), net(out * mask), net(img * mask)
    perceptual = sum(
        F.l1_loss(fo[n], fi[n]) for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    )
    style = sum(
        F.l1_loss(gram(fom[n]), gram(fim[n])) for n in ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
    )
    return perceptual, style


def test_two_batched_passes_equal_the_four_pass_formula(feature_net: VGGFeatures) -> None:
    out, img, mask = _batch()
    calls: list[tuple[int, bool]] = []
    hook = feature_net.register_forward_pre_hook(
        lambda module, args: calls.append((args[0].shape[0], torch.is_grad_enabled()))
    )
    try:
        perceptual, style = PerceptualStyleLoss(feature_net)(out, img, mask)
    finally:
        hook.remove()
    assert calls == [(4, False), (4, True)]  # targets without grad, then predictions; batch 2B
    naive_p, naive_s = _naive_perceptual_style(feature_net, out, img, mask)
    assert perceptual.item() > 0 and style.item() > 0
    torch.testing.assert_close(perceptual, naive_p, rtol=1e-4, atol=0)
    torch.testing.assert_close(style, naive_s, rtol=1e-4, atol=0)


def test_gradients_reach_out_only(feature_net: VGGFeatures) -> None:
    out, img, mask = _batch(seed=1)
    out.requires_grad_(True)
    img.requires_grad_(True)  # a probe: the target branch must not be in the graph
    perceptual, style = PerceptualStyleLoss(feature_net)(out, img, mask)
    (perceptual + style).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert img.grad is None
    assert all(p.grad is None for p in feature_net.parameters())


def test_vgg16_uses_its_own_style_layers() -> None:
    loss = PerceptualStyleLoss(VGGFeatures("vgg16"))
    assert loss.style_layers == ("relu2_2", "relu3_3", "relu4_3", "relu5_2")
    with pytest.raises(ValueError, match="does not return"):
        PerceptualStyleLoss(VGGFeatures("vgg19", layers=("relu1_1",)))


# --- the combined module ---------------------------------------------------------------------


def _inputs(seed: int = 2):
    out, img, mask = _batch(seed)
    g = torch.Generator().manual_seed(seed)
    lmk_gt = torch.rand(2, 68, 2, generator=g) * 32
    lmk_pred = torch.rand(2, 68, 2, generator=g) * 32
    d_fake = torch.randn(2, 1, 4, 4, generator=g)
    return out, img, mask, lmk_pred, lmk_gt, d_fake


def test_generator_losses_terms_and_weighted_total(feature_net: VGGFeatures) -> None:
    config = LossConfig()
    loss = InpaintingLoss(config, feature_net)
    out, img, mask, lmk_pred, lmk_gt, d_fake = _inputs()
    terms = loss.generator_losses(out, img, mask, lmk_pred, lmk_gt, d_fake)
    assert list(terms) == ["l1", "perceptual", "style", "tv", "landmark", "adversarial", "total"]
    torch.testing.assert_close(terms["l1"], pixel_l1(out, img, mask))
    torch.testing.assert_close(terms["tv"], total_variation(torch.where(mask > 0.5, out, img)))
    torch.testing.assert_close(terms["landmark"], landmark_loss(lmk_pred, lmk_gt))
    torch.testing.assert_close(terms["adversarial"], ((torch.sigmoid(d_fake) - 1) ** 2).mean())
    weights = {
        "l1": 1,
        "perceptual": 0.1,
        "style": 250,
        "tv": 0.1,
        "landmark": 4.6e-4,
        "adversarial": 0.01,
    }
    expected = sum(w * terms[k].item() for k, w in weights.items())
    assert terms["total"].item() == pytest.approx(expected, rel=1e-5)


def test_tv_ignores_output_outside_the_hole(feature_net: VGGFeatures) -> None:
    loss = InpaintingLoss(LossConfig(), feature_net)
    out, img, mask, lmk_pred, lmk_gt, d_fake = _inputs()
    changed = torch.where(mask > 0.5, out, torch.rand_like(out))
    a = loss.generator_losses(out, img, mask, lmk_pred, lmk_gt, d_fake)["tv"]
    b = loss.generator_losses(changed, img, mask, lmk_pred, lmk_gt, d_fake)["tv"]
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("gan_type", ["lsgan", "nsgan", "hinge"])
def test_discriminator_loss_is_mean_of_real_and_fake(gan_type: str) -> None:
    loss = InpaintingLoss(LossConfig(perceptual=0, style=0, gan_type=gan_type))
    real, fake = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    gan = AdversarialLoss(gan_type)
    expected = (gan(real, True) + gan(fake, False)) / 2
    torch.testing.assert_close(loss.discriminator_loss(real, fake), expected)


def test_no_feature_network_needed_without_perceptual_and_style() -> None:
    loss = InpaintingLoss(LossConfig(perceptual=0, style=0))  # would raise if it searched weights
    assert loss.perceptual_style is None
    terms = loss.generator_losses(*_inputs())
    assert terms["perceptual"].item() == 0 and terms["style"].item() == 0


def test_bf16_autocast_on_cpu(feature_net: VGGFeatures) -> None:
    loss = InpaintingLoss(LossConfig(), feature_net)
    out, img, mask, lmk_pred, lmk_gt, d_fake = _inputs()
    reference = loss.generator_losses(out, img, mask, lmk_pred, lmk_gt, d_fake)
    out.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = loss.generator_losses(out, img, mask, lmk_pred, lmk_gt, d_fake.bfloat16())
    for name, value in terms.items():
        assert value.dtype == torch.float32, name
        assert math.isfinite(value.item()), name
        assert value.item() == pytest.approx(reference[name].item(), rel=0.1, abs=1e-6), name
    terms["total"].backward()
    assert torch.isfinite(out.grad).all()


def test_configured_layers_and_a_switched_off_style_term() -> None:
    """Fewer perceptual layers and no style term: the net runs on the B predictions only."""
    torch.manual_seed(0)
    net = VGGFeatures("vgg16", layers=("relu1_1", "relu2_1"))
    loss = PerceptualStyleLoss(net, ("relu1_1", "relu2_1"), ())
    out, img = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:20, 8:20] = 1
    perceptual, style = loss(out, img, mask)
    a, b = net(out), net(img)
    expected = sum((a[n] - b[n]).abs().mean() for n in ("relu1_1", "relu2_1"))
    torch.testing.assert_close(perceptual, expected)
    assert style == 0
    seen = []
    net.register_forward_hook(lambda m, args, result: seen.append(args[0].shape[0]))
    loss(out, img, mask)
    assert seen == [2, 2]  # targets and predictions, no masked half


def test_inpainting_loss_without_the_adversarial_term() -> None:
    config = LossConfig(perceptual=0.0, style=0.0)
    loss = InpaintingLoss(config)
    out, img = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    points = torch.rand(2, 68, 2)
    terms = loss.generator_losses(out, img, mask, points, points, None)
    assert terms["adversarial"] == 0
    with_d = loss.generator_losses(out, img, mask, points, points, torch.zeros(2, 1, 4, 4))
    assert terms["total"] < with_d["total"]
