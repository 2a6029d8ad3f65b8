import torch

from inclg.config import DiscriminatorConfig
from inclg.model.discriminator import Discriminator
from inclg.model.generator import parameter_count


def test_parameter_count_matches_the_original_used_part():
    assert parameter_count(Discriminator()) == 2_767_906


def test_patch_logits_shape(device):
    d = Discriminator().to(device)
    assert d(torch.rand(2, 3, 256, 256, device=device)).shape == (2, 1, 30, 30)


def test_every_conv_is_spectral_normalised_and_gradients_flow():
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(channels=8))
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d) and m is not d.attention.query]
    assert len(convs) == 5
    assert all(torch.nn.utils.parametrize.is_parametrized(c) for c in convs)
    with torch.no_grad():
        d.attention.gamma.fill_(0.5)  # zero at init, which blocks the query's gradient
    d(torch.rand(2, 3, 64, 64)).mean().backward()
    # alpha weighs long-range context, which D does not have; the original keeps it (and counts it)
    unused = {"attention.alpha"}
    assert [n for n, p in d.named_parameters() if p.grad is None] == sorted(unused)
