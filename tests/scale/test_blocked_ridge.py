"""Ridge predictivity over blocks of targets equals the one-block fit (bounded memory for 10^4-10^5 targets)."""

from __future__ import annotations

import numpy as np
import pytest

from brainalign.alignment.predictivity import predictivity
from brainalign.errors import ConfigError, DataError


def test_blocked_fit_equals_one_block():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 10))
    y = (x @ rng.standard_normal((10, 6 * 5)) + rng.standard_normal((120, 30))).reshape(120, 6, 5)
    y[:, 2, 3] = np.nan  # a masked target inside one block
    ceiling = rng.uniform(0.3, 0.9, (6, 5))
    with pytest.warns(UserWarning, match="1 targets with NaN"):
        whole = predictivity(x, y, ceiling=ceiling, return_predictions=True)
    with pytest.warns(UserWarning, match="1 targets with NaN"):
        blocked = predictivity(x, y, ceiling=ceiling, return_predictions=True, target_block=7)
    np.testing.assert_allclose(blocked.r, whole.r, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(blocked.r_normalized, whole.r_normalized, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(blocked.alpha_per_fold, whole.alpha_per_fold, equal_nan=True)
    np.testing.assert_allclose(blocked.predictions, whole.predictions, rtol=1e-10, equal_nan=True)
    assert blocked.target_shape == (6, 5) and blocked.n_masked == whole.n_masked == 1
    assert blocked.summary() == pytest.approx(whole.summary(), nan_ok=True)
    with pytest.raises(ConfigError, match="target_block"):
        predictivity(x, y, target_block=0)


def test_float32_targets_are_not_upcast_whole_and_give_the_float64_result():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((90, 8))
    y32 = (x @ rng.standard_normal((8, 12)) + rng.standard_normal((90, 12))).astype(np.float32)
    whole = predictivity(x, y32.astype(np.float64), return_predictions=True)
    blocked = predictivity(x, y32, return_predictions=True, target_block=5)  # each block converted on its own
    np.testing.assert_array_equal(blocked.r, whole.r)
    np.testing.assert_array_equal(blocked.predictions, whole.predictions)
    y32[3, 4] = np.inf
    with pytest.raises(DataError, match="1 infinite"):
        predictivity(x, y32, target_block=5)
