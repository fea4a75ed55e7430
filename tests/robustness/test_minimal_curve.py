"""One minimal-perturbation run gives the same outcomes as attacking at each budget."""

from __future__ import annotations

import torch

from brainalign.registry import ATTACKS
from brainalign.robustness import minimal_curve


def test_minimal_curve_matches_per_budget_attacks(gray_model, digits_models):
    x, y = digits_models.test_batch(24)
    params = {"steps": 20, "search_steps": 3}
    eps = [0.0, 0.5, 1.0, 2.0]
    flags, summary = minimal_curve(gray_model, "cw_l2", x, y, eps, params=params, batch_size=10)
    for e, f in zip(eps, flags, strict=True):
        x_adv = ATTACKS.get("cw_l2")(gray_model, x, y, e, **params)  # deterministic: same search per batch
        with torch.no_grad():
            per_budget = gray_model(x_adv).argmax(1) == y
        # Batches of 10 versus 24 change nothing per example: C&W's state is per example.
        assert torch.equal(f, per_budget), e
    acc = [float(f.float().mean()) for f in flags]
    assert acc == sorted(acc, reverse=True) and acc[-1] < acc[0]
    med = summary["minimal_perturbation"]
    assert summary["distance_norm"] == "L2"
    assert med["Linf"]["median"] <= med["L2"]["median"]
    assert med["L2sq/D"]["median"] < med["L2"]["median"] ** 2
