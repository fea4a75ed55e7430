"""Simulated recordings: labelled as simulated, reproducible, and with the noise ceilings and the
representational structure that the simulation implies."""

import json

import numpy as np
import pytest

from brainalign.errors import ConfigError
from brainalign.neural import (
    default_images,
    format_inspection,
    implied_noise_ceiling,
    inspect_recording,
    load_recording,
    loading,
    pixel_redundancy,
    simulate,
    simulate_to_disk,
)
from brainalign.registry import NEURAL_LOADERS

SIMS = ("sim_v1", "sim_eeg", "sim_fmri", "sim_it")


@pytest.mark.parametrize("name", SIMS)
def test_every_simulation_is_a_labelled_recording(name):
    rec = load_recording(name, n_stimuli=40, seed=0)
    assert rec.attrs["simulated"] is True and "simulated" in rec.attrs["licence"].lower()
    assert rec.stimulus_ids[0] == "digits-0000" and rec.labels[:3].tolist() == ["0", "1", "2"]
    assert set(rec.stimulus_meta["split"]) <= {"train", "test"}
    images = rec.load_images()
    assert images.shape == (40, 1, 8, 8) and images.dtype == np.float32
    np.testing.assert_array_equal(images, default_images(40)[0])
    assert np.isfinite(rec.responses).all()
    truth = rec.attrs["ground_truth"]
    assert truth["signal_var"].shape == truth["noise_var"].shape == (rec.n_neuroids, rec.n_times)
    assert NEURAL_LOADERS.info(name).simulated


def test_eeg_has_the_things_eeg2_layout():
    rec = load_recording("sim_eeg", n_stimuli=30, seed=0)
    assert rec.responses.shape == (30, 4, 17, 100)
    assert rec.neuroid_meta["name"].tolist()[:3] == ["P7", "P5", "P3"] and rec.neuroid_meta["name"].iloc[-1] == "O2"
    assert rec.time_ms[0] == -200 and rec.time_ms[-1] == 790


@pytest.mark.parametrize("name", SIMS)
def test_reproducible_under_seed(name):
    a = load_recording(name, n_stimuli=25, seed=3)
    loading._SIMULATIONS.clear()  # simulate again, not from the process's cache
    b = load_recording(name, n_stimuli=25, seed=3)
    c = load_recording(name, n_stimuli=25, seed=4)
    np.testing.assert_array_equal(a.responses, b.responses)
    assert not np.array_equal(a.responses, c.responses)


def test_simulations_are_kept_per_process_and_handed_out_as_copies():
    loading._SIMULATIONS.clear()
    images, labels, ids = default_images(30)
    first = load_recording("sim_eeg", images=images, labels=labels, stimulus_ids=ids, seed=2)
    kept = first.responses.copy()
    first.responses[:] = 0.0  # a caller changes its copy
    first.stimulus_meta.loc[0, "label"] = "changed"
    again = load_recording("sim_eeg", images=images, labels=labels, stimulus_ids=ids, seed=2)
    np.testing.assert_array_equal(again.responses, kept)
    assert again.labels[0] == "0" and len(loading._SIMULATIONS) == 1
    # other images (same shape) or another option are another simulation
    other = load_recording("sim_eeg", images=images[::-1].copy(), labels=labels, stimulus_ids=ids, seed=2)
    assert not np.array_equal(other.responses, kept) and len(loading._SIMULATIONS) == 2
    for seed in range(3, 3 + loading.SIMULATIONS_KEPT):
        load_recording("sim_v1", n_stimuli=10, seed=seed)
    assert len(loading._SIMULATIONS) == loading.SIMULATIONS_KEPT
    with pytest.raises(ConfigError, match="no option"):
        load_recording("sim_eeg", n_stimuli=10, colour=True)
    # an option whose repr need not show its content (an object) is simulated afresh, never looked up
    assert loading._option_key("sim_eeg", {"times_ms": [0.0, 10.0], "seed": 1}) is not None
    assert loading._option_key("sim_eeg", {"images": object()}) is None


