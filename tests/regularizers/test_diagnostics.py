"""Target diagnostics: pixel correlation, zeros after thresholding, effective rank, and their warnings."""

from __future__ import annotations

import pytest
import torch

from brainalign.config import DataConfig
from brainalign.data import load_data
from brainalign.regularizers.diagnostics import (
    compare_targets,
    effective_rank,
    identity_target,
    matrix_target,
    pixel_target,
    rows_target,
    target_diagnostics,
    thresholded,
)


@pytest.fixture(scope="module")
def images():
    return load_data(DataConfig()).train.images  # (1077, 1, 8, 8) digits


def test_identity_control_and_high_threshold_pixels_are_recognised_as_near_identical(images):
    n = len(images)
    identity, high = identity_target(n), thresholded(pixel_target(images), 0.95)
    d_id = target_diagnostics(identity, images)
    d_high = target_diagnostics(high, images)
    for d in (d_id, d_high):
        assert d["mostly_decorrelation"] and any("mostly decorrelation" in w for w in d["warnings"])
        assert d["zero_share"] > 0.99
    assert d_id["zero_share"] == 1.0 and d_id["offdiag_rms"] == 0.0 and d_id["pixel_correlation"] is None
    assert d_id["effective_rank_ratio"] == pytest.approx(1.0)
    same = compare_targets(identity, high)
    assert same["near_identical"] and same["agreement"] > 0.99
    # A low threshold keeps real structure: not identity-like.
    low = thresholded(pixel_target(images), 0.2)
    assert not compare_targets(identity, low)["near_identical"]
    assert not target_diagnostics(low, images)["mostly_decorrelation"]


def test_a_neural_target_that_is_mostly_pixels_is_flagged(images):
    pixels = images.flatten(1)
    gen = torch.Generator().manual_seed(0)
    mostly_pixels = pixels @ torch.randn(64, 40, generator=gen)  # a linear read-out of the pixels
    d = target_diagnostics(rows_target(mostly_pixels), images)
    assert d["pixel_correlation"] > 0.8 and d["mostly_pixels"]
    assert any("mostly pixels" in w for w in d["warnings"])
    assert target_diagnostics(rows_target(mostly_pixels), images, neural=False)["warnings"] == []
    # Structure unrelated to pixels: a low-rank random population code.
    other = torch.randn(len(images), 5, generator=gen) @ torch.randn(5, 40, generator=gen)
    d = target_diagnostics(rows_target(other), images)
    assert abs(d["pixel_correlation"]) < 0.1 and d["warnings"] == []
    assert d["effective_rank"] < 6  # rank 5


def test_pixel_correlation_of_pixels_is_one_and_a_shuffle_destroys_it(images):
    d = target_diagnostics(pixel_target(images), images, neural=False)
    assert d["pixel_correlation"] == pytest.approx(1.0)
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    shuffled = target_diagnostics(rows_target(images.flatten(1)[perm]), images)
    assert abs(shuffled["pixel_correlation"]) < 0.1


def test_explicit_matrix_and_effective_rank():
    s = torch.eye(6)
    s[0, 1] = s[1, 0] = 1.0  # stimuli 0 and 1 identical
    d = target_diagnostics(matrix_target(s), None, n_pairs=2_000)
    assert d["zero_share"] == pytest.approx(14 / 15, abs=0.03)
    assert effective_rank(torch.eye(4)) == pytest.approx(4.0)
    assert effective_rank(torch.ones(4, 4)) == pytest.approx(1.0)
    assert effective_rank(torch.zeros(3, 3)) == 0.0
