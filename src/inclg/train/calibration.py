"""Batch-norm statistics recomputed for the weights that are actually evaluated.

The landmark head normalises with BatchNorm. During training its running statistics follow the
live weights with momentum 0.1 over batches of 8, so at evaluation time they belong neither to the
weights of the moment nor, with a weight average (`train.ema_decay`), to the averaged weights. On
the compact model that mismatch moved every predicted jaw point ~12 px sideways (test NME 0.062
with the running statistics, 0.047 with statistics of the evaluated batch). As for stochastic
weight averaging (`torch.optim.swa_utils.update_bn`), the cure is one pass over training images
with the final weights, averaging the statistics exactly (momentum None). `update_bn` itself
cannot be used: it calls the model with one argument, and the generator takes image and mask.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import Dataset

from inclg.model.masking import masked_input


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module,
                          batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Replace the running mean and variance of every BatchNorm in `generator` by their exact
    averages over `batches` of (image [B, 3, H, W] in [0, 1], mask [B, 1, H, W]); only the
    BatchNorm layers run in training mode (spectral-norm estimates stay as they are). Returns
    the number of images seen (0: the generator has no BatchNorm and nothing was run)."""
    layers = batchnorm_layers(generator)
    if not layers:
        return 0
    modes = {m: m.training for m in generator.modules()}
    momenta = [layer.momentum for layer in layers]
    seen = 0
    try:
        generator.eval()
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # a cumulative average over every batch
            layer.train()
        for image, mask in batches:
            generator(masked_input(image, mask), mask)
            seen += image.shape[0]
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for module, training in modes.items():
            module.train(training)
    return seen


def calibration_batches(dataset: Dataset, count: int, batch_size: int,
                        seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `count` items of a training `dataset` as (image, mask) batches, their random
    holes and augmentation drawn from `seed` without touching the global RNG: the same faces at
    every calibration, and an exact resume stays exact."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        items = [dataset[i] for i in range(min(count, len(dataset)))]  # type: ignore[arg-type]
    return [(torch.stack([item[0] for item in items[i:i + batch_size]]),
             torch.stack([item[2] for item in items[i:i + batch_size]]))
            for i in range(0, len(items), batch_size)]