def test_response_depends_on_the_image_not_the_stimulus_set():
    images, labels, ids = default_images(40)
    whole = simulate("eeg", images=images, labels=labels, stimulus_ids=ids, noise_sd=0.0, seed=1)
    part = simulate("eeg", images=images[30:], labels=labels[30:], stimulus_ids=ids[30:], noise_sd=0.0, seed=1)
    np.testing.assert_allclose(part.responses, whole.responses[30:], atol=1e-5)


def test_custom_colour_images_and_validation():
    rng = np.random.default_rng(0)
    images = rng.random((12, 3, 32, 32)).astype(np.float32)
    rec = load_recording("sim_it", images=images, labels=list("abcabcabcabc"),
                         stimulus_ids=[f"x{i}" for i in range(12)], n_reps=2, seed=0)
    assert rec.n_reps == 2 and rec.stimulus_ids[0] == "x0" and rec.labels[1] == "b"
    np.testing.assert_array_equal(rec.load_images(), images)
    with pytest.raises(ConfigError, match="in \\[0, 1\\]"):
        load_recording("sim_v1", images=images * 255)
    with pytest.raises(ConfigError, match="unique"):
        load_recording("sim_v1", images=images, stimulus_ids=["a"] * 12)
    with pytest.raises(ConfigError, match="no option 'n_channels'"):
        load_recording("sim_eeg", n_channels=64)
    with pytest.raises(ConfigError, match="takes no path"):
        load_recording("sim_eeg", path="/tmp")
    with pytest.raises(ConfigError, match="unknown simulation 'meg'"):
        simulate("meg")


def _agree(estimate, implied, tol):
    ok = np.isfinite(implied) & (implied > 0.02)
    assert ok.sum() >= 5
    assert np.median(np.abs(estimate[ok] - implied[ok])) < tol
    assert np.corrcoef(estimate[ok], implied[ok])[0, 1] > 0.9


def test_v1_noise_ceilings_come_out_as_simulated():
    rec = load_recording("sim_v1", n_stimuli=800, seed=0)
    for method in ("fev", "ncsnr", "oracle", "spearman_brown"):
        _agree(rec.noise_ceiling(method), implied_noise_ceiling(rec, method), 0.03)
    for bound in ("lower", "upper"):
        _agree(rec.noise_ceiling("splithalf", bound=bound, n_iter=6),
               implied_noise_ceiling(rec, "splithalf", bound=bound), 0.03)
    assert 0.2 < np.median(rec.noise_ceiling("fev")) < 0.8  # noisy like real V1, not noise-free


def test_eeg_and_fmri_noise_ceilings_come_out_as_simulated():
    eeg = load_recording("sim_eeg", n_stimuli=500, seed=1).select_time(50, 250)
    _agree(eeg.noise_ceiling("fev"), implied_noise_ceiling(eeg, "fev"), 0.03)
    _agree(eeg.noise_ceiling("splithalf", bound="lower", n_iter=6), implied_noise_ceiling(eeg, "splithalf", "lower"),
           0.04)
    fmri = load_recording("sim_fmri", n_stimuli=500, seed=1)
    _agree(fmri.noise_ceiling("ncsnr"), implied_noise_ceiling(fmri, "ncsnr"), 0.05)
    _agree(fmri.noise_ceiling("fev"), implied_noise_ceiling(fmri, "fev"), 0.03)
    assert set(fmri.neuroid_meta["region"]) == {"V1", "V2", "V4", "IT"}


@pytest.mark.parametrize("latency", [100.0, 150.0])
def test_eeg_peak_latency_is_a_parameter(latency):
    rec = load_recording("sim_eeg", n_stimuli=200, seed=0, peak_latency_ms=latency, noise_sd=0.0)
    signal = rec.attrs["ground_truth"]["signal_var"].mean(axis=0)  # stimulus-driven variance over channels
    assert abs(rec.time_ms[np.argmax(signal)] - latency) <= 20
    assert signal[rec.time_ms < 0].max() == 0.0  # nothing before stimulus onset


