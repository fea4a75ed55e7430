"""Additive Gaussian noise: x_noisy = clip_[0,1](x + sigma * N(0, I)).

Not an attack but a robustness curve over sigma (Li et al. 2019; Attias et al.: CIFAR sigma 0..0.1,
MNIST 0..0.5). One independent draw per pixel and channel, from ``generator``.
"""

from __future__ import annotations

import torch

from brainalign.attacks.base import AttackInfo
from brainalign.registry import ATTACKS


@ATTACKS.register("noise_gaussian", description="Gaussian noise of standard deviation sigma, clipped to [0, 1]",
                  info=AttackInfo(family="noise", norm="none", parameter="sigma", needs_gradients=False))
def noise_gaussian(model, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x.detach() + eps * noise).clamp(0.0, 1.0)
