"""Noise-ceiling formulas against values computed by hand on small arrays."""

import numpy as np
import pytest

from brainalign.errors import ConfigError, DataError
from brainalign.neural import ceilings

# 4 stimuli x 2 repetitions x 1 neuroid. rep0 = [1, 2, 3, 4], rep1 = [2, 1, 4, 3].
# Hand computation: deviations a = [-1.5, -.5, .5, 1.5], b = [-.5, -1.5, 1.5, .5]; sum(ab) = 3, sum(a^2) = 5.
X = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 4.0], [4.0, 3.0]])[:, :, None]


def test_splithalf_two_reps_matches_hand_values():
    # lower = r(rep1, rep0) = 3 / 5; upper = r(mean, rep) = 4 / sqrt(4 * 5) for either half.
    nc = ceilings.splithalf(X, n_iter=100, seed=3)
    assert nc.lower[0] == pytest.approx(0.6, abs=1e-12)
    assert nc.upper[0] == pytest.approx(4 / np.sqrt(20), abs=1e-12)


def test_internal_consistency_is_spearman_brown_of_split_half():
    # r = 0.6 -> 2 * 0.6 / 1.6 = 0.75
    assert ceilings.spearman_brown(0.6, 2) == pytest.approx(0.75)
    assert ceilings.spearman_brown(0.5, 3) == pytest.approx(0.75)
    assert ceilings.internal_consistency(X)[0] == pytest.approx(0.75, abs=1e-12)


def test_fev_matches_hand_value():
    # total variance of the 8 trials (ddof=1) = 10 / 7; noise variance per stimulus (ddof=1) = 0.5
    assert ceilings.fev(X)[0] == pytest.approx((10 / 7 - 0.5) / (10 / 7), abs=1e-12)


def test_ncsnr_matches_hand_value():
    # z-scored over trials (sd = sqrt(10 / 8)): noise var = 0.5 / 1.25 = 0.4, signal var = 0.6
    snr = ceilings.ncsnr(X)[0]
    assert snr == pytest.approx(np.sqrt(0.6 / 0.4), abs=1e-12)
    # NSD: NC = ncsnr^2 / (ncsnr^2 + 1/n) = 1.5 / 2.0 for n = 2
    assert ceilings.ncsnr_to_ceiling(snr, 2)[()] == pytest.approx(0.75, abs=1e-12)
    assert ceilings.ncsnr_to_ceiling(snr, 1)[()] == pytest.approx(0.6, abs=1e-12)


def test_oracle_matches_hand_value():
    # each trial against the other repetition: r over the 8 pairs = 6 / 10
    assert ceilings.oracle_correlation(X)[0] == pytest.approx(0.6, abs=1e-12)


def test_splithalf_uses_every_split_when_few_and_is_seed_free():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4, 3)) + rng.normal(size=(30, 1, 3))
    a = ceilings.splithalf(x, n_iter=100, seed=0)
    b = ceilings.splithalf(x, n_iter=100, seed=99)
    np.testing.assert_array_equal(a.lower, b.lower)
    # by hand: all C(4, 2) = 6 choices of half B
    import itertools

    lower = []
    for bi in itertools.combinations(range(4), 2):
        ai = [i for i in range(4) if i not in bi]
        lower.append([np.corrcoef(x[:, list(bi), n].mean(1), x[:, ai, n].mean(1))[0, 1] for n in range(3)])
    np.testing.assert_allclose(a.lower, np.mean(lower, axis=0), atol=1e-12)


def test_ceilings_ignore_nan_padding():
    rng = np.random.default_rng(1)
    signal = rng.normal(size=(40, 1, 2))
    full = signal + 0.5 * rng.normal(size=(40, 3, 2))
    padded = np.concatenate([full, np.full((40, 2, 2), np.nan)], axis=1)  # two NaN repetitions
    np.testing.assert_allclose(ceilings.fev(padded), ceilings.fev(full), atol=1e-12)
    np.testing.assert_allclose(ceilings.ncsnr(padded), ceilings.ncsnr(full), atol=1e-12)
    np.testing.assert_allclose(ceilings.oracle_correlation(padded), ceilings.oracle_correlation(full), atol=1e-12)


def test_pearson_skips_nan_pairs():
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    b = np.array([2.0, 4.0, 1.0, np.nan, 10.0])
    assert ceilings.pearson(a, b)[()] == pytest.approx(1.0)


def test_expected_ceiling_formulas():
    s, v, r = 2.0, 4.0, 4
    assert ceilings.expected_ceiling(s, v, r, "fev") == pytest.approx(2 / 6)
    assert ceilings.expected_ceiling(s, v, r, "ncsnr") == pytest.approx(2 / 3)
    assert ceilings.expected_ceiling(s, v, r, "splithalf_lower") == pytest.approx(0.5)
    assert ceilings.expected_ceiling(s, v, r, "splithalf_upper") == pytest.approx(np.sqrt(3 / 4))
    assert ceilings.expected_ceiling(s, v, r, "oracle") == pytest.approx(2 / np.sqrt(6 * (2 + 4 / 3)))
    with pytest.raises(ConfigError):
        ceilings.expected_ceiling(s, v, r, "nope")


def test_needs_two_repetitions():
    with pytest.raises(DataError, match="at least 2 repetitions"):
        ceilings.fev(np.ones((5, 1, 2)))