def test_it_is_far_less_pixel_driven_than_v1():
    v1 = load_recording("sim_v1", n_stimuli=600, seed=0)
    it = load_recording("sim_it", n_stimuli=600, seed=0)
    r_v1, r_it = pixel_redundancy(v1), pixel_redundancy(it)
    assert r_v1 > 0.6
    assert r_it < r_v1 - 0.25
    # the category component is what makes same-label stimuli alike in IT
    from brainalign.neural.rsa import neural_similarity

    sim = neural_similarity(it)
    same = it.labels[:, None] == it.labels[None, :]
    off = ~np.eye(len(sim), dtype=bool)
    assert sim[same & off].mean() > sim[~same].mean() + 0.2


@pytest.mark.parametrize("fmt, kind, loader", [("things_eeg2", "eeg", "things_eeg2"), ("brainio", "v1", "brainio"),
                                               ("brainio", "eeg", "brainio")])
def test_simulate_to_disk_round_trips(tmp_path, fmt, kind, loader):
    path = simulate_to_disk(kind, tmp_path, fmt=fmt, seed=2, n_stimuli=60)
    assert "SIMULATED" in (tmp_path / "SIMULATED_DATA.txt").read_text()
    back = load_recording(loader, path=path)
    original = simulate(kind, seed=2, n_stimuli=60)
    assert back.attrs["simulated"] is True
    assert set(back.stimulus_ids) <= set(original.stimulus_ids)
    same = original.subset(back.stimulus_ids.tolist())
    np.testing.assert_array_equal(back.responses, same.responses)
    np.testing.assert_array_equal(back.labels, same.labels)
    np.testing.assert_allclose(back.time_ms, same.time_ms)
    np.testing.assert_allclose(back.load_images(), same.load_images(), atol=0.5 / 255 + 1e-6)
    assert back.neuroid_meta["name"].tolist() == same.neuroid_meta["name"].tolist() or loader == "brainio"
    if fmt == "things_eeg2":
        test = load_recording("things_eeg2", path=path, split="test")
        assert back.n_stimuli + test.n_stimuli == 60 and set(test.stimulus_meta["split"]) == {"test"}
    with pytest.raises(ConfigError, match="unknown format"):
        simulate_to_disk(kind, tmp_path, fmt="nwb")


def test_inspect_recording_reports_what_is_there(tmp_path):
    info = inspect_recording("sim_eeg", n_stimuli=120, max_stimuli=120)
    assert info["simulated"] and info["stimuli"] == 120 and info["neuroids"] == 17
    assert info["time_bins"] == {"n": 100, "first_ms": -200.0, "last_ms": 790.0, "step_ms": 10.0}
    assert info["repetitions"] == {"min": 4, "median": 4.0, "max": 4}
    fev = info["noise_ceilings"]["fev"]
    assert 80 <= fev["peak_time_ms"] <= 120 and fev["peak_median"] > fev["median"]
    json.dumps(info)  # plain data, ready for --json output
    text = format_inspection(info)
    assert "SIMULATED" in text and "17 channels" in text and "-200..790 ms every 10 ms" in text
    path = simulate_to_disk("eeg", tmp_path, seed=0, n_stimuli=30)
    on_disk = inspect_recording(path, ceilings=False)
    assert on_disk["loader"] == "things_eeg2" and on_disk["simulated"] and on_disk["noise_ceilings"] == {}
    rec = load_recording("things_eeg2", path=path)
    averaged = inspect_recording(rec.derive(None, responses=rec.responses[:, :1]))
    assert "one repetition" in averaged["noise_ceilings"]["fev"]["unavailable"]
