"""FAB-T and Square on the images the headline attacks leave intact: counts that mean what they say."""

from __future__ import annotations

import pytest
import torch

from brainalign.headline import headline_attack_specs
from brainalign.io import read_json
from brainalign.robustness.headline_check import headline_check


def _correct(model, x, y):
    with torch.no_grad():
        return model(x).argmax(1) == y


def test_a_large_ball_is_broken_and_a_tiny_one_is_not(gray_model, digits_models):
    x, y = digits_models.digits()[2][:40], digits_models.digits()[3][:40]
    survived = _correct(gray_model, x, y)
    big = headline_check(gray_model, x, y, survived, 0.5, n_sample=12, generator=torch.Generator().manual_seed(0),
                         square_queries=300, fab_steps=20)
    assert big["n_checked"] == 12 and big["n_survivors"] == int(survived.sum())
    assert big["broken_by_either"] >= 10 and not big["passed"]  # Linf 0.5 on 8x8 digits: nearly all break
    parts = [big["broken_by_apgd_t_all"], big["broken_by_fab_t"], big["broken_by_square"]]
    assert max(parts) <= big["broken_by_either"] <= sum(parts) and big["apgd_t_targets"] == 9
    tiny = headline_check(gray_model, x, y, survived, 1e-4, n_sample=12, generator=torch.Generator().manual_seed(0),
                          square_queries=300, fab_steps=20)
    assert tiny["broken_by_either"] == 0 and tiny["passed"] and tiny["indices"] == big["indices"]


def test_evaluation_stores_the_check_in_result_json(tiny_config):
    from brainalign.train import train

    config = tiny_config(eval={"n_examples": 30, "headline_check": 8, "selfcheck_examples": 10,
                               "attacks": headline_attack_specs("digits", steps=5)})
    run = train(config, progress=False)
    check = read_json(run / "result.json")["headline_check"]
    assert check["computed"] is True and check["eps"] == pytest.approx(0.1)
    assert check["n_checked"] == min(8, check["n_survivors"])
    assert 0 <= check["broken_by_either"] <= check["n_checked"]
    assert check["passed"] is (check["broken_by_either"] == 0)


def test_without_headline_attacks_the_check_says_why(tiny_config):
    from brainalign.train import train

    run = train(tiny_config(eval={"n_examples": 30, "headline_check": 5, "selfcheck_examples": 10,
                                  "attacks": [{"name": "fgsm", "eps": [0.0, 0.1]}]}), progress=False)
    check = read_json(run / "result.json")["headline_check"]
    assert check["computed"] is False and "headline_attack_specs" in check["reason"]
