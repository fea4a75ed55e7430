"""AutoAttack (Croce & Hein, ICML 2020) through pyautoattack: a parameter-free ensemble.

'standard': APGD-CE, APGD-T (targeted DLR, 9 targets), FAB-T and Square (5,000 queries), each run on the
points the previous ones did not break; an example counts as robust only if all four fail.
'rand' (for stochastic models): APGD-CE and APGD-DLR with 20 EOT samples per gradient.
One entry per norm, so that the norm is a fact of the entry (``AttackInfo.norm``).
"""

from __future__ import annotations

import torch

from brainalign.attacks._pyautoattack import run_autoattack
from brainalign.attacks.base import AttackInfo
from brainalign.registry import ATTACKS


def _register(name: str, norm: str, version: str):
    stochastic = version == "rand"
    what = "'rand' (APGD-CE + APGD-DLR, EOT 20) for stochastic models" if stochastic else \
        "'standard' (APGD-CE, APGD-T, FAB-T, Square)"

    @ATTACKS.register(name, description=f"AutoAttack {what}, {norm} (Croce & Hein 2020, pyautoattack)",
                      info=AttackInfo(family="whitebox", norm=norm, max_strength=1.0 if norm == "Linf" else None,
                                      stochastic_ok=stochastic))
    def attack(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int | None = None,
               n_queries: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``steps`` (APGD/FAB iterations, default 100) and ``n_queries`` (Square, default 5000) shrink
        the published budget for smoke tests; leave them unset for a reportable number."""
        return run_autoattack(model, x, y, eps, norm=norm, version=version, steps=steps, n_queries=n_queries,
                              generator=generator)

    attack.__name__ = name
    return attack


autoattack_linf = _register("autoattack_linf", "Linf", "standard")
autoattack_l2 = _register("autoattack_l2", "L2", "standard")
autoattack_rand_linf = _register("autoattack_rand_linf", "Linf", "rand")
autoattack_rand_l2 = _register("autoattack_rand_l2", "L2", "rand")
