"""Statistics helpers against hand computations, scipy.stats and statsmodels on fixtures."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from brainalign.analysis import (
    adjust_pvalues,
    benjamini_hochberg,
    cohens_h,
    correlation,
    high_eps_gain,
    holm,
    mcnemar,
    mean_ci,
    paired_bootstrap,
    pooled_mcnemar,
)
from brainalign.analysis.stats import hierarchical_bootstrap, mixed_model, partial_correlation, pearson_rows
from brainalign.errors import ConfigError, DataError


def _flags(b: int, c: int, both: int = 5, neither: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Paired outcomes with b examples right only under `base`, c right only under `other`."""
    base = np.r_[np.ones(b), np.zeros(c), np.ones(both), np.zeros(neither)].astype(bool)
    other = np.r_[np.zeros(b), np.ones(c), np.ones(both), np.zeros(neither)].astype(bool)
    return base, other


def test_mcnemar_matches_hand_computation():
    # b = 2, c = 9: X ~ Bin(11, 1/2); P(X <= 2) = (1 + 11 + 55) / 2048, P(X = 2) = 55 / 2048
    out = mcnemar(*_flags(2, 9))
    assert (out["n_base_only"], out["n_other_only"], out["n"]) == (2, 9, 19)
    assert out["p_exact"] == pytest.approx(134 / 2048, abs=1e-12)
    assert out["p_midp"] == pytest.approx(79 / 2048, abs=1e-12)


@pytest.mark.parametrize("b,c", [(0, 7), (3, 4), (10, 25), (40, 12), (1, 1)])
def test_mcnemar_exact_equals_scipy_binomtest(b, c):
    out = mcnemar(*_flags(b, c))
    assert out["p_exact"] == pytest.approx(stats.binomtest(c, b + c, 0.5).pvalue, rel=1e-10)
    assert out["p_midp"] <= out["p_exact"]


def test_mcnemar_degenerate_and_bad_input():
    assert mcnemar(*_flags(0, 0))["p_exact"] == 1.0
    assert mcnemar(*_flags(6, 6))["p_midp"] == 1.0  # balanced: no evidence either way
    with pytest.raises(DataError, match="same examples"):
        mcnemar(np.ones(5), np.ones(6))


def test_pooled_mcnemar_adds_discordant_counts():
    out = pooled_mcnemar([_flags(2, 5), _flags(0, 4)])
    assert (out["n_base_only"], out["n_other_only"]) == (2, 9)
    assert out["p_exact"] == pytest.approx(134 / 2048)


def test_paired_bootstrap_interval_covers_true_difference():
    rng = np.random.default_rng(1)
    base = rng.random(400) < 0.5
    other = base.copy()
    flip = np.flatnonzero(~base)[:40]  # the other model gets 40 more right: difference exactly 0.1
    other[flip] = True
    out = paired_bootstrap(base, other, n_boot=2000, seed=0)
    assert out["diff"] == pytest.approx(0.1)
    assert 0.06 < out["low"] < 0.1 < out["high"] < 0.14  # the width of sqrt(40)/400 * 1.96 ~ 0.03
    assert out["p_boot"] < 0.01
    same = paired_bootstrap(base, base, n_boot=200)
    assert (same["diff"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    assert paired_bootstrap(base, other, n_boot=300, seed=3) == paired_bootstrap(base, other, n_boot=300, seed=3)


def test_paired_bootstrap_over_repetitions_and_errors():
    base = np.zeros((2, 50))
    other = np.zeros((2, 50))
    other[0, :10] = 1  # seed 0: +0.2, seed 1: 0
    assert paired_bootstrap(base, other, n_boot=100)["diff"] == pytest.approx(0.1)
    with pytest.raises(DataError):
        paired_bootstrap(np.zeros(3), np.zeros(4))


def test_holm_hand_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # NaN does not count in the family: m = 2
    out = holm([0.01, float("nan"), 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]


def test_benjamini_hochberg_hand_example_and_scipy():
    # m p_(i) / i = 0.02, 0.02, 0.04, 0.04 -> running min from the top
    np.testing.assert_allclose(benjamini_hochberg([0.01, 0.04, 0.03, 0.005]), [0.02, 0.04, 0.04, 0.02])
    p = np.random.default_rng(0).random(30) ** 2
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p), rtol=1e-12)
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), stats.false_discovery_control(p), rtol=1e-12)
    with pytest.raises(ConfigError, match="holm"):
        adjust_pvalues(p, "bonferonni")


def test_cohens_h():
    assert cohens_h(0.5, 0.5) == 0.0
    assert cohens_h(0.75, 0.25) == pytest.approx(math.pi / 3)
    assert cohens_h(0.25, 0.75) == pytest.approx(-math.pi / 3)


