"""build_regularizers: regularization sets, controls, target_info, and every bad input refused before training."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from brainalign.errors import ConfigError, DataError
from brainalign.regularizers import build_regularizers
from brainalign.regularizers.base import RegularizationSet
from brainalign.regularizers.diagnostics import pixel_target, target_diagnostics
from brainalign.regularizers.pixel_continuous import PixelContinuous
from brainalign.train import build_trainee, train

SIM_V1 = {"name": "sim_v1", "options": {"n_units": 24}}


def _build(tiny_config, regs, **overrides):
    trainee = build_trainee(tiny_config(regularizers=regs, **overrides))
    return trainee, trainee.regularizers


def _refused(tiny_config, regs, error, match, **overrides):
    """The run fails with a one-line error before anything is written."""
    config = tiny_config(regularizers=regs, **overrides)
    with pytest.raises(error, match=match):
        train(config, progress=False, evaluate=False)
    assert not config.run_dir.exists()


def test_stacked_regularizers_with_their_own_weights_and_target_info(tiny_config):
    regs = [{"name": "neural_similarity", "weight": 2.0, "recording": SIM_V1},
            {"name": "pixel_similarity", "weight": 0.5, "params": {"threshold": 0.8}},
            {"name": "spectral", "weight": 0.1}]
    small = {"model": {"name": "small_cnn", "width": 4}, "data": {"max_train": 300}}
    trainee, built = _build(tiny_config, regs, **small)
    assert [w for _, w in built] == [2.0, 0.5, 0.1]
    ns, ps, sp = (r for r, _ in built)
    assert ns.layers == ("conv1", "conv2", "conv3") and sp.layers == ("fc",)  # defaults: stages / penultimate
    data = trainee.data
    # The simulated brain saw the training images; its held-out split is kept out of the regularization set.
    info = ns.target_info
    assert info["simulated"] is True and info["recording"] == "sim_v1" and info["split"] == "train"
    assert info["n_recording_stimuli"] == len(data.train) > info["n_stimuli"] == len(ns.reg_set)
    k = int(ns.reg_set.stimulus_ids[0].split("-")[1])
    assert torch.equal(ns.reg_set.images[0], data.train.images[k])
    # The default target is denoised: neuroids whose reliability x held-out r is <= 0 are dropped.
    kept = info["neuroids_kept"]
    assert info["targets"] == "denoised" and info["predictor"]["kind"] == "cnn encoder" and 12 <= kept <= 24
    assert ns.reg_set.targets.shape == (len(ns.reg_set), kept) and info["target_shape"] == [kept, 1]
    assert set(info["diagnostics"]) >= {"pixel_correlation", "zero_share", "effective_rank", "warnings"}
    # Pixel targets: mean-image-subtracted pixels of the training images; never "simulated".
    assert ps.reg_set.targets.shape == (len(data.train), 64)
    assert torch.allclose(ps.reg_set.targets.mean(0), torch.zeros(64), atol=1e-5)
    assert ps.target_info["simulated"] is False and ps.target_info["diagnostics"]["mostly_decorrelation"]
    assert sp.target_info["source"] == "none" and sp.reg_set is None
    # Every target_info is JSON-ready.
    import json
    json.dumps([r.target_info for r, _ in built])
    # Training runs with the stack and writes the target info into result.json.
    run_dir = train(tiny_config(regularizers=regs, **small, train={"epochs": 1, "optimizer": "adam", "lr": 0.003}),
                    progress=False, evaluate=False)
    result = json.loads((run_dir / "result.json").read_text())
    assert [t["name"] for t in result["regularization_targets"]] == ["neural_similarity", "pixel_similarity",
                                                                     "spectral"]
    assert result["simulated_data"] is True


def test_shuffled_control_permutes_the_targets_across_stimuli(tiny_config):
    regs = [{"name": "pixel_continuous", "weight": 1.0},
            {"name": "pixel_continuous", "weight": 1.0, "control": "shuffled"},
            {"name": "neural_prediction", "weight": 1.0, "recording": SIM_V1, "control": "shuffled"},
            {"name": "neural_prediction", "weight": 1.0, "recording": SIM_V1}]
    _, built = _build(tiny_config, regs, data={"max_train": 300})
    (real, _), (shuf, _), (nshuf, _), (nreal, _) = built
    assert real.reg_set.stimulus_ids == shuf.reg_set.stimulus_ids  # same images, in the same order
    a, b = real.reg_set.targets, shuf.reg_set.targets
    match = (a[:, None, :] == b[None, :, :]).all(-1)  # (N, N): row i of real equals row j of shuffled
    perm = match.float().argmax(0)
    assert torch.equal(a[perm], b)  # every shuffled row is some real row ...
    assert bool((perm != torch.arange(len(a))).all())  # ... and none stays with its own image
    assert shuf.target_info["control"] == "shuffled" and "shuffled" in shuf.reg_set.description
    assert abs(shuf.target_info["diagnostics"]["pixel_correlation"]) < 0.1 < \
        real.target_info["diagnostics"]["pixel_correlation"]
    assert not torch.equal(nshuf.reg_set.targets, nreal.reg_set.targets)
    assert torch.equal(nshuf.reg_set.targets.sort(0).values, nreal.reg_set.targets.sort(0).values)


def test_random_control_and_target_options(tiny_config):
    regs = [{"name": "cka", "weight": 1.0, "recording": SIM_V1, "control": "random",
             "params": {"warmup_steps": 0, "targets": "reliability", "split": "all"}},
            {"name": "neural_similarity", "weight": 1.0, "recording": {"name": "sim_eeg"},
             "params": {"time_window": [50, 250], "time_average": True, "region": None}},
            {"name": "neural_prediction", "weight": 1.0, "recording": {"name": "sim_fmri"},
             "params": {"targets": "predicted", "stimuli": "train", "region": "V1", "standardize": True}}]
    trainee, built = _build(tiny_config, regs, data={"max_train": 200})
    (cka, _), (eeg, _), (fmri, _) = built
    assert cka.target_info["control"] == "random" and len(cka.reg_set) == len(trainee.data.train)
    assert eeg.reg_set.target_shape == (17, 1) and eeg.target_info["target_shape"] == [17, 1]
    info = fmri.target_info
    assert info["stimuli"] == "train" and len(fmri.reg_set) == len(trainee.data.train)
    assert 0.0 < info["predictor"]["heldout_r"] <= 1.0
    assert fmri.reg_set.targets.shape[1] == 40  # one ROI's voxels
    assert torch.allclose(fmri.reg_set.targets.std(0), torch.ones(40), atol=1e-3)


@pytest.mark.parametrize("regs, error, match", [
    ([{"name": "pixel_similarity", "params": {"layers": ["conv9"]}}], ConfigError, "conv9.*valid: conv1"),
    ([{"name": "spectral"}], ConfigError, "batch_size=64 must exceed the width of layer 'fc'"),
    ([{"name": "decorrelation", "control": "shuffled"}], ConfigError, "needs data-driven targets"),
    ([{"name": "spectral", "control": "random"}], ConfigError, "needs data-driven targets"),
    ([{"name": "neural_similarity"}], ConfigError, "needs a recording"),
    ([{"name": "pixel_similarity", "params": {"threshhold": 0.5}}], ConfigError, "unknown parameter 'threshhold'"),
    ([{"name": "pixel_similarity", "params": {"threshold": 1.5}}], ConfigError, "threshold must be in"),
    ([{"name": "cka", "recording": SIM_V1, "params": {"warmup_steps": 2500}}], ConfigError,
     "warmup_steps=2500 >= the run's 51 training steps"),
    ([{"name": "neural_prediction", "recording": SIM_V1, "params": {"stimuli": "train"}}], ConfigError,
     "stimuli: train needs targets: predicted"),
    ([{"name": "pixel_similarity"},
      {"name": "neural_prediction", "recording": SIM_V1, "params": {"weighting": "uncertainty"}}],
     ConfigError, "must be the first regularizer"),
    ([{"name": "neural_prediction", "recording": {"name": "sim_eeg"}, "params": {"loss": "poisson"}}],
     DataError, "non-negative"),
])
def test_bad_settings_are_refused_before_training(tiny_config, regs, error, match):
    _refused(tiny_config, [{"weight": 1.0, **r} for r in regs], error, match, model={"name": "small_cnn",
                                                                                     "width": 32})


def test_recording_ids_that_do_not_match_are_refused(tiny_config, monkeypatch):
    import brainalign.neural as neural

    real = neural.load_recording

    def renamed(name, path=None, **options):
        rec = real(name, path, **options)
        ids = rec.stimulus_ids.copy()
        ids[3] = "someone-else"
        meta = rec.stimulus_meta.copy()
        meta["stimulus_id"] = ids
        return rec.derive(None, stimulus_ids=ids, stimulus_meta=meta, images=None)

    monkeypatch.setattr(neural, "load_recording", renamed)
    _refused(tiny_config, [{"name": "cka", "recording": SIM_V1, "params": {"warmup_steps": 0}}], DataError,
             "stimulus ids do not match.*stimulus 3 is 'someone-else', expected 'train-00003'")


def test_non_finite_targets_are_refused(tiny_config, monkeypatch):
    import brainalign.neural as neural

    real = neural.load_recording

    def broken(name, path=None, **options):
        rec = real(name, path, **options)
        responses = rec.responses.copy()
        responses[5, :, 2] = np.nan  # a neuroid with no valid repetition for stimulus 5
        return rec.derive(None, responses=responses)

    monkeypatch.setattr(neural, "load_recording", broken)
    _refused(tiny_config, [{"name": "neural_similarity", "recording": SIM_V1, "params": {"split": "all"}}],
             DataError, "averaged responses are NaN")


def test_similarity_targets_stay_linear_in_the_number_of_stimuli():
    """73,000 NSD images: nothing N x N. With N = 30,000 an N x N float matrix would need 3.6 GB."""
    from brainalign.config import ModelConfig
    from brainalign.models import build_model

    n = 30_000
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 4, 4, generator=gen)
    pixels = images.flatten(1)
    reg_set = RegularizationSet(images, [f"s{i}" for i in range(n)], pixels - pixels.mean(0))
    model = build_model(ModelConfig(name="small_cnn", width=4), 3, 1, 4)
    start = time.perf_counter()
    reg = PixelContinuous(batch_size=32, pairing="batch")
    reg.setup(model, reg_set)
    index = reg.sample(n, gen)
    value = reg(model.features(images[index], reg.layers), index)
    diag = target_diagnostics(pixel_target(images), images, n_pairs=5_000, rank_stimuli=200)
    assert torch.isfinite(value) and diag["n_stimuli"] == n
    assert time.perf_counter() - start < 20
    big = [name for name, t in vars(reg).items() if isinstance(t, torch.Tensor) and t.numel() >= n * n]
    assert not big and reg.rows.shape == (n, 16)


def test_build_without_regularizers_is_empty(tiny_config):
    trainee = build_trainee(tiny_config())
    assert build_regularizers(trainee.config, trainee.model, trainee.data) == []
