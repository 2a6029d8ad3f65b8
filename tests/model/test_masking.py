import torch

from inclg.model.masking import composite, masked_input, resize_mask


def test_composite_keeps_known_pixels_bit_for_bit():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16)
    output = torch.rand(2, 3, 16, 16) * 1e6 - 5e5  # wildly different values outside the hole
    mask = (torch.rand(2, 1, 16, 16) > 0.6).float()
    result = composite(output, image, mask)
    known = (mask == 0).expand_as(image)
    assert torch.equal(result[known], image[known])
    assert torch.equal(result[~known], output[~known])


def test_masked_input_fills_hole_with_white():
    image = torch.rand(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:5, 3:6] = 1
    x = masked_input(image, mask)
    assert torch.all(x[..., 2:5, 3:6] == 1)
    assert torch.equal(x[..., :2, :], image[..., :2, :])


def test_mask_pyramid_sizes_and_range():
    mask = (torch.rand(1, 1, 32, 32) > 0.5).float()
    half, quarter = resize_mask(mask, 16), resize_mask(mask, (8, 8))
    assert half.shape == (1, 1, 16, 16) and quarter.shape == (1, 1, 8, 8)
    assert half.min() >= 0 and half.max() <= 1
