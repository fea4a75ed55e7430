"""Bare cka and dcca terms get their papers' settings: cka's neural batch, time window, scaled warm-up and
BatchNorm handling (Dapello et al., dapello/braintree); dcca's convex weighting, V1-like layer and PCA
(Pirlot et al.)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from brainalign.errors import ConfigError
from brainalign.regularizers.cka import WARMUP_FRACTION, scaled_warmup
from brainalign.regularizers.dcca import principal_components
from brainalign.train import build_trainee


def test_warmup_keeps_the_papers_fraction_of_training():
    assert WARMUP_FRACTION == 2500 / 48_000
    assert scaled_warmup(48_000) == 2500  # the paper's own run
    assert scaled_warmup(480) == 25
    assert scaled_warmup(0) == 0


def test_bare_cka_uses_batch_128_the_window_and_a_scaled_warmup(tiny_config):
    config = tiny_config(regularizers=[{"name": "cka", "recording": {"name": "sim_it"}}],
                         train={"epochs": 3, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0,
                                "reg_batch_size": 32})
    trainee = build_trainee(config)
    reg = trainee.regularizers[0][0]
    steps = 3 * math.ceil(len(trainee.data.train) / config.train.batch_size)
    assert reg.batch_size == 128  # not the run's reg_batch_size (32)
    assert reg.warmup_steps == round(steps * 2500 / 48_000) > 0
    assert reg.bn == "running"
    info = reg.target_info
    assert info["warmup_steps"] == reg.warmup_steps and info["batch_size"] == 128
    assert info["time_window"].startswith("70-170 ms")  # sim_it's bin (70 ms) lies in the window
    assert info["target_shape"][-1] == 1  # time-averaged
    assert len(reg.sample(len(reg.reg_set), torch.Generator().manual_seed(0))) == 128


def test_cka_window_falls_back_to_the_recordings_own(tiny_config):
    # sim_v1's only bin is at 50 ms: outside 70-170 ms, so the recording's stated window is kept and said so.
    reg = build_trainee(tiny_config(regularizers=[{"name": "cka", "recording": {"name": "sim_v1"}}])).regularizers[0][0]
    assert reg.target_info["time_window"].startswith("the recording's own window")
    # An explicit window is the user's: a window without bins is still an error.
    explicit = {"name": "cka", "recording": {"name": "sim_it"}, "params": {"time_window": [0, 60]}}
    with pytest.raises(ConfigError, match="no time points"):
        build_trainee(tiny_config(regularizers=[explicit]))


def test_cka_neural_stimuli_use_and_keep_the_running_batchnorm_statistics(tiny_config):
    config = tiny_config(model={"name": "resnet18", "width": 8},
                         regularizers=[{"name": "cka", "recording": {"name": "sim_it"},
                                        "params": {"warmup_steps": 0, "batch_size": 16}}])
    trainee = build_trainee(config)
    reg, model = trainee.regularizers[0][0], trainee.model
    model.train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    images = reg.reg_set.images[:16]
    feats = reg.stimulus_features(model, images)
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norms, strict=True))  # untouched
    assert all(m.training for m in norms)  # the classification stream trains as before
    model.eval()
    expected = model.features(images, reg.layers)
    model.train()
    for name in reg.layers:
        torch.testing.assert_close(feats[name], expected[name])  # normalised with the running statistics
    feats[reg.layers[0]].sum().backward()  # and the gradient flows into the model
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # bn: batch normalises by the neural batch and updates the running statistics (adapt_bn_to_stim=1).
    reg.bn = "batch"
    reg.stimulus_features(model, images)
    assert any(not torch.equal(a, m.running_mean) for a, m in zip(before, norms, strict=True))


def test_bare_dcca_is_convex_on_the_first_block_with_80_pcs(tiny_config):
    config = tiny_config(regularizers=[{"name": "dcca", "recording": {"name": "sim_v1"},
                                        "params": {"hidden": [16]}}])
    reg = build_trainee(config).regularizers[0][0]
    assert reg.weighting == "convex" and reg.lam == 0.5 and reg.transforms_ce
    assert reg.layers == ("conv1",)  # small_cnn's V1-like block
    assert reg.pca == 80 and reg.targets.shape[1] == 80  # sim_v1 here: 128 neuroids -> 80 PCs
    assert reg.neural_head[0].in_features == 80


def test_principal_components_match_scikit_learn():
    y = torch.randn(60, 12, generator=torch.Generator().manual_seed(0)) @ torch.randn(12, 12)
    ours = principal_components(y, 5).double().numpy()
    ref = PCA(n_components=5).fit_transform(y.double().numpy())
    np.testing.assert_allclose(np.abs(ours), np.abs(ref), rtol=1e-5, atol=1e-5)  # up to each column's sign
    assert principal_components(y[:4], 80).shape == (4, 3)  # at most N - 1 components
    assert principal_components(y, None) is y
