"""Square Attack (Andriushchenko et al., ECCV 2020): score-based black-box random search, through pyautoattack.

Each query proposes a random square-shaped update at a vertex of the Linf ball (or a localized
L2 update), keeps it if the margin loss  z_y - max_{j != y} z_j  decreases; the square's side shrinks on
a fixed schedule of the query count (p_init = 0.8 as in AutoAttack). Only logits are read, no gradients,
so it is blind to gradient masking: Square stronger than PGD is a red flag (see the self-checks).
"""

from __future__ import annotations

import torch

from brainalign.attacks.base import AttackInfo, global_rng_from
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS


def square(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str, n_queries: int = 5000,
           p_init: float = 0.8, restarts: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    from pyautoattack.square import SquareAttack

    if n_queries < 1 or restarts < 1 or not 0 < p_init <= 1:
        raise ConfigError("square needs n_queries >= 1, restarts >= 1 and p_init in (0, 1]")
    if eps == 0:
        return x.detach().clone()
    with global_rng_from(generator, x.device) as seed, torch.no_grad():
        attack = SquareAttack(model, norm=norm, n_queries=n_queries, eps=float(eps), p_init=p_init,
                              n_restarts=restarts, seed=seed, verbose=False, loss="margin", resc_schedule=False,
                              device=x.device)
        return attack.perturb(x.detach().clone(), y.detach().clone()).detach()


@ATTACKS.register("square_linf", description="Square Attack (Andriushchenko et al. 2020), Linf, score-based",
                  info=AttackInfo(family="blackbox", norm="Linf", max_strength=1.0, needs_gradients=False))
def square_linf(model, x, y, eps, *, n_queries: int = 5000, p_init: float = 0.8, restarts: int = 1,
                generator: torch.Generator | None = None) -> torch.Tensor:
    return square(model, x, y, eps, norm="Linf", n_queries=n_queries, p_init=p_init, restarts=restarts,
                  generator=generator)


@ATTACKS.register("square_l2", description="Square Attack (Andriushchenko et al. 2020), L2, score-based",
                  info=AttackInfo(family="blackbox", norm="L2", needs_gradients=False))
def square_l2(model, x, y, eps, *, n_queries: int = 5000, p_init: float = 0.8, restarts: int = 1,
              generator: torch.Generator | None = None) -> torch.Tensor:
    return square(model, x, y, eps, norm="L2", n_queries=n_queries, p_init=p_init, restarts=restarts,
                  generator=generator)
