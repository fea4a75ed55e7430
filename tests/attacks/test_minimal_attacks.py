"""Minimal-perturbation attacks (C&W, Boundary, HopSkipJump): distances, budgets and agreement with PGD."""

from __future__ import annotations

import math

import torch

from brainalign.attacks import MinimalResult, minimal_attack
from brainalign.attacks.pgd import pgd_l2


def test_minimal_result_distances_and_budget():
    x = torch.zeros(3, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.3
    x_adv[1] = 0.5
    res = MinimalResult(x=x, x_adv=x_adv, success=torch.tensor([True, True, False]), norm="L2")
    assert torch.allclose(res.distances(), torch.tensor([0.3, 1.0, math.inf]))
    assert torch.allclose(res.distances("Linf"), torch.tensor([0.3, 0.5, math.inf]))
    assert torch.allclose(res.distances("L2sq/D"), torch.tensor([0.09 / 4, 0.25, math.inf]))
    within = res.at_budget(0.5)
    assert torch.equal(within[0], x_adv[0]) and torch.equal(within[1], x[1]) and torch.equal(within[2], x[2])


def test_cw_finds_perturbations_no_larger_than_pgd_needs(gray_model, digits_models):
    """Where PGD-L2 at radius r breaks an example, C&W's minimal L2 should mostly be <= r."""
    x, y = digits_models.test_batch(32)
    res = minimal_attack("cw_l2")(gray_model, x, y, steps=50, search_steps=4)
    dist = res.distances()
    with torch.no_grad():  # attacks enable gradients themselves
        assert (gray_model(res.x_adv[res.success]).argmax(1) != y[res.success]).all()
        clean_wrong = gray_model(x).argmax(1) != y
        broken = gray_model(pgd_l2(gray_model, x, y, 1.0, steps=20,
                                   generator=torch.Generator().manual_seed(0))).argmax(1) != y
    assert (dist[clean_wrong] == 0).all()
    assert (dist[broken] <= 1.0).float().mean() >= 0.8


def test_decision_based_attacks_return_real_adversarials(gray_model, digits_models):
    x, y = digits_models.test_batch(16)
    for name, params in [("boundary", {"steps": 100}), ("hsj_l2", {"steps": 2, "initial_gradient_evals": 20,
                                                                   "max_gradient_evals": 40})]:
        res = minimal_attack(name)(gray_model, x, y, generator=torch.Generator().manual_seed(0), **params)
        assert res.success.all(), name  # every digit has a misclassified starting point
        with torch.no_grad():
            assert (gray_model(res.x_adv).argmax(1) != y).all(), name
        assert torch.isfinite(res.distances()).all()
        assert res.distances().median() < 4.0, name  # far below the box diameter of 8
