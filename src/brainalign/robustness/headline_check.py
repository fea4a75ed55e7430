"""The stored check behind the headline: do FAB-T and Square break images that APGD-CE + APGD-T left intact?

``brainalign.headline`` uses APGD-CE + APGD-T as the stated equivalent of full AutoAttack (APGD-CE, APGD-T,
FAB-T, Square). AutoAttack runs FAB-T and Square only on the images the APGD attacks leave correct, so the
equivalence holds on a run exactly when those two break none of them (Croce & Hein 2020 report they rarely
do). This check runs pyautoattack's FAB-T (through ``run_autoattack``, version 'custom') and our registered
``square_linf`` (pyautoattack's Square, 5,000 queries) at the headline eps on a sample of the surviving
images and records how many more each breaks, in result.json under ``headline_check``.
"""

from __future__ import annotations

from typing import Any

import torch

from brainalign.attacks._pyautoattack import run_autoattack
from brainalign.registry import ATTACKS

SQUARE_QUERIES = 5000  # AutoAttack standard


@torch.no_grad()
def _still_correct(model, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]
                      for i in range(0, len(y), batch_size)])


def headline_check(model, x: torch.Tensor, y: torch.Tensor, survived: torch.Tensor, eps: float, *,
                   n_sample: int, generator: torch.Generator, batch_size: int = 256,
                   square_queries: int = SQUARE_QUERIES, fab_steps: int | None = None) -> dict[str, Any]:
    """Run FAB-T and Square on up to ``n_sample`` images (drawn by ``generator``) among those still correct
    under the headline attacks (``survived``: bool per image of ``x``), at Linf ``eps``.

    Returns {"eps", "n_survivors", "n_checked", "broken_by_fab_t", "broken_by_square", "broken_by_either",
    "passed" (nothing more broken), "indices" (checked test-image positions), "square_queries", "fab_steps"}.
    """
    survivors = torch.nonzero(survived.bool(), as_tuple=False).flatten()
    order = torch.randperm(len(survivors), generator=generator)[:n_sample]
    idx = survivors[order].sort().values
    out: dict[str, Any] = {"eps": float(eps), "n_survivors": int(len(survivors)), "n_checked": int(len(idx)),
                           "indices": [int(i) for i in idx], "square_queries": int(square_queries),
                           "fab_steps": fab_steps, "attacks": ["fab-t (pyautoattack)", "square_linf"]}
    if len(idx) == 0:
        return {**out, "broken_by_fab_t": 0, "broken_by_square": 0, "broken_by_either": 0, "passed": True}
    xs, ys = x[idx], y[idx]
    fab_ok, sq_ok = [], []
    for i in range(0, len(ys), batch_size):
        xb, yb = xs[i : i + batch_size], ys[i : i + batch_size]
        x_fab = run_autoattack(model, xb, yb, eps, norm="Linf", version="custom", attacks=["fab-t"],
                               steps=fab_steps, generator=generator)
        x_sq = ATTACKS.get("square_linf")(model, xb, yb, eps, n_queries=square_queries, generator=generator)
        # an adversarial outside the ball would not count: both attacks project, this guards the record
        for name, adv in (("fab-t", x_fab), ("square", x_sq)):
            if (adv - xb).abs().max() > eps + 1e-6:
                raise RuntimeError(f"{name} left the Linf ball of radius {eps}")
        fab_ok.append(_still_correct(model, x_fab, yb, batch_size))
        sq_ok.append(_still_correct(model, x_sq, yb, batch_size))
    fab, sq = torch.cat(fab_ok), torch.cat(sq_ok)
    either = int((~fab | ~sq).sum())
    return {**out, "broken_by_fab_t": int((~fab).sum()), "broken_by_square": int((~sq).sum()),
            "broken_by_either": either, "passed": either == 0}


def check_run(run_dir, result: dict[str, Any], model, x: torch.Tensor, y: torch.Tensor, *, n_sample: int,
              seed: int, batch_size: int = 256) -> dict[str, Any]:
    """``headline_check`` for a run folder whose flags.safetensors holds the headline attacks' outcomes at the
    threat model's eps; {"computed": False, "reason"} when it does not."""
    from pathlib import Path

    from brainalign.analysis.runs import Run
    from brainalign.headline import headline_flags, threat_model
    from brainalign.train import generator

    survived = headline_flags(Run(Path(run_dir), result))
    eps = threat_model(str(result.get("data", ""))).eps
    if survived is None or len(survived) != len(y):
        return {"computed": False, "reason": f"no headline attack outcomes at eps {eps:g} for these test images: "
                                             f"add brainalign.headline.headline_attack_specs to eval.attacks"}
    out = headline_check(model, x, y, torch.from_numpy(survived), eps, n_sample=n_sample,
                         generator=generator(seed, "headline_check"), batch_size=batch_size)
    return {"computed": True, **out}