def test_correlation_values_and_intervals():
    x = np.arange(10.0)
    exact = correlation(x, 2 * x + 1, n_boot=200)
    assert exact["pearson"]["r"] == pytest.approx(1.0)
    assert exact["r2"]["value"] == pytest.approx(1.0)
    assert exact["pearson"]["low"] == pytest.approx(1.0)
    mono = correlation(x, np.exp(x), n_boot=200)
    assert mono["spearman"]["r"] == pytest.approx(1.0) and mono["pearson"]["r"] < 0.9
    rng = np.random.default_rng(0)
    a = rng.normal(size=40)
    b = a + rng.normal(size=40)
    noisy = correlation(a, b, n_boot=1000, seed=1)
    p, s = noisy["pearson"], noisy["spearman"]
    assert p["r"] == pytest.approx(stats.pearsonr(a, b).statistic)
    assert s["r"] == pytest.approx(stats.spearmanr(a, b).statistic)
    assert p["low"] < p["r"] < p["high"] and s["low"] < s["r"] < s["high"]
    assert noisy["r2"]["low"] < noisy["r2"]["value"] < noisy["r2"]["high"]
    assert noisy["n"] == 40
    few = correlation([1.0, 2.0], [3.0, 1.0])
    assert few["n"] == 2 and math.isnan(few["pearson"]["r"])
    dropped = correlation([1.0, 2.0, float("nan"), 4.0, 5.0], [1.0, 3.0, 2.0, 4.0, 6.0], n_boot=50)
    assert dropped["n"] == 4


def test_high_eps_gain_and_mean_ci():
    # non-zero strengths 0.1 .. 0.4 -> upper half 0.3, 0.4
    grid = [0, 0.1, 0.2, 0.3, 0.4]
    out = high_eps_gain(grid, [1, 0.8, 0.6, 0.5, 0.3], grid, [1, 0.8, 0.5, 0.3, 0.1])
    assert out["eps"] == [0.3, 0.4]
    assert out["gain"] == pytest.approx(0.2)
    assert math.isnan(high_eps_gain([0.0], [1.0], [0.0], [1.0])["gain"])
    ci = mean_ci([1.0, 2.0, 3.0])
    assert ci["mean"] == 2.0 and ci["low"] == pytest.approx(2 - stats.t.ppf(0.975, 2) / math.sqrt(3))


def test_corrections_equal_statsmodels_multipletests():
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(4).random(25) ** 3
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])


def test_mcnemar_exact_equals_statsmodels():
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    for b, c in [(3, 11), (20, 9), (0, 5)]:
        assert mcnemar(*_flags(b, c))["p_exact"] == pytest.approx(
            sm_mcnemar([[5, b], [c, 3]], exact=True).pvalue, rel=1e-12)


def test_correlation_intervals_come_from_scipy():
    rng = np.random.default_rng(2)
    a = rng.normal(size=30)
    b = 0.5 * a + rng.normal(size=30)
    out = correlation(a, b, n_boot=500, seed=0)
    ci = stats.pearsonr(a, b).confidence_interval(0.95)
    assert (out["pearson"]["low"], out["pearson"]["high"]) == pytest.approx((ci.low, ci.high))
    boot = stats.bootstrap((a, b), lambda x, y: stats.spearmanr(x, y).statistic, paired=True, vectorized=False,
                           n_resamples=500, method="BCa", rng=np.random.default_rng(0))
    assert out["spearman"]["low"] == pytest.approx(boot.confidence_interval.low, abs=1e-9)
    assert out["spearman"]["high"] == pytest.approx(boot.confidence_interval.high, abs=1e-9)
    # R^2's interval is r's interval squared, from 0 when r's interval holds 0
    assert out["r2"]["low"] == pytest.approx(ci.low ** 2) and out["r2"]["high"] == pytest.approx(ci.high ** 2)
    weak = correlation(a, rng.normal(size=30), n_boot=200)
    assert weak["pearson"]["low"] < 0 < weak["pearson"]["high"] and weak["r2"]["low"] == 0.0


def test_paired_bootstrap_is_scipy_bca_on_differences():
    rng = np.random.default_rng(5)
    base = rng.random(300) < 0.5
    other = rng.random(300) < 0.6
    out = paired_bootstrap(base, other, n_boot=800, seed=2)
    ref = stats.bootstrap((other.astype(float) - base,), np.mean, n_resamples=800, method="BCa",
                          rng=np.random.default_rng(2))
    assert (out["low"], out["high"]) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))


def test_pearson_rows_equals_corrcoef():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 12)), rng.normal(size=(4, 12))
    np.testing.assert_allclose(pearson_rows(x, y), [np.corrcoef(a, b)[0, 1] for a, b in zip(x, y, strict=True)])
    assert math.isnan(float(pearson_rows(np.ones(5), np.arange(5.0))))


