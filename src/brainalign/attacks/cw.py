"""Carlini & Wagner L2 attack (Carlini & Wagner, IEEE S&P 2017), a minimal-perturbation attack.

minimize_w  ||x'(w) - x||_2^2 + c * max(Z_y(x') - max_{j != y} Z_j(x'), -kappa),   x'(w) = (tanh(w) + 1) / 2

Adam on w (the tanh change of variables keeps x' in [0, 1]), and a binary search over c per example:
c shrinks where an adversarial was found, grows tenfold (then bisects) where none was. The smallest
adversarial over all searches is kept. ``cw_l2`` at budget ``eps`` returns it where ||x' - x||_2 <= eps
and the clean image elsewhere, so an accuracy curve over an eps grid can reuse one ``minimal`` run.
Defaults are smaller than the paper's (9 searches x 10,000 Adam steps of 0.01 from c0 = 1e-3) to fit CPU
budgets: 6 searches x 100 steps of 0.05 from c0 = 0.1. The larger step matters: pixels at exactly 0 or 1
sit where tanh is flat, and 100 steps of 0.01 cannot move them (dark digit backgrounds stay frozen).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from brainalign.attacks.base import AttackInfo, MinimalResult, finish_minimal
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS


@torch.enable_grad()
def cw_l2_minimal(model, x: torch.Tensor, y: torch.Tensor, *, steps: int = 100, search_steps: int = 6,
                  c_init: float = 0.1, lr: float = 0.05, kappa: float = 0.0,
                  generator: torch.Generator | None = None) -> MinimalResult:
    """The smallest L2 adversarial C&W finds per example. Deterministic: ``generator`` is unused."""
    if steps < 1 or search_steps < 1 or c_init <= 0 or lr <= 0 or kappa < 0:
        raise ConfigError("cw_l2 needs steps >= 1, search_steps >= 1, c_init > 0, lr > 0 and kappa >= 0")
    x = x.detach()
    n = x.shape[0]
    w0 = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6))
    onehot = F.one_hot(y, num_classes=model(x[:1]).shape[1]).bool()
    c = torch.full((n,), c_init, device=x.device)
    lo, hi = torch.zeros(n, device=x.device), torch.full((n,), math.inf, device=x.device)
    best_dist = torch.full((n,), math.inf, device=x.device)
    best_adv = x.clone()
    for _ in range(search_steps):
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for _ in range(steps):
            x_adv = (torch.tanh(w) + 1) / 2
            logits = model(x_adv)
            dist2 = (x_adv - x).flatten(1).pow(2).sum(1)  # (B,)
            real = logits[onehot]
            other = logits.masked_fill(onehot, -math.inf).amax(1)
            margin = real - other
            loss = (dist2 + c * margin.clamp(min=-kappa)).sum()
            (w.grad,) = torch.autograd.grad(loss, w)
            with torch.no_grad():
                # The iterate just evaluated: adversarial with the required confidence, and closer?
                adv = margin.detach() < -kappa if kappa > 0 else logits.argmax(1) != y
                dist = dist2.detach().sqrt()
                better = adv & (dist < best_dist)
                best_dist = torch.where(better, dist, best_dist)
                best_adv = torch.where(better.view(-1, 1, 1, 1), x_adv.detach(), best_adv)
                found |= adv
            opt.step()
        hi = torch.where(found, torch.minimum(hi, c), hi)
        lo = torch.where(found, lo, torch.maximum(lo, c))
        c = torch.where(torch.isinf(hi), c * 10, (lo + hi) / 2)
    return finish_minimal(model, x, y, best_adv, torch.isfinite(best_dist), norm="L2")


@ATTACKS.register("cw_l2", description="C&W L2 (Carlini & Wagner 2017): minimal L2 adversarial, kept within eps",
                  info=AttackInfo(family="whitebox", norm="L2", minimal_perturbation=True))
def cw_l2(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 100, search_steps: int = 6,
          c_init: float = 0.1, lr: float = 0.05, kappa: float = 0.0,
          generator: torch.Generator | None = None) -> torch.Tensor:
    return cw_l2_minimal(model, x, y, steps=steps, search_steps=search_steps, c_init=c_init, lr=lr, kappa=kappa,
                         generator=generator).at_budget(eps)


cw_l2.minimal = cw_l2_minimal
