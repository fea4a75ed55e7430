"""The trained CNN encoder (regularizers.encoder): cross-validated, deterministic, cached; and the targets it feeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.errors import ConfigError, DataError
from brainalign.regularizers.encoder import EncoderSettings, fingerprint, fit_encoder

# Small settings: a few seconds on one thread.
FAST = dict(channels=8, max_epochs=4, folds=3)


def _sim_v1(n=300, n_units=16, n_reps=8, seed=0):
    from brainalign.neural import load_recording

    rec = load_recording("sim_v1", n_stimuli=n, n_units=n_units, n_reps=n_reps, seed=seed)
    images = torch.from_numpy(np.asarray(rec.load_images(size=8, channels=1), dtype=np.float32))
    return rec, images, torch.from_numpy(rec.average().reshape(n, -1).astype(np.float32))


def test_encoder_is_deterministic_under_its_seed_and_changes_with_it():
    _, images, y = _sim_v1(n=120, n_units=6)
    a = fit_encoder(images, y, EncoderSettings(**FAST, seed=3), cache=False)
    b = fit_encoder(images, y, EncoderSettings(**FAST, seed=3), cache=False)
    c = fit_encoder(images, y, EncoderSettings(**FAST, seed=4), cache=False)
    assert torch.equal(a.predict(images), b.predict(images))
    np.testing.assert_array_equal(a.heldout_r_per_output, b.heldout_r_per_output)
    assert not torch.equal(a.predict(images), c.predict(images))
    assert a.cache == "off" and len(a.models) == 3 and a.heldout_r_per_output.shape == (6,)
    assert a.loss == "poisson"  # spike counts are non-negative: auto picks the Poisson loss
    assert bool((a.predict(images) >= 0).all())


def test_encoder_cache_miss_then_hit_and_a_corrupt_file_is_replaced(tmp_path):
    _, images, y = _sim_v1(n=90, n_units=4)
    settings = EncoderSettings(**FAST, seed=1)
    first = fit_encoder(images, y, settings, cache_dir=tmp_path)
    files = list((tmp_path / "encoders").glob("*.safetensors"))
    assert first.cache == "miss" and [f.name for f in files] == [f"{fingerprint(images, y, settings)}.safetensors"]
    assert not list((tmp_path / "encoders").glob("*.tmp"))  # written atomically
    again = fit_encoder(images, y, settings, cache_dir=tmp_path)
    assert again.cache == "hit" and again.epochs == first.epochs
    assert torch.equal(again.predict(images), first.predict(images))
    np.testing.assert_array_equal(again.heldout_r_per_output, first.heldout_r_per_output)
    # Another setting, other responses or other images: another key, so a miss.
    assert fit_encoder(images, y, EncoderSettings(**FAST, seed=2), cache_dir=tmp_path).cache == "miss"
    assert fit_encoder(images, y + 1, settings, cache_dir=tmp_path).cache == "miss"
    assert fingerprint(images.flip(-1), y, settings) != fingerprint(images, y, settings)
    files[0].write_bytes(b"not a checkpoint")
    redone = fit_encoder(images, y, settings, cache_dir=tmp_path)
    assert redone.cache == "miss" and torch.equal(redone.predict(images), first.predict(images))


def test_encoder_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    _, images, y = _sim_v1(n=90, n_units=4)
    monkeypatch.setenv("BRAINALIGN_CACHE_DIR", str(tmp_path / "c"))
    assert fit_encoder(images, y, EncoderSettings(**FAST)).cache == "miss"
    assert len(list((tmp_path / "c" / "encoders").glob("*.safetensors"))) == 1


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_encoder_predicts_held_out_responses_of_a_population_with_known_structure(seed):
    """sim_v1: Gabor simple and complex cells with Poisson noise. The out-of-fold r of every cell is bounded by
    its noise ceiling; the encoder must reach a large share of it. Measured under ATEN_CPU_CAPABILITY=default
    and avx2, seeds 0-2 (identical under both): mean r 0.727-0.731, mean r / bound 0.817-0.820, shuffled
    responses -0.104 to -0.061."""
    from brainalign.neural.simulations import implied_noise_ceiling

    rec, images, y = _sim_v1(n=300, n_units=16, n_reps=8)
    enc = fit_encoder(images, y, EncoderSettings(channels=8, seed=seed), cache=False)
    r = enc.heldout_r_per_output
    # r with the trial-averaged responses is bounded by sqrt(s / (s + v / R)) (the noise-free signal's r).
    bound = np.sqrt(np.clip(implied_noise_ceiling(rec, "ncsnr")[:, 0], 0, 1))
    assert np.isfinite(r).all() and float(np.mean(r)) > 0.6
    assert float(np.mean(r / bound)) > 0.7
    # Shuffled responses carry no image structure: held-out r collapses.
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    noise = fit_encoder(images, y[perm], EncoderSettings(channels=8, seed=seed), cache=False)
    assert noise.heldout_r < 0.1


def test_encoder_refuses_bad_input_with_one_line():
    _, images, y = _sim_v1(n=60, n_units=3)
    with pytest.raises(DataError, match="too few"):
        fit_encoder(images[:12], y[:12], EncoderSettings(**FAST), cache=False)
    with pytest.raises(DataError, match="NaN"):
        fit_encoder(images, y.masked_fill(y > 5, float("nan")), EncoderSettings(**FAST), cache=False)
    with pytest.raises(DataError, match="non-negative"):
        fit_encoder(images, y - 10, EncoderSettings(**FAST, loss="poisson"), cache=False)
    for bad in ({"readout": "conv"}, {"folds": 1}, {"kernel": 4}, {"lr": 0.0}, {"pool": -1}):
        with pytest.raises(ConfigError):
            EncoderSettings(**bad)


def test_mse_encoder_predicts_on_the_responses_scale():
    _, images, y = _sim_v1(n=120, n_units=6)
    centred = y - y.mean(0)  # negative values: auto picks mse
    enc = fit_encoder(images, centred, EncoderSettings(**FAST), cache=False)
    assert enc.loss == "mse"
    pred = enc.predict(images)
    assert pred.shape == centred.shape and abs(float(pred.mean())) < 0.5 * float(centred.std())


def test_cnn_and_ridge_predictors_are_scored_on_the_same_folds():
    from brainalign.alignment.predictivity import fold_labels
    from brainalign.regularizers.targets import fit_recording_predictor

    _, images, y = _sim_v1(n=100, n_units=4)
    ridge = fit_recording_predictor(images, y, "ridge", seed=5)
    assert ridge.heldout_r_per_output.shape == (4,) and ridge.describe()["kind"] == "random-feature ridge"
    # Out-of-fold predictions by hand, on the folds both use, give the reported r.
    from sklearn.linear_model import RidgeCV

    from brainalign.regularizers.predictor import ALPHAS
    feats = (ridge.features(images) - ridge.feature_mean) / ridge.feature_std
    labels = fold_labels(100, 5, None, 5)
    oof = np.zeros((100, 4))
    for k in range(5):
        tr, te = labels != k, labels == k
        oof[te] = RidgeCV(alphas=ALPHAS).fit(feats[tr], y[tr].double().numpy()).predict(feats[te])
    expected = [np.corrcoef(oof[:, j], y[:, j].double().numpy())[0, 1] for j in range(4)]
    np.testing.assert_allclose(ridge.heldout_r_per_output, expected, atol=1e-10)


# ---- the targets the predictors feed (regularizers.targets) ------------------------------------------------


def test_denoising_weights_are_reliability_times_held_out_r_clipped_at_zero():
    from brainalign.regularizers.targets import denoising_weights

    reliability = np.array([0.8, 0.5, -0.2, 0.9])
    heldout_r = np.array([[0.5, 0.7], [0.4, np.nan], [0.9, 0.9], [-0.3, -0.1]])  # (neuroid, time)
    np.testing.assert_allclose(denoising_weights(reliability, heldout_r), [0.8 * 0.6, 0.5 * 0.2, 0.0, 0.0])


def test_a_bare_neural_similarity_uses_the_denoised_target_and_raw_and_shuffled_remain(tiny_config):
    from brainalign.registry import REGULARIZERS
    from brainalign.regularizers.targets import TARGET_OPTIONS
    from brainalign.train import build_trainee

    assert dict(REGULARIZERS.info("neural_similarity").target_defaults)["targets"] == "denoised"
    assert {"targets", "predictor", "predictor_seed"} <= set(TARGET_OPTIONS)
    for name in ("neural_prediction", "cka", "dcca"):  # regularizers whose papers used measured responses
        assert dict(REGULARIZERS.info(name).target_defaults).get("targets", "average") == "average"
    rec = {"name": "sim_v1", "options": {"n_units": 10}}
    small = {"data": {"max_train": 200}, "model": {"name": "small_cnn", "width": 4}}

    def built(**spec):
        trainee = build_trainee(tiny_config(regularizers=[{"name": "neural_similarity", "weight": 1.0,
                                                           "recording": rec, **spec}], **small))
        return trainee.regularizers[0][0]

    bare = built()
    info = bare.target_info
    assert info["targets"] == "denoised" and info["predictor"]["kind"] == "cnn encoder"
    assert info["neuroid_weights"] == "reliability x held-out prediction r" and info["predictor"]["heldout_r"] > 0.3
    per_neuroid = info["predictor"]["heldout_r_per_neuroid"]  # measured 0.668 mean, default and avx2 kernels
    assert len(per_neuroid) == 10 and np.mean(per_neuroid) == pytest.approx(info["predictor"]["heldout_r"], abs=1e-3)
    # The target is the encoder's prediction, neuroid n scaled by reliability_n x r_n.
    from brainalign.neural import load_recording
    from brainalign.regularizers.encoder import EncoderSettings, fit_encoder
    from brainalign.regularizers.targets import _reliability, denoising_weights

    trainee_data = build_trainee(tiny_config(**small)).data
    ids = [f"train-{i:05d}" for i in range(len(trainee_data.train))]
    full = load_recording("sim_v1", images=trainee_data.train.images.numpy(),
                          labels=trainee_data.train.labels.numpy(), stimulus_ids=ids, n_units=10).split("train")
    keep = [ids.index(s) for s in full.stimulus_ids]
    images = trainee_data.train.images[keep]
    y = torch.from_numpy(full.average().reshape(len(keep), -1))
    enc = fit_encoder(images, y, EncoderSettings(seed=0))
    assert enc.cache == "hit"  # the build trained and cached this very encoder
    w = denoising_weights(_reliability(full), enc.heldout_r_per_output.reshape(-1, 1))
    expected = enc.predict(images)[:, w > 0] * torch.from_numpy(w[w > 0]).float()
    torch.testing.assert_close(bare.reg_set.targets, expected)
    # Raw responses stay an option, and so do the ridge predictor and the shuffled control.
    raw = built(params={"targets": "average"})
    assert raw.target_info["targets"] == "average" and "predictor" not in raw.target_info
    torch.testing.assert_close(raw.reg_set.targets, y)
    ridge = built(params={"predictor": "ridge"})
    assert ridge.target_info["predictor"]["kind"] == "random-feature ridge"
    shuffled = built(control="shuffled")
    assert shuffled.reg_set.control == "shuffled" and shuffled.target_info["targets"] == "denoised"
    assert not torch.equal(shuffled.reg_set.targets, bare.reg_set.targets)
    assert sorted(map(tuple, shuffled.reg_set.targets.tolist())) == sorted(map(tuple, bare.reg_set.targets.tolist()))
    with pytest.raises(ConfigError, match="predictor must be one of"):
        built(params={"predictor": "vgg"})
