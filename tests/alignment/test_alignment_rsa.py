"""RSA through rsatoolbox: RDMs and RDM comparisons against hand computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from brainalign.alignment import compare_rdms, rdm
from brainalign.alignment.rsa import calc_rdm
from brainalign.errors import ConfigError, DataError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((9, 6)) + 1.0
Y = X @ RNG.standard_normal((6, 4)) + 0.8 * RNG.standard_normal((9, 4))


def tau_a(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a by counting all pairs: (concordant - discordant) / (m (m-1) / 2)."""
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in itertools.combinations(range(a.size), 2))
    return float(s / (a.size * (a.size - 1) / 2))


def upper(m: np.ndarray) -> np.ndarray:
    return m[np.triu_indices(m.shape[0], 1)]


def test_rdms_match_hand_computation():
    corr = 1 - np.corrcoef(X)
    np.testing.assert_allclose(rdm(X), corr, atol=1e-12)
    np.testing.assert_allclose(rdm(X, "euclidean"), squareform(pdist(X)), atol=1e-12)
    np.testing.assert_allclose(rdm(X, "sqeuclidean"), squareform(pdist(X, "sqeuclidean")) / X.shape[1],
                               atol=1e-12)
    assert calc_rdm(X).n_cond == 9


def test_comparisons_match_hand_computation():
    a, b = rdm(X), rdm(Y, "euclidean")
    ua, ub = upper(a), upper(b)
    assert compare_rdms(a, b) == pytest.approx(spearmanr(ua, ub).statistic, abs=1e-12)
    assert compare_rdms(a, b, "tau-a") == pytest.approx(tau_a(ua, ub), abs=1e-12)
    cosine = ua @ ub / np.sqrt((ua @ ua) * (ub @ ub))
    assert compare_rdms(a, b, "cosine") == pytest.approx(cosine, abs=1e-12)
    assert compare_rdms(a, b, "pearson") == pytest.approx(np.corrcoef(ua, ub)[0, 1], abs=1e-12)
    assert 0.2 < compare_rdms(a, b) < 0.95  # related but not identical representations


def test_tau_a_penalises_ties_unlike_spearman():
    a = rdm(X)
    tied = np.round(a * 2) / 2  # a coarse model predicting many tied dissimilarities
    np.fill_diagonal(tied, 0)
    assert compare_rdms(a, tied, "tau-a") == pytest.approx(tau_a(upper(a), upper(tied)), abs=1e-12)
    assert compare_rdms(a, tied, "tau-a") < compare_rdms(a, tied, "spearman")


def test_identical_rdms_and_invariance_to_monotone_transforms():
    a = rdm(X)
    assert compare_rdms(a, a) == pytest.approx(1.0)
    assert compare_rdms(a, np.sqrt(a + 1) - 1, "spearman") == pytest.approx(1.0)
    assert compare_rdms(a, np.sqrt(a + 1) - 1, "tau-a") == pytest.approx(1.0)


def test_bad_input_raises():
    with pytest.raises(ConfigError, match="unknown RDM method"):
        rdm(X, "cosine")
    with pytest.raises(ConfigError, match="unknown RDM comparison"):
        compare_rdms(rdm(X), rdm(Y), "kendall-b")
    with pytest.raises(DataError, match="constant"):
        rdm(np.vstack([X, np.ones(6)]))
    with pytest.raises(DataError, match="different numbers of stimuli"):
        compare_rdms(rdm(X), rdm(X[:5]))
    asym = rdm(X)
    asym[0, 1] += 0.5
    with pytest.raises(DataError, match="not symmetric"):
        compare_rdms(asym, rdm(Y))
    with pytest.raises(DataError, match="square"):
        compare_rdms(upper(rdm(X)), rdm(Y))
