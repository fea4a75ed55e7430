"""The composite attack's orders and components."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from brainalign.attacks import caa
from brainalign.errors import ConfigError


def test_fixed_order_is_the_given_order(gray_model, digits_models):
    x, y = digits_models.test_batch(16)
    comps = ["contrast", "rotation", "linf"]
    res = caa.caa_search(gray_model, x, y, 1.0, components=comps, order="fixed", inner_steps=3, linf_steps=3,
                         generator=torch.Generator().manual_seed(0))
    assert res.components == tuple(comps)
    assert (res.order == torch.tensor([0, 1, 2])).all()


def test_random_and_scheduled_orders_are_permutations_that_change(gray_model, digits_models):
    x, y = digits_models.test_batch(16)
    for order in ("random", "scheduled"):
        res = caa.caa_search(gray_model, x, y, 1.0, order=order, iters=3, inner_steps=2, linf_steps=2,
                             early_stop=False, generator=torch.Generator().manual_seed(1))
        perms = {tuple(r) for r in res.order.tolist()}
        assert all(sorted(p) == [0, 1, 2, 3] for p in perms)
    # Scheduling moves off the current order every pass: two passes in a row never repeat it.
    seq, dsm = caa._schedule(gray_model, x, y, ("rotation", "brightness", "contrast", "linf"),
                             {"rotation": torch.zeros(16), "brightness": torch.zeros(16), "contrast": torch.ones(16)},
                             torch.zeros_like(x), [0, 1, 2, 3], None, torch.Generator().manual_seed(2))
    assert sorted(seq) == [0, 1, 2, 3]
    torch.testing.assert_close(dsm.sum(0), torch.ones(4), atol=1e-3, rtol=0)
    torch.testing.assert_close(dsm.sum(1), torch.ones(4), atol=1e-3, rtol=0)


def test_strength_zero_is_the_identity(gray_model, digits_models):
    x, y = digits_models.test_batch(8)
    out = caa.caa(gray_model, x, y, 0.0, order="fixed", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_full_composite_is_stronger_than_its_semantic_part(gray_model, digits_models):
    x, y = digits_models.test_batch(32)
    g = torch.Generator
    semantic = caa.caa(gray_model, x, y, 1.0, components=["rotation", "brightness", "contrast"], order="fixed",
                       generator=g().manual_seed(0))
    full = caa.caa(gray_model, x, y, 1.0, components=["rotation", "brightness", "contrast", "linf"], order="fixed",
                   generator=g().manual_seed(0))
    with torch.no_grad():
        acc = [(gray_model(a).argmax(1) == y).float().mean() for a in (x, semantic, full)]
    assert acc[0] > acc[1] >= acc[2]


def test_bad_components_are_refused(gray_model, digits_models):
    x, y = digits_models.test_batch(4)
    with pytest.raises(ConfigError):
        caa.caa(gray_model, x, y, 1.0, components=["hue", "linf"])  # hue on grayscale
    with pytest.raises(ConfigError):
        caa.caa(gray_model, x, y, 1.0, components=["blur"])
    with pytest.raises(ConfigError):
        caa.caa(gray_model, x, y, 1.0, order="sorted")


# ---- each component against the published description (Hsiung et al. 2023; IBM/composite-adv) ---------------

PAPER_RANGES = {"hue": (-math.pi, math.pi), "saturation": (0.7, 1.3), "rotation": (-10.0, 10.0),
                "brightness": (-0.2, 0.2), "contrast": (0.7, 1.3)}


def test_ranges_are_the_papers_at_strength_one():
    for name, (lo, hi) in PAPER_RANGES.items():
        _, half, identity, _ = caa.SEMANTIC[name]
        assert (identity - half, identity + half) == pytest.approx((lo, hi))
    assert caa.COMPONENTS == ("hue", "saturation", "rotation", "brightness", "contrast", "linf")  # indices 0..5


@pytest.mark.parametrize("component", ["hue", "saturation", "rotation", "brightness", "contrast", "linf"])
def test_each_component_stays_in_its_range(component, gray_model, rgb_model, digits_models):
    rgb = component in ("hue", "saturation")
    model = rgb_model if rgb else gray_model
    x, y = digits_models.test_batch(24, rgb=rgb)
    res = caa.caa_search(model, x, y, 1.0, components=[component], order="fixed", inner_steps=5, linf_steps=5,
                         early_stop=False, generator=torch.Generator().manual_seed(0))
    if component == "linf":
        assert float(res.delta.abs().max()) <= 8 / 255 + 1e-7
        assert float(res.delta.abs().max()) > 4 / 255  # signed steps of 2.5 eps / 5 reach the boundary
    else:
        lo, hi = PAPER_RANGES[component]
        p = res.params[component]
        assert bool(((p >= lo - 1e-6) & (p <= hi + 1e-6)).all())
    torch.testing.assert_close(caa.compose(x, res.components, res.params, res.delta, res.order), res.x_adv)


@pytest.mark.parametrize("component", ["rotation", "brightness", "contrast"])
@pytest.mark.parametrize("steps", [1, 4])
def test_random_start_and_step_size(component, steps, gray_model, digits_models):
    """Start uniform in the range; each step moves by 2.5 x half-range / inner_iter (or stops at the bound)."""
    x, y = digits_models.test_batch(32)
    lo, hi = PAPER_RANGES[component]
    start = lo + (hi - lo) * torch.rand(32, generator=torch.Generator().manual_seed(5))  # the attack's first draw
    res = caa.caa_search(gray_model, x, y, 1.0, components=[component], order="fixed", inner_steps=steps,
                         early_stop=False, generator=torch.Generator().manual_seed(5))
    alpha = 2.5 * (hi - lo) / 2 / steps
    moved = res.params[component] - start
    at_bound = (res.params[component] - lo).abs().lt(1e-5) | (res.params[component] - hi).abs().lt(1e-5)
    if steps == 1:
        assert bool((moved.abs().sub(alpha).abs().lt(1e-4) | at_bound).all())
    # k signed steps of alpha: every free coordinate sits on the lattice start + alpha * Z
    ratio = moved / alpha
    assert bool(((ratio - ratio.round()).abs().lt(1e-3) | at_bound).all())


def test_per_sample_early_stop_keeps_every_success(gray_model, digits_models):
    """With early stop an example keeps the first parameters that fool the model; without it, later steps may
    undo a success. The live examples follow the same trajectory either way, so early stop fools a superset."""
    x, y = digits_models.test_batch(64)
    kw = dict(components=["rotation", "brightness", "contrast"], order="fixed", inner_steps=10)
    early = caa.caa_search(gray_model, x, y, 0.5, early_stop=True, generator=torch.Generator().manual_seed(3), **kw)
    late = caa.caa_search(gray_model, x, y, 0.5, early_stop=False, generator=torch.Generator().manual_seed(3), **kw)
    with torch.no_grad():
        fooled_early = gray_model(early.x_adv).argmax(1) != y
        fooled_late = gray_model(late.x_adv).argmax(1) != y
    assert bool((fooled_early | ~fooled_late).all())  # fooled without early stop => fooled with it
    assert int(fooled_early.sum()) >= 8  # the search does fool examples at half the ranges
    # The kept parameters reproduce the fooling images; components not reached stay at identity.
    torch.testing.assert_close(caa.compose(x, early.components, early.params, early.delta, early.order), early.x_adv)


def test_scheduling_rounds_a_sinkhorn_matrix_to_the_best_permutation():
    """Sinkhorn normalisation gives a doubly stochastic matrix; the rounding is the assignment of largest total
    weight (the authors' greedy top-k finds a permutation, not always the best one)."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        dsm = caa._sinkhorn(torch.rand(5, 5, generator=gen) + 1e-3)
        torch.testing.assert_close(dsm.sum(1), torch.ones(5), atol=1e-6, rtol=0)
        torch.testing.assert_close(dsm.sum(0), torch.ones(5), atol=1e-3, rtol=0)
        best = max(itertools.permutations(range(5)), key=lambda p: float(sum(dsm[i, p[i]] for i in range(5))))
        assert caa._assign(dsm) == list(best)


def test_scheduled_order_searches_five_passes_by_default(gray_model, digits_models):
    x, y = digits_models.test_batch(8)
    calls = []
    real = caa._schedule

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    caa._schedule, saved = spy, caa._schedule
    try:
        caa.caa_search(gray_model, x, y, 1.0, inner_steps=1, linf_steps=1, early_stop=False,
                       generator=torch.Generator().manual_seed(0))
    finally:
        caa._schedule = saved
    assert len(calls) == 5  # the authors' iter_num for 'scheduled' (1 for fixed and random)
