"""Every registered attack: stays in its threat model and in [0, 1], weakens a trained model, is bit-identical
under the same generator seed and leaves the global random state alone (timm-style, parametrized over the
registry: a new attack without an entry in CASES fails ``test_every_attack_has_a_case``)."""

from __future__ import annotations

import inspect
import math
import random
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brainalign.attacks import AttackInfo, caa, recolor
from brainalign.attacks.corruptions import CORRUPTIONS
from brainalign.registry import ATTACKS

SURROGATE = object()  # replaced by the surrogate model


@dataclass(frozen=True)
class Case:
    strength: float
    params: dict = field(default_factory=dict)
    rgb: bool = False
    check: str = "ball"  # how the threat model is verified: ball, semantic, recolor, caa, l0, gaussian, corruption


SEMANTIC_IDENTITY = {"hue": 0.0, "saturation": 1.0, "brightness": 0.0, "contrast": 1.0, "rotation": 0.0}

# Small budgets: a few steps or queries each, enough to show the attack works on the digits CNN.
CASES: dict[str, Case] = {
    "fgsm": Case(0.1),
    "pgd_linf": Case(0.1, {"steps": 5}),
    "pgd_l2": Case(1.0, {"steps": 5, "restarts": 2}),
    "cw_l2": Case(1.0, {"steps": 30, "search_steps": 3}),
    "autoattack_linf": Case(0.1, {"steps": 5, "n_queries": 50}),
    "autoattack_l2": Case(0.75, {"steps": 5, "n_queries": 50}),
    "autoattack_rand_linf": Case(0.1, {"steps": 3}),
    "autoattack_rand_l2": Case(0.75, {"steps": 3}),
    "apgd_ce_linf": Case(0.1, {"steps": 10}),
    "apgd_ce_l2": Case(0.75, {"steps": 10}),
    "apgd_t_linf": Case(0.1, {"steps": 5}),
    "apgd_t_l2": Case(0.75, {"steps": 5}),
    "apgd_ce_t_linf": Case(0.1, {"steps": 5}),
    "apgd_ce_t_l2": Case(0.75, {"steps": 5}),
    "square_linf": Case(0.1, {"n_queries": 100}),
    "square_l2": Case(1.0, {"n_queries": 100}),
    "boundary": Case(2.5, {"steps": 50}),
    "hsj_l2": Case(1.5, {"steps": 3, "initial_gradient_evals": 20, "max_gradient_evals": 50}),
    "hsj_linf": Case(0.15, {"steps": 3, "initial_gradient_evals": 20, "max_gradient_evals": 50}),
    "transfer_fgsm": Case(0.1, {"surrogate": SURROGATE}),
    "transfer_pgd_linf": Case(0.1, {"surrogate": SURROGATE, "steps": 5}),
    "transfer_pgd_l2": Case(1.0, {"surrogate": SURROGATE, "steps": 5}),
    "noise_gaussian": Case(0.3, check="gaussian"),
    "noise_uniform": Case(0.5),
    "noise_salt_pepper": Case(0.2, check="l0"),
    "hue": Case(math.pi, rgb=True, check="semantic"),
    "saturation": Case(0.9, rgb=True, check="semantic"),
    "brightness": Case(0.5, check="semantic"),
    "contrast": Case(0.5, check="semantic"),
    "rotation": Case(30.0, check="semantic"),
    "recolor": Case(0.2, {"steps": 10}, rgb=True, check="recolor"),
    "caa": Case(1.0, {"iters": 2, "inner_steps": 5, "linf_steps": 5}, check="caa"),
    # pixelate at severity 5 is the identity on 8x8 images (see test_corruptions.py): severity 3 here.
    **{f"corruption_{c}": Case(3 if c == "pixelate" else 5, check="corruption") for c in CORRUPTIONS},
}
N = 32
_RUNS: dict[str, dict] = {}


def _global_rng_state():
    return torch.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate()


def _setup(name, request):
    case = CASES[name]
    model = request.getfixturevalue("rgb_model" if case.rgb else "gray_model")
    helpers = request.getfixturevalue("digits_models")
    x, y = helpers.test_batch(N, rgb=case.rgb)
    params = {k: (request.getfixturevalue("surrogate_model") if v is SURROGATE else v) for k, v in case.params.items()}
    return case, model, x, y, params


def _run(name, request) -> dict:
    """Run each attack once per session (the tests below share the outcome)."""
    if name not in _RUNS:
        case, model, x, y, params = _setup(name, request)
        before = _global_rng_state()
        x_adv = ATTACKS.get(name)(model, x, y, case.strength, generator=torch.Generator().manual_seed(0), **params)
        after = _global_rng_state()
        _RUNS[name] = {"x": x, "y": y, "x_adv": x_adv, "model": model, "params": params, "case": case,
                       "rng_before": before, "rng_after": after}
    return _RUNS[name]


def test_every_attack_has_a_case():
    assert set(CASES) == set(ATTACKS.names())


