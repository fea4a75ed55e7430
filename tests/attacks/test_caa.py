"""The composite attack's orders and components."""

from __future__ import annotations

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
