"""The self-checks flag a gradient-masked model and a stochastic one evaluated without EOT, and pass on an
ordinary model; each check also fails on synthetic results that break exactly its rule."""

from __future__ import annotations

import json

import pytest
import torch

from brainalign.registry import ATTACKS
from brainalign.robustness import CHECKS, run_selfchecks

N = 96
FAST = {"n_check": N, "steps": 10, "square_queries": 200}


def _curve(model, name, eps, x, y, **params):
    acc = []
    for e in eps:
        x_adv = ATTACKS.get(name)(model, x, y, e, generator=torch.Generator().manual_seed(0), **params)
        with torch.no_grad():
            acc.append(float((model(x_adv).argmax(1) == y).float().mean()))
    return {"attack": name, "eps": eps, "accuracy": acc, "params": params, "n_examples": len(y)}


def _suite(model, x, y):
    return {"pgd_linf": _curve(model, "pgd_linf", [0.0, 0.05, 0.1, 0.2], x, y, steps=10),
            "square_linf": _curve(model, "square_linf", [0.1], x, y, n_queries=200),
            "noise_gaussian": _curve(model, "noise_gaussian", [0.0, 0.2, 0.4], x, y)}


@pytest.fixture(scope="module")
def batch(digits_models):
    return digits_models.test_batch(N)


@pytest.fixture(scope="module")
def ordinary(gray_model, batch):
    x, y = batch
    return run_selfchecks(gray_model, x, y, _suite(gray_model, x, y), **FAST)


@pytest.fixture(scope="module")
def masked(gray_model, digits_models, batch):
    x, y = batch
    model = torch.nn.Sequential(digits_models.Quantize(5), gray_model).eval()  # round(): zero gradients
    return run_selfchecks(model, x, y, _suite(model, x, y), **FAST)


def test_ordinary_model_passes_every_check(ordinary):
    assert set(ordinary["checks"]) == set(CHECKS)
    failed = {k: c["reason"] for k, c in ordinary["checks"].items() if not c["passed"]}
    assert failed == {}
    assert ordinary["reliable"] is True and ordinary["reasons"] == []
    assert ordinary["checks"]["reaches_chance"]["value"]["accuracy"] == 0.0


def test_gradient_masked_model_is_flagged(masked):
    # The quantiser keeps the model accurate (its clean accuracy is high): only its gradients are gone.
    assert masked["settings"]["clean_accuracy"] > 0.8
    checks = masked["checks"]
    assert masked["reliable"] is False
    assert not checks["zero_gradients"]["passed"] and checks["zero_gradients"]["value"] == 1.0
    assert not checks["reaches_chance"]["passed"]
    assert not checks["blackbox_not_stronger"]["passed"]
    assert any(r.startswith("zero_gradients:") for r in masked["reasons"])
    assert all("\n" not in r for r in masked["reasons"])


def test_result_is_plain_json(masked):
    again = json.loads(json.dumps(masked, allow_nan=False))
    assert again["checks"]["zero_gradients"]["name"] == "zero_gradients"
    assert isinstance(again["checks"]["zero_gradients"]["passed"], bool)


def test_stochastic_model_needs_eot(gray_model, digits_models, batch):
    x, y = batch[0][:32], batch[1][:32]
    noisy = digits_models.NoisyLogits(gray_model, scale=1.0).eval()
    small = {"n_check": 32, "steps": 3, "square_queries": 0, "eot": 2}
    plain = {"pgd_linf": {"attack": "pgd_linf", "eps": [0.0, 0.1], "accuracy": [0.9, 0.5], "params": {"steps": 10}}}
    out = run_selfchecks(noisy, x, y, plain, **small)
    assert out["checks"]["stochastic_model"]["value"]["stochastic"] is True
    assert not out["checks"]["stochastic_model"]["passed"]
    with_eot = {**plain, "pgd_eot": {**plain["pgd_linf"], "params": {"steps": 10, "eot": 8}}}
    assert run_selfchecks(noisy, x, y, with_eot, **small)["checks"]["stochastic_model"]["passed"]
    deterministic = run_selfchecks(gray_model, x, y, plain, **small)["checks"]["stochastic_model"]
    assert deterministic["passed"] and deterministic["value"]["stochastic"] is False


def test_rising_curve_and_strong_blackbox_results_are_flagged(gray_model, batch):
    x, y = batch[0][:32], batch[1][:32]
    small = {"n_check": 32, "steps": 3, "square_queries": 0}
    results = {
        "pgd_linf": {"attack": "pgd_linf", "eps": [0.0, 0.05, 0.1], "accuracy": [0.95, 0.4, 0.6], "n_examples": 500},
        "square_linf": {"attack": "square_linf", "eps": [0.05], "accuracy": [0.2], "n_examples": 500},
        "noise": {"attack": "noise_gaussian", "eps": [0.0, 0.1, 0.2], "accuracy": [0.95, 0.90, 0.91],
                  "n_examples": 500},
    }
    checks = run_selfchecks(gray_model, x, y, results, **small)["checks"]
    rises = checks["monotone_in_strength"]["value"]
    assert [r["key"] for r in rises] == ["pgd_linf"]  # the noise wiggle is within sampling error
    violations = checks["blackbox_not_stronger"]["value"]["violations"]
    assert [(v["key"], v["eps"]) for v in violations] == [("square_linf", 0.05)]
    skipped = run_selfchecks(gray_model, x, y, {}, **small)["checks"]["blackbox_not_stronger"]
    assert skipped["passed"] and skipped["skipped"]
