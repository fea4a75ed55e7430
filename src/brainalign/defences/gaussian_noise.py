"""Gaussian noise data augmentation: train on noisy copies of the images.

    x~ = clip(x + sigma * N(0, I), 0, 1);   L = CE(f(x~), y)      or, with ``mix``, (CE(f(x), y) + CE(f(x~), y)) / 2

The cheapest way to buy robustness to noise, and the comparison the issue calls the "oracle": a model that
has seen the test-time corruption during training (Gaussian noise training as in Rusak et al., ECCV 2020,
"A simple way to make neural networks robust against diverse image corruptions", there with a fixed sigma
per model). ``sigma`` is in native [0, 1] pixel units, like the evaluation's ``noise_gaussian`` attack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brainalign.defences.base import Defence, DefenceInfo, check_number, clean_logits, device_generator
from brainalign.errors import ConfigError
from brainalign.registry import DEFENCES


def noisy_copy(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """clip(x + sigma * N(0, I), 0, 1), noise drawn from ``generator`` on ``x``'s device."""
    noise = torch.randn(x.shape, generator=device_generator(generator, x.device), device=x.device, dtype=x.dtype)
    return torch.clamp(x + sigma * noise, 0.0, 1.0)


@DEFENCES.register("gaussian_noise_augmentation",
                   description="train on Gaussian-noise copies clipped to [0, 1] (optionally mixed with clean)",
                   info=DefenceInfo(reference="Gaussian noise training, e.g. Rusak et al. 2020, ECCV, "
                                              "arXiv 2001.06057", uses_attack=False))
class GaussianNoiseAugmentation(Defence):
    """Cross-entropy on Gaussian-noise copies of the batch.

    Args:
        sigma: noise standard deviation, native [0, 1] pixel units (>= 0).
        mix: train on the clean and the noisy batch together (half the loss each) instead of noisy only.
    """

    def __init__(self, sigma: float = 0.1, mix: bool = False):
        self.sigma = check_number("sigma", sigma, minimum=0)
        if not isinstance(mix, bool):
            raise ConfigError(f"mix must be true or false, got {mix!r}")
        self.mix = mix

    def loss(self, model, x, y, generator):
        x_noisy = noisy_copy(x, self.sigma, generator)
        if self.mix:
            # One pass over both halves: batch-norm statistics see clean and noisy images together.
            logits = model(torch.cat([x, x_noisy]))  # (2B, K)
            return F.cross_entropy(logits, torch.cat([y, y])), logits[: len(y)]
        return F.cross_entropy(model(x_noisy), y), clean_logits(model, x)
