"""FGSM: one signed-gradient step. Goodfellow, Shlens & Szegedy, ICLR 2015.

x_adv = clip_[0,1](x + eps * sign(grad_x CE(f(x), y)))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brainalign.attacks.base import AttackInfo, LinfBall
from brainalign.registry import ATTACKS


@ATTACKS.register("fgsm", description="FGSM (Goodfellow et al. 2015): one signed-gradient step, Linf",
                  info=AttackInfo(family="whitebox", norm="Linf", max_strength=1.0))
@torch.enable_grad()  # attacks need gradients even when called under torch.no_grad()
def fgsm(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, generator: torch.Generator | None = None,
         **_) -> torch.Tensor:
    ball = LinfBall(eps)
    x_adv = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x_adv), y)
    (grad,) = torch.autograd.grad(loss, x_adv)
    return ball.project(ball.step(x_adv.detach(), grad, eps), x).detach()


fgsm.params = ()  # takes none: check_attack rejects typos that ``**_`` would swallow
