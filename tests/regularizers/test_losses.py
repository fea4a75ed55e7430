"""Pure losses and controls against values computed by hand from the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch

from brainalign.errors import ConfigError, DataError
from brainalign.regularizers._similarity import (
    atanh_eps,
    cosine_pairs,
    sample_pairs,
    similarity_loss,
    threshold_similarity,
    unit_rows,
)
from brainalign.regularizers.base import apply_control, derangement
from brainalign.regularizers.cka import log_cka_loss
from brainalign.regularizers.dcca import cca_correlation
from brainalign.regularizers.neural_prediction import NeuralPrediction, poisson_loss, prediction_loss
from brainalign.regularizers.pixel_similarity import selection_rule
from brainalign.regularizers.spectral import batch_spectrum, spectral_penalty

# ---- similarity (Li et al. 2019; Attias et al. 2024) ------------------------------------------------


def test_arctanh_loss_is_the_papers_and_the_code_variant_is_4x():
    s, t = torch.tensor([0.5, -0.2]), torch.tensor([0.0, 0.3])
    paper = ((math.atanh(0.5) - 0) ** 2 + (math.atanh(-0.2) - math.atanh(0.3)) ** 2) / 2
    assert float(similarity_loss(s, t, eps=0.0)) == pytest.approx(paper, rel=1e-6)
    assert float(similarity_loss(s, t, variant="code", eps=0.0)) == pytest.approx(4 * paper, rel=1e-6)
    assert float(similarity_loss(s, t, loss="mse")) == pytest.approx((0.25 + 0.25) / 2, rel=1e-6)


def test_arctanh_of_thresholded_targets_is_finite_as_in_the_code():
    # The code's log(1 + x + e) - log(1 - x + e) at x = 1, e = 1e-5, halved (the paper's arctanh).
    expected = 0.5 * (math.log(2 + 1e-5) - math.log(1e-5))
    assert float(atanh_eps(torch.tensor(1.0))) == pytest.approx(expected, rel=1e-6)
    assert float(atanh_eps(torch.tensor(-1.0))) == pytest.approx(-expected, rel=1e-6)


def test_pixel_threshold_target_by_hand():
    # Pixels p1 = (1,0,0,0), p2 = (0,1,0,0), p3 = (1,1,0,0); mean image (2/3, 2/3, 0, 0).
    # Centred: (1/3,-2/3), (-2/3,1/3), (1/3,1/3): cos12 = -0.8, cos13 = cos23 = -1/sqrt(10) = -0.316.
    pixels = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]])
    rows = unit_rows(pixels)
    i, j = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2])
    cos = (rows[i] * rows[j]).sum(1)
    assert cos.tolist() == pytest.approx([-0.8, -1 / math.sqrt(10), -1 / math.sqrt(10)], abs=1e-6)
    assert threshold_similarity(cos, 0.5).tolist() == [-1.0, 0.0, 0.0]
    assert threshold_similarity(cos, 0.2).tolist() == [-1.0, -1.0, -1.0]
    assert threshold_similarity(torch.tensor([0.81, 0.8, -0.79]), 0.8).tolist() == [1.0, 0.0, 0.0]


def test_layer_mixture_by_hand(tmp_path):
    """S = sum_l softmax(gamma)_l cos_l; gamma = (log 3, 0) gives weights (3/4, 1/4)."""
    from brainalign.config import ModelConfig
    from brainalign.models import build_model
    from brainalign.regularizers.base import RegularizationSet
    from brainalign.regularizers.neural_similarity import NeuralSimilarity

    torch.manual_seed(0)
    model = build_model(ModelConfig(name="small_cnn", width=4), 3, 1, 8)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # centred: cos(0,1) = -0.8 as above
    reg_set = RegularizationSet(torch.rand(3, 1, 8, 8), ["a", "b", "c"], targets)
    reg = NeuralSimilarity(layers=["conv3", "fc"], batch_size=2)
    reg.setup(model, reg_set)
    reg.eval()
    with torch.no_grad():
        reg.layer_logits.copy_(torch.tensor([math.log(3.0), 0.0]))
    d3, d4 = reg.channels["conv3"], reg.channels["fc"]  # both flat layers: one "channel" per unit
    f3, f4 = torch.zeros(2, d3), torch.zeros(2, d4)
    f3[0, 0], f3[1, 0] = 1.0, 1.0  # cos = 1
    f4[0, 0], f4[1, 1] = 1.0, 1.0  # cos = 0
    s = 0.75 * 1.0 + 0.25 * 0.0
    value = reg({"conv3": f3, "fc": f4}, torch.tensor([0, 1]))
    assert float(value.detach()) == pytest.approx((float(atanh_eps(torch.tensor(s))) - math.atanh(-0.8)) ** 2,
                                                  rel=1e-4)


def test_fused_centred_pair_cosines_match_autograd():
    """The hand-written gradient of the similarity regularizers' centring + pair cosines, against autograd."""
    from brainalign.regularizers._similarity import _HalvesCosine

    gen = torch.Generator().manual_seed(0)
    conv = torch.randn(7, 3, 2, 2, generator=gen, dtype=torch.float64, requires_grad=True)  # odd batch: 3 pairs
    dense = torch.randn(7, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    mu_conv, mu_dense = torch.randn(3, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen,
                                                                                        dtype=torch.float64)

    def fused(x, y):
        return _HalvesCosine.apply([mu_conv, mu_dense], 1e-8, x, y)

    def reference(x, y):
        cx, cy = (x - mu_conv.view(-1, 1, 1)).flatten(1), y - mu_dense
        return torch.stack([torch.nn.functional.cosine_similarity(c[:3], c[3:6], dim=1, eps=0) for c in (cx, cy)],
                           1)

    assert torch.allclose(fused(conv, dense), reference(conv, dense), atol=1e-12)
    assert torch.autograd.gradcheck(fused, (conv, dense))


def test_cosine_of_zero_features_is_zero_with_finite_gradient():
    a = torch.zeros(3, 5, requires_grad=True)
    s = cosine_pairs(a, torch.ones(3, 5))
    s.sum().backward()
    assert s.tolist() == [0.0, 0.0, 0.0] and torch.isfinite(a.grad).all()


def test_pairs_are_distinct_and_uniform_over_unordered_pairs():
    i, j = sample_pairs(4, 60_000, torch.Generator().manual_seed(0))
    assert bool((i != j).all())
    lo, hi = torch.minimum(i, j), torch.maximum(i, j)
    counts = torch.bincount(lo * 4 + hi, minlength=16).float()
    used = counts[counts > 0]
    assert len(used) == 6  # all i < j pairs of 4 stimuli
    assert float(used.max() / used.min()) < 1.06


# ---- controls --------------------------------------------------------------------------------------


def test_shuffled_control_moves_every_row_and_keeps_them():
    targets = torch.arange(50, dtype=torch.float32).repeat(3, 1).T.contiguous()  # row k = (k, k, k)
    out = apply_control(targets, "shuffled", torch.Generator().manual_seed(0))
    assert sorted(out[:, 0].tolist()) == list(range(50))  # a permutation of the rows
    assert bool((out[:, 0] != targets[:, 0]).all())  # no stimulus keeps its own target
    again = apply_control(targets, "shuffled", torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert not torch.equal(out, apply_control(targets, "shuffled", torch.Generator().manual_seed(1)))
    for n in (2, 3, 7):
        perm = derangement(n, torch.Generator().manual_seed(n))
        assert sorted(perm.tolist()) == list(range(n)) and bool((perm != torch.arange(n)).all())
    with pytest.raises(DataError):
        derangement(1, torch.Generator())


def test_random_control_matches_mean_and_covariance():
    gen = torch.Generator().manual_seed(0)
    mix = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, -1.0, 3.0]])
    targets = torch.randn(4000, 3, generator=gen) @ mix + torch.tensor([5.0, -1.0, 0.5])
    out = apply_control(targets, "random", torch.Generator().manual_seed(1))
    assert out.shape == targets.shape
    assert torch.allclose(out.mean(0), targets.mean(0), atol=0.15)
    assert torch.allclose(torch.cov(out.T), torch.cov(targets.T), rtol=0.1, atol=0.1)
    assert float((out - targets).abs().mean()) > 1.0  # not the real rows
    with pytest.raises(ConfigError, match="unknown control"):
        apply_control(targets, "reversed", gen)