@pytest.mark.parametrize("name", ATTACKS.names())
def test_registry_entry_is_complete(name):
    entry = ATTACKS.entry(name)
    assert isinstance(entry.info, AttackInfo)
    assert entry.description
    sig = inspect.signature(entry.obj)
    assert list(sig.parameters)[:4] == ["model", "x", "y", "eps"]
    assert sig.parameters["generator"].kind is inspect.Parameter.KEYWORD_ONLY
    if entry.info.minimal_perturbation:
        assert callable(entry.obj.minimal)
    if entry.info.norm == "Linf":
        assert entry.info.max_strength == 1.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_is_an_image_batch_in_unit_box(name, request):
    run = _run(name, request)
    x, x_adv = run["x"], run["x_adv"]
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert not x_adv.requires_grad
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_stays_in_threat_model(name, request):
    run = _run(name, request)
    x, y, x_adv, case, model = run["x"], run["y"], run["x_adv"], run["case"], run["model"]
    info = ATTACKS.info(name)
    eps = case.strength
    d = (x_adv - x).flatten(1)
    again = torch.Generator().manual_seed(0)
    if case.check == "ball":
        if info.norm == "Linf":
            assert d.abs().amax(1).max() <= eps + 1e-6
        else:
            assert info.norm == "L2"
            assert d.norm(dim=1).max() <= eps + 1e-5
        assert (d != 0).any()
    elif case.check == "semantic":
        module = __import__(f"brainalign.attacks.{name}", fromlist=["x"])
        x_again, theta = getattr(module, f"{name}_search")(model, x, y, eps, generator=again)
        assert torch.equal(x_again, x_adv)
        assert (theta - SEMANTIC_IDENTITY[name]).abs().max() <= eps + 1e-5
        transform = {"hue": "adjust_hue", "saturation": "adjust_saturation", "brightness": "adjust_brightness",
                     "contrast": "adjust_contrast", "rotation": "rotate"}[name]
        from brainalign.attacks import _color

        torch.testing.assert_close(getattr(_color, transform)(x, theta), x_adv, atol=1e-6, rtol=0)
    elif case.check == "recolor":
        x_again, delta = recolor.recolor_search(model, x, y, eps, generator=again, **case.params)
        assert torch.equal(x_again, x_adv)
        assert delta.abs().max() <= eps + 1e-6
        torch.testing.assert_close(recolor.apply_color_offsets(x, delta), x_adv, atol=1e-6, rtol=0)
    elif case.check == "caa":
        res = caa.caa_search(model, x, y, eps, generator=again, **case.params)
        assert torch.equal(res.x_adv, x_adv)
        assert res.components == ("rotation", "brightness", "contrast", "linf")  # grayscale: no hue/saturation
        for comp, theta in res.params.items():
            _, half, identity, _ = caa.SEMANTIC[comp]
            assert (theta - identity).abs().max() <= eps * half + 1e-5, comp
        assert res.delta.abs().max() <= eps * 8 / 255 + 1e-6
        assert sorted(res.order[0].tolist()) == [0, 1, 2, 3]
        torch.testing.assert_close(caa.compose(x, res.components, res.params, res.delta, res.order), x_adv,
                                   atol=1e-5, rtol=0)
    elif case.check == "l0":
        changed = (x_adv != x).any(1)  # (B, H, W): whole pixels change
        new = x_adv.permute(0, 2, 3, 1)[changed]  # (n_changed, C)
        assert ((new == 0) | (new == 1)).all()
        # Every pixel is hit with probability eps (changing it unless it already had that value): binomial bound.
        n = changed.numel()
        assert changed.sum() <= n * eps + 4 * math.sqrt(n * eps * (1 - eps))
        assert changed.sum() >= 0.5 * n * eps
    elif case.check == "gaussian":
        inside = (x_adv > 0) & (x_adv < 1)  # clipping only shrinks the noise
        std = (x_adv - x)[inside].std()
        assert 0.7 * eps <= std <= 1.05 * eps
    elif case.check == "corruption":
        assert (x_adv - x).abs().mean() > 0.005  # the corruption did something to the images
    else:
        raise AssertionError(case.check)


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n].check != "corruption"))
def test_weakens_a_trained_model(name, request):
    """Higher mean cross-entropy or lower accuracy than on the clean images."""
    run = _run(name, request)
    model, x, y, x_adv = run["model"], run["x"], run["y"], run["x_adv"]
    with torch.no_grad():
        clean, adv = model(x), model(x_adv)
    loss_up = F.cross_entropy(adv, y) > F.cross_entropy(clean, y)
    acc_down = (adv.argmax(1) == y).float().mean() < (clean.argmax(1) == y).float().mean()
    assert loss_up or acc_down


def test_corruptions_weaken_the_model_on_average(request):
    """Not every corruption hurts 8x8 digits (JPEG of replicated pixels barely does), but together they do."""
    model = request.getfixturevalue("gray_model")
    x, y = request.getfixturevalue("digits_models").test_batch(N)
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y)
        losses = [F.cross_entropy(model(_run(f"corruption_{c}", request)["x_adv"]), y) for c in CORRUPTIONS]
    assert torch.stack(losses).mean() > 2 * clean
    assert sum(bool(v > clean) for v in losses) >= 12


@pytest.mark.parametrize("name", sorted(CASES))
def test_bit_identical_under_the_same_seed(name, request):
    run = _run(name, request)
    x_again = ATTACKS.get(name)(run["model"], run["x"], run["y"], run["case"].strength,
                                generator=torch.Generator().manual_seed(0), **run["params"])
    assert torch.equal(x_again, run["x_adv"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_leaves_global_random_state_alone(name, request):
    run = _run(name, request)
    (t0, n0, p0), (t1, n1, p1) = run["rng_before"], run["rng_after"]
    assert torch.equal(t0, t1)
    assert np.array_equal(n0, n1)
    assert p0 == p1
