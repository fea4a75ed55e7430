"""The search shared by the single-parameter semantic attacks (hue, saturation, brightness, contrast, rotation).

One scalar per example, inside [low, high]: random start in the range (from ``generator``), then
``steps`` signed-gradient ascent steps on cross-entropy of step 2.5 * (high - low) / 2 / steps, clipped to
the range, each example stopping at the first parameter that fools the model (Hsiung et al. 2023's CAA
per-component search: ``_comp_pgd`` with early stop, inner_iter 10).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from brainalign.errors import ConfigError

Transform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.enable_grad()
def search_parameter(model, x: torch.Tensor, y: torch.Tensor, transform: Transform, low: float, high: float, *,
                     steps: int = 10, random_start: bool = True, early_stop: bool = True,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(transform(x, theta), theta)`` with theta (B,) in [low, high] chosen to fool the model."""
    if steps < 1:
        raise ConfigError(f"semantic attacks need steps >= 1, got {steps}")
    x = x.detach()
    b = x.shape[0]
    identity = 0.5 * (low + high)  # every range here is symmetric about the identity parameter
    if high <= low:
        theta = torch.full((b,), identity, device=x.device, dtype=x.dtype)
        return transform(x, theta).detach(), theta
    if random_start:
        theta = low + (high - low) * torch.rand(b, generator=generator, device=x.device, dtype=x.dtype)
    else:
        theta = torch.full((b,), identity, device=x.device, dtype=x.dtype)
    alpha = 2.5 * (high - low) / 2 / steps
    fooled = torch.zeros(b, dtype=torch.bool, device=x.device)
    for _ in range(steps):
        theta.requires_grad_(True)
        logits = model(transform(x, theta))
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), theta)
        with torch.no_grad():
            if early_stop:
                fooled |= logits.argmax(1) != y
            step = torch.where(fooled, torch.zeros_like(grad), alpha * grad.sign())
            theta = (theta.detach() + step).clamp(low, high)
    return transform(x, theta).detach(), theta.detach()
