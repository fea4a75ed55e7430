"""Additive uniform noise: x_noisy = clip_[0,1](x + U(-eps, eps)), so ||x_noisy - x||_inf <= eps.

A random-direction baseline inside the Linf ball (Attias et al.: CIFAR eps 0..0.1). One independent
draw per pixel and channel, from ``generator``.
"""

from __future__ import annotations

import torch

from brainalign.attacks.base import AttackInfo
from brainalign.registry import ATTACKS


@ATTACKS.register("noise_uniform", description="uniform noise in [-eps, eps], clipped to [0, 1]",
                  info=AttackInfo(family="noise", norm="Linf", parameter="eps", needs_gradients=False,
                                  max_strength=1.0))
def noise_uniform(model, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x.detach() + eps * (2 * noise - 1)).clamp(0.0, 1.0)
