"""Accuracy curves from minimal-perturbation attacks (C&W, Boundary, HopSkipJump) in one run.

A minimal-perturbation attack finds, per example, the smallest adversarial it can; the accuracy at every
budget of a grid follows from those distances (an example survives eps if its distance is > eps), so the
attack runs once instead of once per budget. The medians of the distances are the numbers Li et al. 2019
(median L2 and Linf) and Attias et al. (median ||d||^2 / D) report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from brainalign.attacks.base import minimal_attack
from brainalign.robustness.metrics import median_minimal_perturbation

DISTANCES = ("L2", "Linf", "L2sq/D")


def minimal_curve(model, name: str, x: torch.Tensor, y: torch.Tensor, eps: Sequence[float], *,
                  params: dict[str, Any] | None = None, generator: torch.Generator | None = None,
                  batch_size: int = 256) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """Per-budget outcomes (one bool tensor (N,) per eps, True = still correct) and the distance summary.

    The summary holds, for each distance in ``DISTANCES``, ``median_minimal_perturbation``'s dict
    (median, found_fraction, median_of_found, n) under ``"minimal_perturbation"``; budgets are in the
    attack's own norm (``AttackInfo.norm``).
    """
    minimal = minimal_attack(name)
    results = [minimal(model, x[i:i + batch_size], y[i:i + batch_size], generator=generator, **(params or {}))
               for i in range(0, len(y), batch_size)]
    norm = results[0].norm if results else "L2"
    dist = {d: torch.cat([r.distances(d) for r in results]) if results else torch.zeros(0) for d in DISTANCES}
    flags = [dist[norm] > e for e in eps]
    return flags, {"minimal_perturbation": {d: median_minimal_perturbation(v) for d, v in dist.items()},
                   "distance_norm": norm}
