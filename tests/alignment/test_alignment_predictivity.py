"""Neural predictivity: cross-validated ridge with per-target leave-one-out penalties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline

from brainalign.alignment import predictivity
from brainalign.alignment.predictivity import PredictivityResult, ridge_loo_fit_predict
from brainalign.errors import ConfigError, DataError

ALPHAS = 10.0 ** np.arange(-3, 5)


def planted(n: int, d: int, noise: np.ndarray, seed: int = 0):
    """Features X ~ N(0, I), signal s = X W, targets y_t = s_t + noise_t * e. Returns x, y, s, Var(s_t)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal((d, noise.size)) / np.sqrt(d)
    s = x @ w
    y = s + noise * rng.standard_normal((n, noise.size))
    return x, y, s, (w**2).sum(0)


def sklearn_predict(x_tr, y_tr, x_te, alphas, n_components=None):
    ridge = RidgeCV(alphas=alphas, alpha_per_target=True)
    model = ridge if n_components is None else make_pipeline(PCA(n_components), ridge)
    model.fit(x_tr, y_tr)
    return model.predict(x_te), ridge.alpha_


def graded(n: int, d: int, t: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Anisotropic features with an offset, and targets from pure noise to almost noiseless."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.geomspace(3, 0.05, d) + 2.0
    y = (x @ rng.standard_normal((d, t))) * 0.3 + rng.standard_normal((n, t)) * np.geomspace(1e-4, 30, t)
    return x, y


@pytest.mark.parametrize("n, d", [(150, 40), (50, 120)], ids=["long", "wide"])
@pytest.mark.parametrize("loo_dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_ridge_matches_sklearn_ridgecv(n, d, loo_dtype):
    x, y = graded(n + 30, d, 25, seed=n)
    x_tr, y_tr, x_te = x[:n], y[:n], x[n:]
    expected, alpha_sk = sklearn_predict(x_tr, y_tr, x_te, ALPHAS)
    fit = ridge_loo_fit_predict(torch.tensor(x_tr), torch.tensor(y_tr), torch.tensor(x_te), ALPHAS,
                                loo_dtype=loo_dtype)
    assert len(np.unique(alpha_sk)) >= 3  # the grid matters for this data
    np.testing.assert_array_equal(ALPHAS[fit.alpha_index.numpy()], alpha_sk)
    np.testing.assert_allclose(fit.predictions.numpy(), expected, atol=1e-6, rtol=0)


def test_ridge_with_pca_matches_sklearn_pipeline():
    x, y = graded(140, 30, 12, seed=3)
    expected, alpha_sk = sklearn_predict(x[:100], y[:100], x[100:], ALPHAS, n_components=8)
    fit = ridge_loo_fit_predict(torch.tensor(x[:100]), torch.tensor(y[:100]), torch.tensor(x[100:]), ALPHAS,
                                n_components=8)
    assert fit.n_components == 8
    np.testing.assert_array_equal(ALPHAS[fit.alpha_index.numpy()], alpha_sk)
    np.testing.assert_allclose(fit.predictions.numpy(), expected, atol=1e-6, rtol=0)


def test_single_precision_selection_refines_near_ties_to_the_double_precision_choice():
    # Pure-noise targets and huge penalties: the LOO error is flat to ~1e-7, below float32's resolution.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 20))
    y = np.concatenate([rng.standard_normal((300, 30)), x[:, :5] + 1e-5 * rng.standard_normal((300, 5))], 1)
    alphas = np.concatenate([ALPHAS, [1e6, 1e7, 1e8]])
    args = (torch.tensor(x[:250]), torch.tensor(y[:250]), torch.tensor(x[250:]), alphas)
    fast = ridge_loo_fit_predict(*args, loo_dtype=torch.float32)
    exact = ridge_loo_fit_predict(*args, loo_dtype=torch.float64)
    assert fast.n_refined > 0 and exact.n_refined == 0
    assert torch.equal(fast.alpha_index, exact.alpha_index)
    np.testing.assert_allclose(fast.predictions.numpy(), exact.predictions.numpy(), rtol=0, atol=1e-9)


def test_predictivity_equals_kfold_loop_of_sklearn_ridgecv():
    x, y = graded(120, 15, 8, seed=11)
    folds = np.arange(120) % 4
    res = predictivity(x, y, alphas=ALPHAS, relative_alphas=False, folds=folds, return_predictions=True)
    pred = np.empty_like(y)
    for k in range(4):
        te = folds == k
        pred[te], alpha_sk = sklearn_predict(x[~te], y[~te], x[te], ALPHAS)
        np.testing.assert_array_equal(res.alpha_per_fold[k], alpha_sk)
    np.testing.assert_allclose(res.predictions, pred, atol=1e-6, rtol=0)
    r = [np.corrcoef(pred[:, t], y[:, t])[0, 1] for t in range(y.shape[1])]
    np.testing.assert_allclose(res.r, r, atol=1e-8)


def test_planted_mapping_reaches_the_analytic_ceiling():
    # Signal variance v, noise sd sigma: the true mapping scores r* = sqrt(v / (v + sigma^2)). A mapping fitted
    # on n training stimuli with d features adds prediction variance ~ sigma^2 d / (n - d - 1) (OLS), which
    # lowers the expected r by the factor sqrt(v / (v + sigma^2 d / (n - d - 1))).
    noise = np.array([0.25, 0.5, 1.0, 1.5, 2.0])
    n, d, folds = 3000, 10, 5
    x, y, s, v = planted(n, d, noise)
    n_train = n * (folds - 1) / folds
    r_star = np.sqrt(v / (v + noise**2))
    fitting = np.sqrt(v / (v + noise**2 * d / (n_train - d - 1)))
    res = predictivity(x, y, n_folds=folds, ceiling=r_star)
    assert res.r.shape == (5,)
    np.testing.assert_allclose(res.r, r_star * fitting, atol=0.04)  # ~2.5 sampling SE of r at n = 3000
    # Against this sample's own oracle correlation, the sampling noise cancels and only fitting error remains.
    oracle = np.array([np.corrcoef(s[:, t], y[:, t])[0, 1] for t in range(noise.size)])
    np.testing.assert_allclose(res.r, oracle * fitting, atol=0.005)
    assert np.all(res.r < oracle)
    np.testing.assert_allclose(res.r_normalized, res.r / r_star)


def test_shuffled_mapping_scores_near_zero():
    noise = np.full(6, 0.5)
    x, y, _, _ = planted(2000, 10, noise, seed=1)
    real = predictivity(x, y)
    shuffled = predictivity(x, y[np.random.default_rng(0).permutation(len(y))])
    assert real.r.min() > 0.8
    assert np.abs(shuffled.r).max() < 4 / np.sqrt(len(y))  # within ~4 standard errors of 0


def test_relative_penalties_make_the_score_invariant_to_feature_scale():
    x, y = graded(200, 12, 6, seed=5)
    a = predictivity(x, y)
    b = predictivity(x * 1e4, y)
    np.testing.assert_allclose(a.r, b.r, atol=1e-8)
    np.testing.assert_allclose(b.alpha_grid / a.alpha_grid, 1e8, rtol=1e-6)


def test_nan_and_constant_targets_are_masked_and_counted():
    x, y = graded(100, 10, 6, seed=2)
    y = y.copy()
    y[[4, 9], 1] = np.nan  # a neuroid with missing stimuli
    y[:, 3] = 2.5  # a dead channel
    with pytest.warns(UserWarning, match="1 targets with NaN and 1 constant"):
        res = predictivity(x, y, alphas=ALPHAS, relative_alphas=False)
    assert res.n_masked == 2 and res.n_masked_nan == 1 and res.n_masked_constant == 1
    np.testing.assert_array_equal(res.masked, [False, True, False, True, False, False])
    assert np.isnan(res.r[[1, 3]]).all() and np.isfinite(res.r[[0, 2, 4, 5]]).all()
    assert np.isnan(res.alpha_per_fold[:, [1, 3]]).all()
    clean = predictivity(x[:, :], y[:, [0, 2, 4, 5]], alphas=ALPHAS, relative_alphas=False)
    np.testing.assert_allclose(res.r[[0, 2, 4, 5]], clean.r, atol=1e-12)
    assert res.summary()["n_masked"] == 2


def test_ceiling_normalisation_and_bad_ceilings():
    x, y, _, _ = planted(400, 5, np.full(4, 0.5), seed=3)
    ceiling = np.array([0.9, 0.0, -0.2, np.nan])
    res = predictivity(x, y, ceiling=ceiling)
    assert res.r_normalized[0] == pytest.approx(res.r[0] / 0.9)
    assert np.isnan(res.r_normalized[1:]).all()
    assert res.n_bad_ceiling == 3
    assert predictivity(x, y).r_normalized is None


def test_target_shape_is_kept_and_summaries_reshape_it():
    x, y, _, _ = planted(300, 6, np.linspace(0.2, 3, 12), seed=4)
    res = predictivity(x, y.reshape(300, 3, 4))  # (stimulus, neuroid, time)
    assert res.target_shape == (3, 4)
    grid = res.r.reshape(3, 4)
    np.testing.assert_allclose(res.per_time(), grid.mean(0))
    np.testing.assert_allclose(res.per_neuroid(), grid.mean(1))
    regions = res.per_region(["V4", "IT", "IT"])
    assert regions == pytest.approx({"V4": grid[0].mean(), "IT": grid[1:].mean()})


def test_summaries_ignore_nan():
    r = np.array([0.1, np.nan, 0.3, 0.5, np.nan, np.nan])
    res = PredictivityResult(r=r, r_normalized=r * 2, alpha_per_fold=np.ones((2, 6)), alpha_grid=np.ones((2, 1)),
                             masked=np.isnan(r), n_masked_nan=3, n_masked_constant=0, n_bad_ceiling=0,
                             target_shape=(3, 2), n_stimuli=10, n_features=2, n_folds=2,
                             n_components=np.array([2, 2]))
    # as (neuroid, time): [[0.1, nan], [0.3, 0.5], [nan, nan]]
    np.testing.assert_allclose(res.per_time(), [0.2, 0.5])
    np.testing.assert_allclose(res.per_neuroid(), [0.1, 0.4, np.nan])
    np.testing.assert_allclose(res.per_neuroid(normalized=True), [0.2, 0.8, np.nan])
    np.testing.assert_allclose(res.per_time((6,)), [0.3])
    assert res.per_region(["a", "a", "b"]) == pytest.approx({"a": 0.3, "b": np.nan}, nan_ok=True)
    with pytest.raises(ConfigError, match="shape"):
        res.per_time((4, 2))
    with pytest.raises(ConfigError, match="one label per neuroid"):
        res.per_region(["a", "b"])


def test_misaligned_stimulus_ids_raise():
    x, y, _, _ = planted(50, 4, np.ones(2))
    ids = [f"img{i:03d}" for i in range(50)]
    predictivity(x, y, feature_ids=ids, target_ids=list(ids))  # same order: fine
    swapped = ids.copy()
    swapped[3], swapped[7] = swapped[7], swapped[3]
    with pytest.raises(DataError, match="differ at 2 positions.*row 3"):
        predictivity(x, y, feature_ids=ids, target_ids=swapped)
    with pytest.raises(DataError, match="49 entries"):
        predictivity(x, y, feature_ids=ids[:-1])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_folds": 1}, ConfigError, "n_folds"),
    ({"n_folds": 20}, DataError, "too few"),
    ({"alphas": [1.0, -1.0]}, ConfigError, "positive"),
    ({"n_components": 0}, ConfigError, "n_components"),
    ({"folds": np.zeros(12)}, ConfigError, "single fold"),
    ({"ceiling": np.ones(3)}, ConfigError, "ceiling"),
])
def test_bad_configuration_raises(kwargs, error, match):
    x, y, _, _ = planted(12, 3, np.ones(2))
    with pytest.raises(error, match=match):
        predictivity(x, y, **kwargs)


def test_bad_data_raises():
    x, y, _, _ = planted(30, 3, np.ones(2))
    with pytest.raises(DataError, match="30 stimuli but targets have 29"):
        predictivity(x, y[:-1])
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(DataError, match="non-finite"):
        predictivity(bad, y)
    with pytest.raises(DataError, match="constant"):
        predictivity(np.ones_like(x), y)
    with pytest.raises(DataError, match="2-D"):
        predictivity(x[:, :, None], y)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu():
    x, y = graded(500, 40, 30, seed=9)
    cpu = predictivity(x, y)
    gpu = predictivity(x, y, device="cuda")
    np.testing.assert_allclose(gpu.r, cpu.r, atol=1e-6)
    np.testing.assert_array_equal(gpu.alpha_per_fold, cpu.alpha_per_fold)