def test_random_control_for_large_targets_keeps_means_variances_and_leading_covariance(monkeypatch):
    import brainalign.regularizers.base as base

    monkeypatch.setattr(base, "EXACT_RANDOM_CONTROL", 8)  # take the low-rank path on a small problem
    monkeypatch.setattr(base, "RANDOM_CONTROL_COMPONENTS", 4)
    gen = torch.Generator().manual_seed(0)
    targets = torch.randn(3000, 3, generator=gen) @ (3 * torch.randn(3, 20, generator=gen)) \
        + torch.randn(3000, 20, generator=gen) + 4.0
    out = apply_control(targets, "random", torch.Generator().manual_seed(1))
    assert torch.allclose(out.mean(0), targets.mean(0), atol=0.3)
    assert torch.allclose(out.var(0), targets.var(0), rtol=0.1)
    cov_t, cov_o = torch.cov(targets.T), torch.cov(out.T)
    assert float((cov_t - cov_o).norm() / cov_t.norm()) < 0.1
    again = apply_control(targets, "random", torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


# ---- CKA (Dapello et al.) ---------------------------------------------------------------------------


def test_log_cka_by_hand():
    # x = (1,2,3), y = (1,0,2): centred (-1,0,1), (0,-1,1): ||y'x||^2 = 1, ||x'x|| = ||y'y|| = 2 -> CKA 1/4.
    x, y = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [0.0], [2.0]])
    assert float(log_cka_loss(x, y, eps=0.0)) == pytest.approx(math.log(0.75), rel=1e-6)
    assert float(log_cka_loss(x, 3 * x, eps=1e-6)) == pytest.approx(math.log(1e-6), abs=1e-3)


