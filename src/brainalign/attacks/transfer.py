"""Transfer attacks: adversarials crafted on a surrogate model, evaluated on the target.

x_adv = A(surrogate, x, y, eps),  accuracy read on the target model.
Attias et al. craft FGSM on an unregularized ResNet and transfer it to the regularized ones
(CIFAR-10 eps 0..0.02). The target's gradients are never used, so a transfer attack that beats the
white-box attacks on the target points at gradient masking (see the self-checks).
``surrogate`` must be a model in eval mode that takes the same images; ``source`` names the attack run on it.
"""

from __future__ import annotations

import torch

from brainalign.attacks.base import AttackInfo
from brainalign.attacks.fgsm import fgsm
from brainalign.attacks.pgd import pgd_l2, pgd_linf
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS


def transfer(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, surrogate, source: str,
             generator: torch.Generator | None = None, **params) -> torch.Tensor:
    if surrogate is None or not callable(surrogate):
        raise ConfigError(f"transfer_{source} needs surrogate= a model to craft the adversarials on")
    if getattr(surrogate, "training", False):
        raise ConfigError("the surrogate model must be in eval mode (call surrogate.eval())")
    return ATTACKS.get(source)(surrogate, x, y, eps, generator=generator, **params).detach()


def _register(source: str, norm: str, source_fn):
    name = f"transfer_{source}"

    @ATTACKS.register(name, description=f"{source} crafted on surrogate= (e.g. an unregularized model), "
                                        "evaluated on the target (Attias et al.)",
                      info=AttackInfo(family="transfer", norm=norm, needs_gradients=False, needs_surrogate=True,
                                      max_strength=1.0 if norm == "Linf" else None))
    def attack(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, surrogate=None,
               generator: torch.Generator | None = None, **params) -> torch.Tensor:
        return transfer(model, x, y, eps, surrogate=surrogate, source=source, generator=generator, **params)

    attack.__name__ = name
    attack.params = ("surrogate", *source_fn.params)
    return attack


transfer_fgsm = _register("fgsm", "Linf", fgsm)
transfer_pgd_linf = _register("pgd_linf", "Linf", pgd_linf)
transfer_pgd_l2 = _register("pgd_l2", "L2", pgd_l2)
