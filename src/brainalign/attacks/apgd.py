"""APGD-CE and APGD-T (Croce & Hein, ICML 2020) individually, through pyautoattack (version='custom').

APGD: PGD with a momentum step and a step size halved at checkpoints where the loss stopped rising,
starting from 2 * eps; the best iterate is kept. APGD-CE maximises cross-entropy; APGD-T maximises the
targeted DLR loss  -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)  for each of the top K - 1 (at most 9)
other classes in turn. Defaults are AutoAttack 'standard''s: 100 iterations, 1 restart (APGD-CE), 1 restart
per target (APGD-T), 9 target classes (``targets``: the top-scoring other classes, at most K - 1).
``eot`` > 1 averages the gradient over stochastic forward passes.
apgd-ce + apgd-t is the cheap stand-in for full AutoAttack when the four attacks are too slow.

``apgd_ce_t_*`` runs the two as AutoAttack runs its sequence: APGD-T attacks only the images APGD-CE left
intact, so an image counts as robust only if both fail on it (the per-image worst case, at about half the
cost of running APGD-T on every image). Over a strength grid it is evaluated cumulatively
(``AttackInfo.cumulative``): each larger eps attacks only the images that survived the one below.
"""

from __future__ import annotations

import torch

from brainalign.attacks._pyautoattack import run_autoattack
from brainalign.attacks.base import AttackInfo
from brainalign.registry import ATTACKS

_LABELS = {("apgd-ce",): "APGD-CE (cross-entropy)", ("apgd-t",): "APGD-T (targeted DLR, top-k targets, k = 9)",
           ("apgd-ce", "apgd-t"): "APGD-CE, then APGD-T on the images it leaves intact (worst case per image)"}


def _register(name: str, norm: str, *which: str):
    label = _LABELS[which]

    @ATTACKS.register(name, description=f"{label}, {norm} (Croce & Hein 2020, pyautoattack)",
                      info=AttackInfo(family="whitebox", norm=norm, max_strength=1.0 if norm == "Linf" else None,
                                      stochastic_ok=True, cumulative=len(which) == 2))
    def attack(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 100, restarts: int = 1,
               eot: int = 1, targets: int = 9, generator: torch.Generator | None = None) -> torch.Tensor:
        return run_autoattack(model, x, y, eps, norm=norm, version="custom", attacks=list(which), steps=steps,
                              restarts=restarts, eot=eot, targets=targets, generator=generator)

    attack.__name__ = name
    return attack


apgd_ce_linf = _register("apgd_ce_linf", "Linf", "apgd-ce")
apgd_ce_l2 = _register("apgd_ce_l2", "L2", "apgd-ce")
apgd_t_linf = _register("apgd_t_linf", "Linf", "apgd-t")
apgd_t_l2 = _register("apgd_t_l2", "L2", "apgd-t")
apgd_ce_t_linf = _register("apgd_ce_t_linf", "Linf", "apgd-ce", "apgd-t")
apgd_ce_t_l2 = _register("apgd_ce_t_l2", "L2", "apgd-ce", "apgd-t")
