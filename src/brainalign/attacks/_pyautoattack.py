"""Plumbing shared by the attacks that run through pyautoattack (AutoAttack, APGD, Square).

pyautoattack seeds torch's global RNG with its own ``seed``; we draw that seed from the caller's
generator and restore the global state afterwards (``global_rng_from``), so results are bit-identical
under the same generator and nothing leaks into the caller's random stream.
"""

from __future__ import annotations

import logging

import torch

from brainalign.attacks.base import global_rng_from
from brainalign.errors import ConfigError

logger = logging.getLogger("auto-attack")


def set_iterations(apgd, n_iter: int) -> None:
    """Change an APGD attack's iteration budget, with the checkpoints APGD derives from it."""
    apgd.n_iter = apgd.n_iter_orig = n_iter
    apgd.n_iter_2 = max(int(0.22 * n_iter), 1)
    apgd.n_iter_min = max(int(0.06 * n_iter), 1)
    apgd.size_decr = max(int(0.03 * n_iter), 1)


def run_autoattack(model, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str, version: str,
                   attacks: list[str] | None = None, steps: int | None = None, restarts: int | None = None,
                   n_queries: int | None = None, eot: int | None = None, targets: int | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Run pyautoattack's AutoAttack and return the adversarials (the clean image where none was found).

    ``steps``, ``restarts``, ``n_queries``, ``eot`` and ``targets`` override the version's budgets (APGD/FAB
    iterations, APGD restarts, Square queries, APGD EOT samples, APGD-T target classes: the top ``targets``
    other classes by logit, AutoAttack's 9 by default); leave them None for the published setting.
    """
    from pyautoattack import AutoAttack

    if eps == 0:
        return x.detach().clone()
    for name, value in (("steps", steps), ("restarts", restarts), ("n_queries", n_queries), ("eot", eot),
                        ("targets", targets)):
        if value is not None and value < 1:
            raise ConfigError(f"autoattack: {name} must be >= 1, got {value}")
    x, y = x.detach(), y.detach()
    with torch.no_grad():
        n_classes = model(x[:1]).shape[1]
    with global_rng_from(generator, x.device) as seed:
        aa = AutoAttack(model, attacks=attacks, device=x.device, eps=float(eps), norm=norm, seed=seed,
                        version=version)
        aa.verbose = False
        # The targeted attacks need K - 1 target classes at most (AutoAttack assumes K >= 10).
        if targets is not None:
            aa.apgd_targeted.n_target_classes = targets
        aa.apgd_targeted.n_target_classes = min(aa.apgd_targeted.n_target_classes, n_classes - 1)
        aa.fab.n_target_classes = min(aa.fab.n_target_classes, n_classes - 1)
        if steps is not None:
            set_iterations(aa.apgd, steps)
            set_iterations(aa.apgd_targeted, steps)
            aa.fab.n_iter = steps
        if restarts is not None:
            aa.apgd.n_restarts = aa.apgd_targeted.n_restarts = restarts
        if n_queries is not None:
            aa.square.n_queries = n_queries
        if eot is not None:
            aa.apgd.eot_iter = aa.apgd_targeted.eot_iter = eot
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=max(len(y), 1))
    return x_adv.detach()