def test_partial_correlation_closed_form_and_statsmodels():
    import statsmodels.api as sm

    rng = np.random.default_rng(7)
    z = rng.normal(size=50)
    x = z + 0.5 * rng.normal(size=50)
    y = z + 0.5 * rng.normal(size=50)  # x and y are related only through z
    out = partial_correlation(x, y, z)
    rxy, rxz, ryz = (stats.pearsonr(a, b).statistic for a, b in ((x, y), (x, z), (y, z)))
    assert out["r"] == pytest.approx((rxy - rxz * ryz) / math.sqrt((1 - rxz ** 2) * (1 - ryz ** 2)))
    assert rxy > 0.6 and abs(out["r"]) < 0.3 and out["low"] < out["r"] < out["high"]
    # the p-value equals the t-test of x in OLS y ~ 1 + x + z
    fit = sm.OLS(y, sm.add_constant(np.column_stack([x, z]))).fit()
    assert out["p"] == pytest.approx(fit.pvalues[1], rel=1e-8)
    assert math.isnan(partial_correlation(x[:4], y[:4], z[:4])["r"])


def _nested(n_groups: int, n_members: int, slope: float, seed_sd: float, seed: int):
    """Groups whose mean gain is slope x mean predictivity, each member adding seed noise to both."""
    rng = np.random.default_rng(seed)
    centres = np.linspace(0.0, 1.0, n_groups)
    groups = []
    for c in centres:
        pred = c + seed_sd * rng.normal(size=n_members)
        gain = slope * c + seed_sd * rng.normal(size=n_members)
        groups.append(np.column_stack([pred, gain]))
    return groups


def _r_columns(a: np.ndarray) -> np.ndarray:
    return pearson_rows(a[..., 0], a[..., 1])


def test_hierarchical_bootstrap_estimate_and_width():
    groups = _nested(8, 3, 1.0, 0.05, seed=0)
    out = hierarchical_bootstrap(groups, _r_columns, n_boot=500, seed=1)
    means = np.stack([g.mean(0) for g in groups])
    assert out["estimate"] == pytest.approx(stats.pearsonr(means[:, 0], means[:, 1]).statistic)
    assert out["low"] < out["estimate"] <= out["high"] and out["low"] > 0.5 and out["n_groups"] == 8
    # more seed noise within groups widens the interval: the second level carries it
    noisy = hierarchical_bootstrap(_nested(8, 3, 1.0, 0.4, seed=0), _r_columns, n_boot=500, seed=1)
    assert noisy["high"] - noisy["low"] > out["high"] - out["low"]
    # one member per group: no within-group noise, the interval comes from resampling groups alone
    single = hierarchical_bootstrap([g[:1] for g in groups], _r_columns, n_boot=300, seed=1)
    assert single["n_valid"] > 250 and single["low"] <= single["estimate"] <= single["high"]
    assert math.isnan(hierarchical_bootstrap(groups[:2], _r_columns)["low"])


def test_hierarchical_bootstrap_draws_as_described():
    """The interval equals a plain loop: draw groups, then members of every drawn slot afresh."""
    groups = [g[:n] for g, n in zip(_nested(5, 4, 0.7, 0.2, seed=9), [2, 3, 4, 3, 2], strict=True)]
    out = hierarchical_bootstrap(groups, _r_columns, n_boot=400, seed=4)
    rng = np.random.default_rng(4)
    drawn = rng.integers(0, 5, (400, 5))
    means = np.full((400, 5, 2), np.nan)
    for g in range(5):  # unequal seeds per group; each slot a group fills gets its own member draw
        slots = np.argwhere(drawn == g)
        idx = rng.integers(0, len(groups[g]), (len(slots), len(groups[g])))
        for (b, j), row in zip(slots, idx, strict=True):
            means[b, j] = groups[g][row].mean(0)
    boots = _r_columns(means)
    assert (out["low"], out["high"]) == pytest.approx(tuple(np.quantile(boots[np.isfinite(boots)], [0.025, 0.975])))


def test_mixed_model_matches_statsmodels_and_needs_groups():
    import pandas as pd
    import statsmodels.formula.api as smf

    groups = _nested(6, 3, 0.8, 0.1, seed=3)
    frame = pd.DataFrame([{"x": row[0], "y": row[1], "g": i} for i, g in enumerate(groups) for row in g])
    out = mixed_model(frame["y"], frame["x"], frame["g"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' boundary warning, the same for both fits
        ref = smf.mixedlm("y ~ x", frame, groups=frame["g"]).fit(reml=True)
    assert out["computed"] and out["slope"] == pytest.approx(ref.params["x"], rel=1e-6)
    assert out["p"] == pytest.approx(ref.pvalues["x"], rel=1e-4) and out["n_groups"] == 6
    small = mixed_model([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 2.0, 3.0], ["a", "a", "b", "b"])
    assert not small["computed"] and "3 groups" in small["reason"]
