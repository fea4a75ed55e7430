"""The headline attack over a strength grid is evaluated cumulatively: an image broken at a smaller radius stays
broken (its adversarial lies in every larger ball), and only survivors are attacked at the next radius."""

from __future__ import annotations

import torch

from brainalign.config import AttackSpec
from brainalign.evaluate import attack_flags, run_attack
from brainalign.registry import ATTACKS
from brainalign.robustness import run_selfchecks


def test_cumulative_curve_is_the_worst_case_over_the_grid(digits_models, gray_model, monkeypatch):
    x, y = digits_models.test_batch(80)
    spec = AttackSpec(name="apgd_ce_t_linf", eps=[0.0, 0.05, 0.1, 0.2], params={"steps": 10, "targets": 3})
    assert ATTACKS.info(spec.name).cumulative
    attacked = []
    original = attack_flags

    def spy(model, xs, ys, spec_, strength, seed, batch_size, only=None):
        if only is None:
            attacked.append((strength, len(ys)))
        return original(model, xs, ys, spec_, strength, seed, batch_size, only=only)

    monkeypatch.setattr("brainalign.evaluate.attack_flags", spy)
    flags: dict[str, torch.Tensor] = {}
    entry = run_attack(gray_model, x, y, spec, seed=0, batch_size=256, flags_out=flags)
    per_eps = [flags[f"{spec.key}@{e:g}"].bool() for e in spec.eps]
    assert entry["cumulative"] is True
    for smaller, larger in zip(per_eps, per_eps[1:], strict=False):
        assert not (larger & ~smaller).any()  # never robust again once broken
    # each radius attacked exactly the images that survived the radius below (the clean point: every image)
    assert attacked == [(0.0, 80)] + [(e, int(f.sum())) for e, f in zip(spec.eps[1:], per_eps, strict=False)]
    # at the first radius the cumulative outcome is the attack's own outcome on the clean-correct images
    alone = original(gray_model, x, y, spec, 0.05, 0, 256, only=per_eps[0])
    assert torch.equal(alone, per_eps[1])
    assert entry["accuracy"] == [float(f.float().mean()) for f in per_eps]


def test_monotone_check_does_not_count_cumulative_curves(digits_models, gray_model):
    x, y = digits_models.test_batch(20)
    results = {"a": {"attack": "apgd_ce_t_linf", "eps": [0.0, 0.1], "accuracy": [0.9, 0.5], "cumulative": True,
                     "n_examples": 20}}
    out = run_selfchecks(gray_model, x, y, results, num_classes=10, n_check=20)
    check = out["checks"]["monotone_in_strength"]
    assert check["skipped"] and "0 curves; 1 cumulative" in check["reason"]
    results["b"] = {"attack": "pgd_linf", "eps": [0.0, 0.1, 0.2], "accuracy": [0.9, 0.2, 0.6], "n_examples": 20}
    check = run_selfchecks(gray_model, x, y, results, num_classes=10, n_check=20)["checks"]["monotone_in_strength"]
    assert not check["passed"] and "b (eps 0.2: 0.600 > 0.200)" in check["reason"] and "a (" not in check["reason"]
