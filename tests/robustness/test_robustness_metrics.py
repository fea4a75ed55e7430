"""Robustness metrics: AUC, minimal-perturbation medians, gains over a baseline, paired tests."""

from __future__ import annotations

import math

import pytest
import torch

from brainalign.analysis import stats
from brainalign.errors import ConfigError, DataError
from brainalign.robustness import (
    accuracy_from_distances,
    auc,
    high_strengths,
    mcnemar,
    median_minimal_perturbation,
    robustness_gain,
)
from brainalign.robustness import metrics as robustness_metrics


def test_auc_is_the_mean_accuracy_over_the_strength_range():
    assert auc([0, 1], [1.0, 0.0]) == pytest.approx(0.5)
    assert auc([0.2, 0.0, 0.1], [0.0, 1.0, 0.5]) == pytest.approx(0.5)  # unsorted grids are sorted
    assert auc([0.0, 0.1, 0.3], [0.9, 0.5, 0.1]) == pytest.approx((0.1 * 0.7 + 0.2 * 0.3) / 0.3)
    with pytest.raises(ConfigError):
        auc([0, 1], [1.0])


def test_minimal_perturbation_median_and_accuracy():
    d = torch.tensor([0.0, 0.2, 0.4, math.inf, 1.0])
    out = median_minimal_perturbation(d)
    assert out["median"] == pytest.approx(0.4)
    assert out["found_fraction"] == pytest.approx(0.8)
    assert out["median_of_found"] == pytest.approx(0.3)
    assert median_minimal_perturbation(torch.tensor([0.1, math.inf, math.inf]))["median"] is None
    assert accuracy_from_distances(d, [0.0, 0.3, 2.0]) == pytest.approx([0.8, 0.6, 0.2])


def test_gain_averages_the_high_strength_half():
    eps = [0.0, 0.1, 0.2, 0.3, 0.4]
    assert high_strengths(eps) == [0.3, 0.4]
    assert high_strengths(eps, eps_min=0.2) == [0.2, 0.3, 0.4]
    out = robustness_gain(eps, [0.9, 0.7, 0.5, 0.4, 0.3], [0.95, 0.6, 0.4, 0.2, 0.2])
    assert out["gain"] == pytest.approx((0.2 + 0.1) / 2)
    assert out["eps"] == [0.3, 0.4]
    with pytest.raises(ConfigError):
        high_strengths(eps, eps_min=1.0)


def test_mcnemar_on_paired_outcomes():
    a = torch.tensor([1] * 60 + [0] * 40, dtype=torch.bool)
    b = torch.tensor([1] * 40 + [0] * 60, dtype=torch.bool)
    out = mcnemar(a, b)
    assert (out["n"], out["n_base_only"], out["n_other_only"]) == (100, 20, 0)
    assert out["p_exact"] == pytest.approx(2 * 0.5**20)
    assert mcnemar(a, a)["p_exact"] == 1.0
    with pytest.raises(DataError):
        mcnemar(a, b[:10])


def test_mcnemar_is_defined_once():
    assert mcnemar is stats.mcnemar and robustness_metrics.mcnemar is stats.mcnemar
