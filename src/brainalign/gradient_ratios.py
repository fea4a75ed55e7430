"""How strongly each regularizer term pulls on the model, relative to the classification loss.

ratio_r = || d(weight_r * R_r) / d theta || / || d CE / d theta ||, theta = the model's parameters (the
parameters every term shares; a regularizer's own readout weights are left out), CE = the classification
loss as the optimiser sees it (after any uncertainty or convex reweighting). A ratio above 1 means the term
moves the model more than the task does; a ratio of 0.05 means it barely acts.

Measured with ``torch.autograd.grad`` on the first step of each epoch and every ``EVERY``-th step after it,
never every step, and without touching ``.grad``, so the training trajectory (and resume bit-identity) is
the same as without it. Under gradient accumulation (``train.accumulate_steps``) each micro-batch's gradients
(weighted as the step weights its loss) are summed over the step before the norms are taken, so a ratio is
the optimiser step's, not one micro-batch's. ``metrics.csv`` gets one column per term (``grad_ratio_reg<i>``,
the mean over the measured steps of the epoch); ``result.json`` gets ``gradient_ratios`` (per term: median,
median of the first quarter of the epochs, max, the share of epochs above 1) and a warning when a term
dominates (ratio > 1 in more than half of the epochs).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

EVERY = 8  # measure on steps 0, 8, 16, ... of each epoch
PREFIX = "grad_ratio_"
COUNT = "grad_ratio_n"  # how many steps of the epoch were measured (summed by the epoch loop)
DOMINANT = 1.0
MOST = 0.5  # "most of the run": more than half of the epochs

log = logging.getLogger("brainalign.train")


def measured(step_in_epoch: int) -> bool:
    """Whether the ratios are measured on this step of the epoch."""
    return step_in_epoch % EVERY == 0


def _flat(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(torch.zeros_like(p) if g is None else g.detach()).reshape(-1).double()
                      for g, p in zip(grads, params, strict=True)])


def _full_batch(vec: torch.Tensor, n_local: int | None) -> torch.Tensor:
    """Under torch.distributed, the whole batch's gradient: the shards' gradients weighted by their share of
    the batch and summed over ranks (as the distributed optimiser step averages them); as is otherwise."""
    import torch.distributed as dist

    if n_local is None or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return vec
    total = torch.tensor([float(n_local)], dtype=torch.float64)
    dist.all_reduce(total)
    vec = vec * (n_local / float(total))
    dist.all_reduce(vec)
    return vec


def gradients(losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each loss's gradient at ``params`` as one flat float64 vector (zeros for a loss without a graph; graphs
    kept). Under gradient accumulation the training step sums these over its micro-batches (each loss already
    weighted by its micro-batch's share), which gives the whole step's gradients."""
    params = [p for p in params if p.requires_grad]
    out = []
    for loss in losses:
        if not loss.requires_grad:
            out.append(torch.zeros(sum(p.numel() for p in params), dtype=torch.float64))
            continue
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        out.append(_flat(grads, params))
    return out


def ratios_of(classification: torch.Tensor, terms: Sequence[torch.Tensor], n_local: int | None = None) -> list[float]:
    """||each term's gradient|| / ||the classification loss's gradient||, from flat gradients (:func:`gradients`).

    ``n_local``: this process's examples in the step, under torch.distributed (every rank must call this at the
    same steps), so that the ratios are the whole batch's, the same as in one process.
    """
    ce = float(_full_batch(classification, n_local).norm())
    return [(float(_full_batch(term, n_local).norm()) / ce if ce > 0 else float("nan")) for term in terms]


def ratios(classification: torch.Tensor, terms: Sequence[torch.Tensor],
           params: Sequence[torch.Tensor], n_local: int | None = None) -> list[float]:
    """||grad of each weighted term|| / ||grad of the classification loss|| at ``params`` (graphs kept)."""
    grads = gradients([classification, *terms], params)
    return ratios_of(grads[0], grads[1:], n_local)


def step_logs(values: Sequence[float]) -> dict[str, float]:
    """The log entries of one measured step (summed over the epoch by the training loop)."""
    return {COUNT: 1.0, **{f"{PREFIX}reg{i}": v for i, v in enumerate(values)}}


def epoch_means(sums: dict[str, float]) -> dict[str, float]:
    """Per term, the mean ratio over the epoch's measured steps (from the loop's sums)."""
    n = sums.get(COUNT, 0.0)
    return {k: (v / n if n else float("nan")) for k, v in sums.items() if k.startswith(PREFIX) and k != COUNT}


def summarize(rows: Sequence[dict[str, float]], names: Sequence[str]) -> dict[str, Any]:
    """``gradient_ratios`` and ``gradient_warnings`` for result.json from the metrics rows; logs a warning for
    each term that dominates cross-entropy for most of the run."""
    terms: dict[str, Any] = {}
    warnings = []
    for i, name in enumerate(names):
        values = np.array([r.get(f"{PREFIX}reg{i}", float("nan")) for r in rows], dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        quarter = values[: max(1, math.ceil(values.size / 4))]
        share = float((values > DOMINANT).mean())
        dominates = share > MOST
        terms[f"reg{i}"] = {"name": name, "median": float(np.median(values)),
                            "median_first_quarter": float(np.median(quarter)), "max": float(values.max()),
                            "share_above_1": share, "dominates": bool(dominates), "n_epochs": int(values.size)}
        if dominates:
            text = (f"regularizer {i} ({name}) dominates cross-entropy: its weighted gradient is larger than "
                    f"cross-entropy's in {share:.0%} of the epochs (median ratio {np.median(values):.2f}); "
                    f"lower its weight")
            warnings.append(text)
            log.warning(text)
    return {"gradient_ratios": terms, "gradient_warnings": warnings}
