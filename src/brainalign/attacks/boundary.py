"""Boundary Attack (Brendel, Rauber & Bethge, ICLR 2018): decision-based, minimal L2, through foolbox.

Starts from an adversarial far from x and walks along the decision boundary towards x: an orthogonal
(spherical) step of relative size ``spherical_step`` and a step of ``source_step`` towards x per iteration,
both adapted to keep about half the proposals adversarial. Only the top-1 label is read.
Li et al. 2019 and Attias et al. report the median over test images of the minimal perturbation it finds
(L2 and Linf; Attias et al. ||d||^2 / D after only 50 steps): use ``boundary.minimal`` and
``MinimalResult.distances``. It converges slowly (foolbox's default is 25,000 steps; ours 5,000): a median
from few steps is an upper bound, far from the minimal perturbation.
At budget ``eps`` the adversarial is returned where its L2 distance is <= eps, the clean image elsewhere.
"""

from __future__ import annotations

import torch

from brainalign.attacks._decision import run_foolbox
from brainalign.attacks.base import AttackInfo, MinimalResult
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS


def boundary_minimal(model, x: torch.Tensor, y: torch.Tensor, *, steps: int = 5000, spherical_step: float = 0.01,
                     source_step: float = 0.01, step_adaptation: float = 1.5,
                     generator: torch.Generator | None = None) -> MinimalResult:
    import foolbox as fb

    if steps < 1 or spherical_step <= 0 or source_step <= 0 or step_adaptation <= 1:
        raise ConfigError("boundary needs steps >= 1, spherical_step > 0, source_step > 0, step_adaptation > 1")
    attack = fb.attacks.BoundaryAttack(steps=steps, spherical_step=spherical_step, source_step=source_step,
                                       step_adaptation=step_adaptation)
    return run_foolbox(attack, model, x, y, "L2", generator)


@ATTACKS.register("boundary", description="Boundary Attack (Brendel et al. 2018), decision-based minimal L2 (foolbox)",
                  info=AttackInfo(family="blackbox", norm="L2", needs_gradients=False, minimal_perturbation=True))
def boundary(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 5000, spherical_step: float = 0.01,
             source_step: float = 0.01, step_adaptation: float = 1.5,
             generator: torch.Generator | None = None) -> torch.Tensor:
    return boundary_minimal(model, x, y, steps=steps, spherical_step=spherical_step, source_step=source_step,
                            step_adaptation=step_adaptation, generator=generator).at_budget(eps)


boundary.minimal = boundary_minimal
