"""The split and the score that predictivity shares with the neural predictors (one definition of each)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from brainalign.alignment.predictivity import fold_labels, pearson_columns, predictivity


def test_pearson_columns_matches_scipy_and_is_nan_for_a_constant_column():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    a[:, 1] += 2 * b[:, 1]
    b[:, 3] = 1.0
    r = pearson_columns(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = [stats.pearsonr(a[:, j], b[:, j]).statistic for j in range(3)]
    np.testing.assert_allclose(r[:3], expected, rtol=1e-12)
    assert np.isnan(r[3])


def test_fold_labels_are_the_split_predictivity_scores_on():
    labels = fold_labels(23, 5, None, 7)
    assert sorted(np.bincount(labels)) == [4, 4, 5, 5, 5]
    np.testing.assert_array_equal(labels, fold_labels(23, 5, None, 7))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(23, 3)), rng.normal(size=(23, 2))
    seeded = predictivity(x, y, n_folds=5, seed=7)
    given = predictivity(x, y, folds=labels)
    np.testing.assert_array_equal(seeded.r, given.r)
    np.testing.assert_array_equal(fold_labels(6, 2, list("babaab"), 0), [1, 0, 1, 0, 0, 1])
