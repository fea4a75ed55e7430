"""HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020): decision-based, minimal L2 or Linf, through foolbox.

Each iteration binary-searches the boundary between x and the current adversarial, estimates the
boundary's normal from the signs of up to ``max_gradient_evals`` random probes (starting at
``initial_gradient_evals`` and growing with sqrt(iteration)), and takes a geometric step along it.
Reports the smallest perturbation found (median over examples, as for the Boundary Attack); at budget
``eps`` the adversarial is returned where its distance in the entry's norm is <= eps.
"""

from __future__ import annotations

import torch

from brainalign.attacks._decision import run_foolbox
from brainalign.attacks.base import AttackInfo, MinimalResult
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS


def hopskipjump_minimal(model, x: torch.Tensor, y: torch.Tensor, *, norm: str = "L2", steps: int = 64,
                        initial_gradient_evals: int = 100, max_gradient_evals: int = 10000, gamma: float = 1.0,
                        generator: torch.Generator | None = None) -> MinimalResult:
    import foolbox as fb

    if norm not in ("L2", "Linf"):
        raise ConfigError(f"hopskipjump: norm must be L2 or Linf, got {norm!r}")
    if steps < 1 or initial_gradient_evals < 1 or max_gradient_evals < initial_gradient_evals or gamma <= 0:
        raise ConfigError("hopskipjump needs steps >= 1, 1 <= initial_gradient_evals <= max_gradient_evals, gamma > 0")
    attack = fb.attacks.HopSkipJumpAttack(steps=steps, initial_gradient_eval_steps=initial_gradient_evals,
                                          max_gradient_eval_steps=max_gradient_evals, gamma=gamma,
                                          constraint=norm.lower())
    return run_foolbox(attack, model, x, y, norm, generator)


def _register(name: str, norm: str):
    @ATTACKS.register(name, description=f"HopSkipJump (Chen et al. 2020), decision-based minimal {norm} (foolbox)",
                      info=AttackInfo(family="blackbox", norm=norm, needs_gradients=False, minimal_perturbation=True,
                                      max_strength=1.0 if norm == "Linf" else None))
    def attack(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 64,
               initial_gradient_evals: int = 100, max_gradient_evals: int = 10000, gamma: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        return minimal(model, x, y, steps=steps, initial_gradient_evals=initial_gradient_evals,
                       max_gradient_evals=max_gradient_evals, gamma=gamma, generator=generator).at_budget(eps)

    def minimal(model, x, y, *, steps: int = 64, initial_gradient_evals: int = 100, max_gradient_evals: int = 10000,
                gamma: float = 1.0, generator: torch.Generator | None = None) -> MinimalResult:
        return hopskipjump_minimal(model, x, y, norm=norm, steps=steps, initial_gradient_evals=initial_gradient_evals,
                                   max_gradient_evals=max_gradient_evals, gamma=gamma, generator=generator)

    attack.__name__, attack.minimal = name, minimal
    return attack


hsj_l2 = _register("hsj_l2", "L2")
hsj_linf = _register("hsj_linf", "Linf")
