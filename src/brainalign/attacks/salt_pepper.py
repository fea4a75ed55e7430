"""Salt-and-pepper noise: each pixel, with probability ``amount``, becomes black or white (equally likely).

The pixel is replaced in all channels at once (a dead or saturated sensor site), unlike skimage's
``random_noise('s&p')`` which flips channels independently. Attias et al. report curves over the amount.
"""

from __future__ import annotations

import torch

from brainalign.attacks.base import AttackInfo
from brainalign.registry import ATTACKS


@ATTACKS.register("noise_salt_pepper", description="salt-and-pepper noise: a fraction `amount` of pixels set to 0 or 1",
                  info=AttackInfo(family="noise", norm="L0", parameter="amount", needs_gradients=False,
                                  max_strength=1.0))
def noise_salt_pepper(model, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    b, _, h, w = x.shape
    hit = torch.rand((b, 1, h, w), generator=generator, device=x.device) < eps  # (B, 1, H, W)
    salt = torch.rand((b, 1, h, w), generator=generator, device=x.device) < 0.5
    return torch.where(hit, salt.to(x.dtype).expand_as(x), x.detach())
