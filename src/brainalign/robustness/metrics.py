"""Robustness metrics: accuracy per strength, area under the curve, median minimal perturbation,
robustness gain over a baseline (Guo et al. 2024) and paired tests on per-example outcomes (``mcnemar``: the
one McNemar test, ``brainalign.analysis.stats.mcnemar``, re-exported here beside the metrics it compares).

All functions return plain floats, lists and dicts (JSON-ready; an undefined value is None, never inf/NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from brainalign.analysis.stats import mcnemar as mcnemar  # re-exported: the one McNemar test
from brainalign.errors import ConfigError


@torch.no_grad()
def correct_flags(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Per-example outcome (B,) bool: True where the model still classifies the image correctly."""
    return torch.cat([model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]
                      for i in range(0, len(y), batch_size)]) if len(y) else torch.zeros(0, dtype=torch.bool)


def accuracy(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    return float(correct_flags(model, x, y, batch_size).float().mean()) if len(y) else math.nan


def _curve(eps: Sequence[float], acc: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    e, a = np.asarray(eps, dtype=float), np.asarray(acc, dtype=float)
    if e.shape != a.shape or e.ndim != 1 or len(e) == 0:
        raise ConfigError(f"a curve needs as many strengths as accuracies, got {len(e)} and {len(a)}")
    order = np.argsort(e, kind="stable")
    return e[order], a[order]


def auc(eps: Sequence[float], acc: Sequence[float]) -> float:
    """Area under accuracy-versus-strength (trapezoids), divided by the strength range: a mean accuracy."""
    e, a = _curve(eps, acc)
    span = e[-1] - e[0]
    return float(np.trapezoid(a, e) / span) if span > 0 else float(a.mean())


def accuracy_from_distances(distances: torch.Tensor, eps: Sequence[float]) -> list[float]:
    """Accuracy at each budget from minimal perturbations: an example survives eps if its distance > eps
    (inf where the attack found nothing, 0 where the clean image is already misclassified)."""
    d = distances.detach().cpu().double()
    return [float((d > e).double().mean()) for e in eps]


def median_minimal_perturbation(distances: torch.Tensor) -> dict[str, float | None]:
    """Median over examples of the minimal perturbation (Li et al. 2019; Attias et al. use ||d||^2 / D).

    Failed examples count as infinitely robust; where more than half failed the median is None (unknown,
    larger than every distance found) and ``found_fraction`` says why.
    """
    d = distances.detach().cpu().double()
    if d.numel() == 0:
        return {"median": None, "found_fraction": None, "n": 0}
    med = float(np.median(d.numpy()))
    found = torch.isfinite(d)
    return {"median": med if math.isfinite(med) else None, "found_fraction": float(found.double().mean()),
            "median_of_found": float(np.median(d[found].numpy())) if found.any() else None, "n": int(d.numel())}


def high_strengths(eps: Sequence[float], eps_min: float | None = None) -> list[float]:
    """The strengths a gain is averaged over: those >= eps_min, or by default the upper half of the non-zero
    grid (Guo et al. average over the high-epsilon range, where clean-accuracy differences no longer dominate)."""
    e = sorted({float(v) for v in eps})
    if eps_min is not None:
        chosen = [v for v in e if v >= eps_min]
    else:
        nonzero = [v for v in e if v > 0]
        chosen = nonzero[len(nonzero) // 2:]
    if not chosen:
        raise ConfigError(f"no strength >= {eps_min} in the grid {e}")
    return chosen


def robustness_gain(eps: Sequence[float], acc: Sequence[float], baseline_acc: Sequence[float], *,
                    eps_min: float | None = None) -> dict[str, float | list[float]]:
    """Mean accuracy difference to a baseline run over the high-strength range (Guo et al. 2024).

    Both curves must be on the same grid (same attack, same strengths); ``eps_min`` picks the range.
    """
    e, a = _curve(eps, acc)
    e0, a0 = _curve(eps, baseline_acc)
    chosen = high_strengths(e, eps_min)
    mask = np.isin(e, chosen)
    diff = a[mask] - a0[mask]
    return {"gain": float(diff.mean()), "eps": [float(v) for v in e[mask]], "per_eps": [float(v) for v in diff]}
