"""The stored check behind the headline: does the rest of full AutoAttack break images the headline left intact?

``brainalign.headline`` uses APGD-CE + APGD-T (top-3 targets) as the stated equivalent of full AutoAttack
'standard' (APGD-CE, APGD-T on the top 9 targets, FAB-T, Square). AutoAttack runs each later attack only on
the images the earlier ones leave correct, so the equivalence holds on a run exactly when APGD-T on all 9
targets, FAB-T and Square break none of the images that survived the headline (Croce & Hein 2020 report that
FAB-T and Square rarely do). This check runs pyautoattack's APGD-T (every target, 100 steps) and FAB-T
(through ``run_autoattack``, version 'custom') and our registered ``square_linf`` (pyautoattack's Square,
5,000 queries) at the headline eps on a sample of the surviving images and records how many more each
breaks, in result.json under ``headline_check``.
"""

from __future__ import annotations

from typing import Any

import torch

from brainalign.attacks._pyautoattack import run_autoattack
from brainalign.registry import ATTACKS

SQUARE_QUERIES = 5000  # AutoAttack standard
APGD_T_TARGETS = 9  # AutoAttack standard (at most K - 1)


@torch.no_grad()
def _still_correct(model, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]
                      for i in range(0, len(y), batch_size)])


def headline_check(model, x: torch.Tensor, y: torch.Tensor, survived: torch.Tensor, eps: float, *,
                   n_sample: int, generator: torch.Generator, batch_size: int = 256,
                   square_queries: int = SQUARE_QUERIES, fab_steps: int | None = None) -> dict[str, Any]:
    """Run APGD-T on every target, FAB-T and Square on up to ``n_sample`` images (drawn by ``generator``) among
    those still correct under the headline attacks (``survived``: bool per image of ``x``), at Linf ``eps``.

    Returns {"eps", "n_survivors", "n_checked", "broken_by_apgd_t_all", "broken_by_fab_t", "broken_by_square",
    "broken_by_either" (by any of the three), "passed" (nothing more broken), "indices" (checked test-image
    positions), "square_queries", "fab_steps", "apgd_t_targets"}.
    """
    survivors = torch.nonzero(survived.bool(), as_tuple=False).flatten()
    order = torch.randperm(len(survivors), generator=generator)[:n_sample]
    idx = survivors[order].sort().values
    out: dict[str, Any] = {"eps": float(eps), "n_survivors": int(len(survivors)), "n_checked": int(len(idx)),
                           "indices": [int(i) for i in idx], "square_queries": int(square_queries),
                           "fab_steps": fab_steps, "apgd_t_targets": APGD_T_TARGETS,
                           "attacks": ["apgd-t (pyautoattack, every target)", "fab-t (pyautoattack)", "square_linf"]}
    names = ("apgd_t_all", "fab_t", "square")
    if len(idx) == 0:
        return {**out, **{f"broken_by_{n}": 0 for n in names}, "broken_by_either": 0, "passed": True}
    xs, ys = x[idx], y[idx]
    ok: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for i in range(0, len(ys), batch_size):
        xb, yb = xs[i : i + batch_size], ys[i : i + batch_size]
        advs = {"apgd_t_all": run_autoattack(model, xb, yb, eps, norm="Linf", version="custom", attacks=["apgd-t"],
                                             targets=APGD_T_TARGETS, generator=generator),
                "fab_t": run_autoattack(model, xb, yb, eps, norm="Linf", version="custom", attacks=["fab-t"],
                                        steps=fab_steps, generator=generator),
                "square": ATTACKS.get("square_linf")(model, xb, yb, eps, n_queries=square_queries,
                                                     generator=generator)}
        for name, adv in advs.items():
            # an adversarial outside the ball would not count: every attack projects, this guards the record
            if (adv - xb).abs().max() > eps + 1e-6:
                raise RuntimeError(f"{name} left the Linf ball of radius {eps}")
            ok[name].append(_still_correct(model, adv, yb, batch_size))
    still = {name: torch.cat(flags) for name, flags in ok.items()}
    either = int((~torch.stack(list(still.values()))).any(0).sum())
    return {**out, **{f"broken_by_{n}": int((~f).sum()) for n, f in still.items()},
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
