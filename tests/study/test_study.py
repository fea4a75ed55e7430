"""The study on tiny trained runs and simulated EEG: it recovers the simulated peak latency, caches per
run, never retrains, and fails with one clear line on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_runs

from brainalign import study as study_module
from brainalign.config import parse_options
from brainalign.errors import ConfigError, DataError
from brainalign.neural import load_recording
from brainalign.study import ALIGNMENT, STUDY, format_study, predictivity_grid, run_study

TIMES = [float(t) for t in np.arange(-50.0, 300.0, 10.0)]


def sim(**options):
    return {"name": "sim_eeg", "options": {"n_stimuli": 400, "times_ms": TIMES, **options}}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return tiny_runs.tiny_experiment(tmp_path_factory.getbasetemp())


@pytest.mark.parametrize("options", [{"peak_latency_ms": 80.0, "late_delay_ms": 250.0}, {}],
                         ids=["peak80", "demo-default"])
def test_study_recovers_simulated_peak_latency(experiment, options):
    weights = {p: p.stat().st_mtime_ns for p in experiment.glob("*/model.safetensors")}
    results = {p: p.read_bytes() for p in experiment.glob("*/result.json")}
    out = run_study(experiment, sim(**options), layers=["conv3"], n_boot=200, progress=False)
    simulated = out["recording"]["simulated_peak_latency_ms"]
    assert simulated == options.get("peak_latency_ms", 100.0)
    assert abs(out["time_course"]["peak_ms"] - simulated) <= 10.0  # one 10 ms bin
    assert out["time_course"]["value"] > 0.2
    assert out["recording"]["simulated"] is True and out["recording"]["n_neuroids"] == 17
    # nothing was retrained or re-attacked
    assert {p: p.stat().st_mtime_ns for p in experiment.glob("*/model.safetensors")} == weights
    assert {p: p.read_bytes() for p in experiment.glob("*/result.json")} == results
    assert json.loads((experiment / STUDY).read_text())["time_course"]["peak_ms"] == out["time_course"]["peak_ms"]


def test_study_gains_correlations_and_cache(experiment, monkeypatch):
    out = run_study(experiment, sim(), layers=["conv3"], n_boot=200, progress=False)
    rows = {(r["name"], r["seed"]): r for r in out["runs"]}
    assert len(rows) == 5 and all((experiment / r["run"] / ALIGNMENT).exists() for r in out["runs"])
    key = tiny_runs.ATTACK
    assert out["settings"]["attack"] == key and out["settings"]["baseline"] == "baseline"
    assert rows[("baseline", 1)]["gains"][key]["gain"] == 0.0
    # gain by hand from result.json: upper half of the non-zero grid (0.05, 0.1, 0.2) is 0.1 and 0.2
    acc = {}
    for name, seed in (("wide", 0), ("baseline", 0)):
        entry = json.loads((experiment / f"{name}__seed{seed}" / "result.json").read_text())["robustness"][key]
        acc[name] = np.mean([a for e, a in zip(entry["eps"], entry["accuracy"], strict=True) if e >= 0.1])
    assert rows[("wide", 0)]["gains"][key]["gain"] == pytest.approx(acc["wide"] - acc["baseline"])
    assert rows[("wide", 0)]["gains"][key]["eps"] == [0.1, 0.2]

    corr = out["correlation"]
    assert corr["n_runs"] == 3 and corr["overall"]["n"] == 3  # baselines are left out
    r = corr["overall"]["pearson"]["r"]
    assert corr["overall"]["r2"]["value"] == pytest.approx(r * r)
    assert len(corr["per_time"]["pearson"]) == len(TIMES)
    assert set(corr["per_region"]) == {"parietal", "parieto-occipital", "occipital"}
    assert len(corr["per_neuroid"]["pearson"]) == 17 and key in out["by_attack"]
    assert out["conditions"]["wide"]["n_seeds"] == 2 and out["conditions"]["baseline"]["role"] == "baseline"
    text = format_study(out)
    assert "(SIMULATED)" in text and "over 3 runs: Pearson r" in text and "simulated peak 100 ms" in text

    # a second study reads every run's alignment.json: predictivity is not recomputed
    def fail(*args, **kwargs):
        raise AssertionError("predictivity recomputed despite the cache")

    monkeypatch.setattr(study_module, "predictivity_grid", fail)
    again = run_study(experiment, sim(), layers=["conv3"], n_boot=200, progress=False)
    assert [r["predictivity"] for r in again["runs"]] == [r["predictivity"] for r in out["runs"]]


def test_nan_neuroids_are_masked_and_counted(experiment):
    rec = load_recording("sim_eeg", n_stimuli=200, times_ms=TIMES)
    dead = rec.neuroid_meta["id"][3]
    rec.responses[:, :, 3, :] = np.nan  # a dead channel
    rec.responses[5, :, 6, 12] = np.nan  # one missing stimulus x time of another channel
    out = run_study(experiment, rec, layers=["fc"], n_boot=100, progress=False)
    assert out["recording"]["masked_neuroids"] == [dead]
    assert out["recording"]["n_neuroids"] == 16 and out["recording"]["n_masked_targets"] == 1
    assert all(len(r["per_neuroid"]) == 16 for r in out["runs"])
    assert np.isfinite(out["time_course"]["mean"]).all()


def test_bad_inputs_fail_with_one_line(experiment, tmp_path):
    cases = [
        (ConfigError, "nope", lambda: run_study(experiment, sim(), layers=["nope"], progress=False)),
        (DataError, "too few", lambda: run_study(experiment, {"name": "sim_eeg", "options": {"n_stimuli": 4}},
                                                 layers=["fc"], n_folds=5, progress=False)),
        (DataError, "no finished runs", lambda: run_study(tmp_path, sim(), progress=False)),
    ]
    for error, match, call in cases:
        with pytest.raises(error, match=match) as err:
            call()
        assert "\n" not in str(err.value)
    rec = load_recording("sim_eeg", n_stimuli=30, times_ms=TIMES[:3])
    features = np.random.default_rng(0).normal(size=(30, 5))
    ids = rec.stimulus_ids.tolist()
    with pytest.raises(DataError, match="stimulus ids"):
        predictivity_grid(features, ids[::-1], rec)
    assert len(predictivity_grid(features, ids, rec)["r"]) == 17


def test_parse_options():
    assert parse_options(["n_stimuli=500", "times_ms=[0, 10]", "seed = 3", "source=abc"]) == {
        "n_stimuli": 500, "times_ms": [0, 10], "seed": 3, "source": "abc"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_options(["n_stimuli"])