# ---- spectral (Nassar et al.) -----------------------------------------------------------------------


def test_spectral_penalty_by_hand():
    # tau = 1, alpha = 1: anchor l_1 = 2, g_n = 2 * 2 / (n + 1): g_2 = 4/3, g_3 = 1.
    # (4, 2, 1, 1): n=2 ratio 3/4 -> (−1/4)^2 = 1/16; n=3 ratio 1 -> 0. Sum / 4 = 1/64.
    assert float(spectral_penalty(torch.tensor([4.0, 2.0, 1.0, 1.0]), tau=1)) == pytest.approx(1 / 64)
    # (4, 2, 2, 1): n=2 ratio 3/2 -> 1/4 + 1/2 (the ReLU term); n=3 -> 0. Sum / 4 = 3/16.
    assert float(spectral_penalty(torch.tensor([4.0, 2.0, 2.0, 1.0]), tau=1)) == pytest.approx(3 / 16)
    # alpha = 2: g_2 = 2 * 4 / 9; (4, 2, 8/9, 1/2) follows 1/n^2 exactly.
    assert float(spectral_penalty(torch.tensor([4.0, 2.0, 8 / 9, 0.5]), tau=1, alpha=2.0)) == pytest.approx(0.0)
    # non-positive eigenvalues are not penalised
    assert float(spectral_penalty(torch.tensor([4.0, 2.0, 0.0, -1.0]), tau=1)) == 0.0


def test_spectral_anchor_is_held_constant():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.linalg.qr(torch.randn(12, 12, generator=gen, dtype=torch.float64))[0]
    eigs = batch_spectrum(x, v)
    spectral_penalty(eigs, tau=2).backward()
    grad_detached = x.grad.clone()
    x.grad = None
    eigs = batch_spectrum(x, v)
    fixed = eigs[2].detach()
    n = torch.arange(3, 12, dtype=torch.float64)
    ratio = eigs[3:] / (fixed * 3 / (n + 1)) - 1
    ((ratio ** 2 + torch.relu(ratio)).sum() / 12).backward()
    assert torch.allclose(grad_detached, x.grad)


def test_batch_spectrum_is_the_covariance_spectrum_in_its_own_eigenbasis():
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cov = torch.cov(x.T)
    evals, evecs = torch.linalg.eigh(cov)
    assert torch.allclose(batch_spectrum(x, evecs), evals.flip(0))


# ---- deep CCA (Pirlot et al.) -----------------------------------------------------------------------


def test_cca_correlation_by_hand():
    # h = (-1, 0, 1): var = 2 / (3 - 1) = 1; S11 = S22 = 1 + r, S12 = 1 -> corr = 1 / (1 + r).
    h = torch.tensor([[-1.0], [0.0], [1.0]], dtype=torch.float64)
    assert float(cca_correlation(h, h, 0.5, 0.5)) == pytest.approx(1 / 1.5)
    assert float(cca_correlation(h, -2 * h, 1e-9, 1e-9)) == pytest.approx(1.0, abs=1e-6)
    # two uncorrelated directions: correlation 0 for the orthogonal one
    h1 = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
    h2 = h1[:, :1]
    assert float(cca_correlation(h1, h2, 1e-9, 1e-9)) == pytest.approx(1.0, abs=1e-6)


# ---- neural prediction ------------------------------------------------------------------------------


def test_prediction_losses_by_hand():
    out, target = torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, 2.0]])
    assert float(prediction_loss(out, target, "mse")) == pytest.approx((4 + 1) / 2)
    # rates ELU(z) + 1: z=0 -> 1, z=1 -> 2; loss = rate - y log rate
    expected = ((1 - 2 * math.log(1)) + (2 - 2 * math.log(2))) / 2
    assert float(prediction_loss(out, target, "poisson")) == pytest.approx(expected, rel=1e-6)
    assert float(poisson_loss(torch.tensor([3.0]), torch.tensor([3.0]))) < float(
        poisson_loss(torch.tensor([2.5]), torch.tensor([3.0])))


@pytest.mark.parametrize("form, ce_factor", [("safarani", 1.0), ("guo", 0.5)])
def test_uncertainty_weighting_by_hand(form, ce_factor):
    reg = NeuralPrediction(weighting="uncertainty", uncertainty_form=form)
    reg.log_var_ce = torch.nn.Parameter(torch.tensor(math.log(4.0)))
    ce = torch.tensor(2.0)
    # e^{-s} CE + s/2 (Safarani) or 1/2 e^{-s} CE + s/2 (Guo: CE / (2 d^2) + log d, s = log d^2)
    assert float(reg.transform_ce(ce).detach()) == pytest.approx(ce_factor * 2.0 / 4 + math.log(2.0))
    convex = NeuralPrediction(weighting="convex", alpha=0.9)
    assert float(convex.transform_ce(ce)) == pytest.approx(0.2)
    assert not NeuralPrediction().transforms_ce and convex.transforms_ce


# ---- Attias et al.'s selection rule -----------------------------------------------------------------


@pytest.mark.parametrize("args, accept", [
    ((0.90, 1.00, 0.30, 0.20), True),   # clean ratio exactly 0.9, robust gain
    ((0.89, 1.00, 0.30, 0.20), False),  # clean ratio below 0.9
    ((0.95, 1.00, 0.20, 0.20), False),  # robust ratio exactly 1 is not a gain
    ((0.95, 1.00, 0.05, 0.00), True),   # any robustness over a zero baseline
    ((0.00, 0.00, 0.05, 0.00), False),  # nothing learned
])
def test_selection_rule(args, accept):
    assert selection_rule(*args) is accept


def test_selection_rule_rejects_non_accuracies():
    with pytest.raises(ValueError):
        selection_rule(90.0, 95.0, 30.0, 20.0)


# ---- the frozen predictor behind targets: predicted ---------------------------------------------------


def test_predictor_recovers_a_pixel_driven_population_and_is_deterministic():
    from brainalign.regularizers.predictor import fit_predictor

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(200, 1, 8, 8, generator=gen)
    weights = torch.randn(64, 12, generator=gen)
    responses = torch.relu(images.flatten(1) @ weights) + 0.05 * torch.randn(200, 12, generator=gen)
    a = fit_predictor(images, responses, seed=3, n_filters=8)
    b = fit_predictor(images, responses, seed=3, n_filters=8)
    assert a.heldout_r > 0.4
    pred = a.predict(images)
    assert pred.shape == (200, 12) and torch.equal(pred, b.predict(images))
    noise = torch.randn(200, 12, generator=gen)
    assert fit_predictor(images, noise, seed=3, n_filters=8).heldout_r < 0.2
    with pytest.raises(DataError):
        fit_predictor(images[:5], responses[:5])


def test_spectral_rounding_noise_is_not_part_of_the_spectrum():
    # Dead ReLU units give eigenvalues of 1e-17 .. 1e-27 (sign and size depend on the CPU kernel). Below
    # 1e-6 x the largest they count as zero, as exact zeros and negative values do.
    eigs = torch.tensor([4.0, 2.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    clean = float(spectral_penalty(eigs, tau=1))
    for noise in (1e-17, 1e-27, -1e-20, 3.9e-6):
        noisy = eigs.clone()
        noisy[4:] = noise
        assert float(spectral_penalty(noisy, tau=1)) == clean
    kept = eigs.clone()
    kept[4] = 4.1e-6  # above the tolerance: a (tiny) part of the spectrum, far below its 1/n value
    assert float(spectral_penalty(kept, tau=1)) > clean + 0.9 / 6
    # An anchor at the noise level: nothing to compare with, the term is 0 rather than a blow-up.
    assert float(spectral_penalty(torch.tensor([1.0, 1e-9, 1e-10, 1e-11]), tau=1)) == 0.0


@pytest.mark.parametrize("anchor_gradient", [False, True])
def test_spectral_scale_gradient_follows_the_anchor_choice(anchor_gradient):
    # A spectrum whose tail lies above 1/n. With the paper's detached anchor, shrinking the whole layer lowers
    # the term (d R / d scale > 0): what collapses a ReLU layer. With the anchor's gradient R is scale-invariant.
    base = 1.0 / torch.arange(1, 41, dtype=torch.float64) ** 0.5
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    spectral_penalty(scale * base, tau=10, anchor_gradient=anchor_gradient).backward()
    if anchor_gradient:
        assert abs(float(scale.grad)) < 1e-12
    else:
        assert float(scale.grad) > 0.1
