"""The study on tiny trained runs and simulated EEG: it recovers the simulated peak latency, caches per
run, never retrains, and fails with one clear line on bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import synthetic_runs as syn
import tiny_runs

from brainalign import study as study_module
from brainalign.analysis.runs import load_runs
from brainalign.config import parse_options
from brainalign.errors import ConfigError, DataError
from brainalign.neural import load_recording
from brainalign.study import (
    ALIGNMENT,
    STUDY,
    condition_level,
    exclusion,
    format_study,
    headline_gains,
    predictivity_grid,
    run_study,
)

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
    assert len(rows) == 6 and all((experiment / r["run"] / ALIGNMENT).exists() for r in out["runs"])
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
    assert corr["n_runs"] == 4 and corr["overall"]["n"] == 4  # baselines are left out
    r = corr["overall"]["pearson"]["r"]
    assert corr["overall"]["r2"]["value"] == pytest.approx(r * r)
    assert len(corr["per_time"]["pearson"]) == len(TIMES)
    assert set(corr["per_region"]) == {"parietal", "parieto-occipital", "occipital"}
    assert len(corr["per_neuroid"]["pearson"]) == 17 and key in out["by_attack"]
    assert out["conditions"]["wide"]["n_seeds"] == 2 and out["conditions"]["baseline"]["role"] == "baseline"
    text = format_study(out)
    assert "(SIMULATED)" in text and "simulated peak 100 ms" in text
    assert "Condition level (headline)" in text and "Per run (secondary" in text and "over 4 runs" in text

    # a second study reads every run's alignment.json: predictivity is not recomputed
    def fail(*args, **kwargs):
        raise AssertionError("predictivity recomputed despite the cache")

    monkeypatch.setattr(study_module, "predictivity_grid", fail)
    again = run_study(experiment, sim(), layers=["conv3"], n_boot=200, progress=False)
    assert [r["predictivity"] for r in again["runs"]] == [r["predictivity"] for r in out["runs"]]


def test_runs_aligned_by_the_demo_workers_leave_the_study_only_aggregating(experiment, tmp_path, monkeypatch):
    """The demo's worker aligns each run right after training it (``study.align_run``, with the settings that
    ``run_study``'s defaults look up); the study then loads no model, computes no predictivity, and writes the
    study.json a study from scratch on the same runs writes."""
    from brainalign import demo
    from brainalign.config import read_yaml

    cold, warm = tmp_path / "cold" / tiny_runs.EXPERIMENT, tmp_path / "warm" / tiny_runs.EXPERIMENT
    for dst in (cold, warm):
        shutil.copytree(experiment, dst)
        for f in [*dst.glob(f"*/{ALIGNMENT}"), dst / STUDY]:
            f.unlink(missing_ok=True)
    monkeypatch.setattr(demo, "train", lambda config, progress: config.run_dir)  # the runs are trained already
    for run_dir in sorted(p.parent for p in warm.glob("*/config.yaml")):
        config = {**read_yaml(run_dir / "config.yaml"), "out_dir": str(warm.parent)}
        demo._train_one(config)
        assert (run_dir / ALIGNMENT).exists()
    study_settings = {"layers": list(demo.STUDY_LAYERS), "n_boot": 200, "progress": False}
    run_study(cold, demo.STUDY_RECORDING, **study_settings)

    def fail(*args, **kwargs):
        raise AssertionError("the study computed an alignment the worker had cached")

    monkeypatch.setattr(study_module._Models, "load", fail)
    monkeypatch.setattr(study_module, "predictivity_grid", fail)
    cached = {p: p.read_bytes() for p in warm.glob(f"*/{ALIGNMENT}")}
    run_study(warm, demo.STUDY_RECORDING, **study_settings)
    assert {p: p.read_bytes() for p in warm.glob(f"*/{ALIGNMENT}")} == cached  # reused, not rewritten
    assert (warm / STUDY).read_text() == (cold / STUDY).read_text()


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


def test_window_ceiling_and_condition_level_match_a_hand_recomputation(experiment):
    out = run_study(experiment, sim(), layers=["conv3"], n_boot=300, progress=False)
    s = out["settings"]
    assert s["time_window_ms"] == [70.0, 170.0] and "fixed in advance" in s["window_rule"]
    assert s["ceiling"] == "spearman_brown" and s["gain"]["source"] == "attack"  # tiny runs lack the headline
    times = np.asarray(TIMES)
    window = (times >= 70) & (times < 170)
    ceiling = out["ceiling"]["window_mean"]
    assert 0 < ceiling <= 1
    for row in out["runs"]:
        raw = row["window_predictivity"]["raw"]
        # no target is masked here, so the window mean over channels x bins is the mean of the per-time means
        assert raw == pytest.approx(np.mean(np.asarray(row["per_time"])[window]))
        assert row["window_predictivity"]["ceiling_normalized"] == pytest.approx(raw / ceiling)
        assert row["predictivity"] == row["window_predictivity"]["ceiling_normalized"]
    # the pre-stimulus bins are the null reference: near 0, far below the window
    null = out["time_course"]["null"]
    assert null["bins"] == 5 and abs(null["mean"]) < 0.1 and out["time_course"]["value"] > null["mean"] + 0.2
    assert len(out["channels"]["mean"]) == 17 and all(lo <= m <= hi for m, lo, hi in zip(
        out["channels"]["mean"], out["channels"]["low"], out["channels"]["high"], strict=True))

    # the condition-level estimate, recomputed by hand from the per-run numbers of study.json
    pop = [r for r in out["runs"] if r["role"] != "baseline"]
    assert out["population"]["n_runs"] == len(pop) == 4 and out["population"]["n_excluded"] == 0
    names = sorted({r["name"] for r in pop})
    pred = [np.mean([r["predictivity"] for r in pop if r["name"] == n]) for n in names]
    gain = [np.mean([r["gain"] for r in pop if r["name"] == n]) for n in names]
    cl = out["condition_level"]
    assert cl["computed"] and cl["n_conditions"] == 3
    assert cl["pearson"]["r"] == pytest.approx(np.corrcoef(pred, gain)[0, 1])
    assert cl["pearson"]["low"] <= cl["pearson"]["r"] <= cl["pearson"]["high"]
    spread = out["spread"]
    wide = [r["predictivity"] for r in pop if r["name"] == "wide"]
    assert spread["within_sd"]["wide"] == pytest.approx(np.std(wide, ddof=1))
    assert spread["between_sd"] == pytest.approx(np.std(pred, ddof=1))
    assert out["conditions"]["wide"]["predictivity_sd_within"] == spread["within_sd"]["wide"]
    assert any("Controlling for clean accuracy" in line for line in out["findings"])


def test_population_excludes_and_counts_and_keeps_defences_apart(experiment, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(experiment, copy)  # alignment.json travels along: nothing is recomputed

    def edit(run, **changes):
        path = copy / run / "result.json"
        result = json.loads(path.read_text())
        result.update(changes)
        path.write_text(json.dumps(result))

    edit("narrow__seed0", clean_accuracy=0.12)  # digits: chance 0.1; below half the baseline's accuracy
    edit("mid__seed0", reliable=False)
    edit("wide__seed1", defences=[{"name": "gaussian_noise", "params": {}}])
    out = run_study(copy, sim(), layers=["conv3"], n_boot=100, progress=False)
    pop = out["population"]
    assert pop["n_excluded_by_reason"] == {"did not learn": 1, "failed self-checks": 1,
                                           "weight 0 (baseline replicate)": 0}
    assert {e["run"] for e in pop["excluded"]} == {"narrow__seed0", "mid__seed0"}
    assert pop["learning_floor"]["floor"] == pytest.approx(max(0.2, 0.5 * np.mean(
        [r["clean_accuracy"] for r in out["runs"] if r["role"] == "baseline"])))
    assert [d["run"] for d in pop["defences"]] == ["wide__seed1"] and pop["n_runs"] == 1
    assert pop["conditions"] == ["wide"]  # wide__seed0 only: the defence run of that name is not pooled
    assert out["correlation"]["n_runs"] == 1 and not out["condition_level"]["computed"]
    assert "1 defence runs (wide) shown apart, not pooled" in out["findings"][0]


def test_pre_stimulus_window_is_refused(experiment):
    with pytest.raises(ConfigError, match="post-stimulus") as err:
        run_study(experiment, sim(), layers=["conv3"], time_window_ms=[-50.0, 100.0], progress=False)
    assert "\n" not in str(err.value)


def test_gains_use_the_one_headline(tmp_path):
    ce, t = "apgd_ce_linf[steps=100]", "apgd_t_linf[steps=100]"
    n = 100
    for name, seed, k_ce, k_t in (("baseline", 0, 40, 35), ("reg", 0, 60, 50), ("baseline", 1, 30, 30),
                                  ("reg", 1, 45, 50)):
        syn.write_run(tmp_path, name, seed, {ce: {0.0: 90, 0.1: k_ce}, t: {0.0: 90, 0.1: k_t}}, n=n, data="digits")
    runs = load_runs(tmp_path)
    base = [r for r in runs if r.name == "baseline"]
    gains = {(r.name, r.seed): g for r, g in zip(runs, headline_gains(runs, base).values(), strict=True)}
    # worst case per image: the first min(k_ce, k_t) images survive both attacks
    assert gains[("reg", 0)] == pytest.approx((50 - 35) / n) and gains[("reg", 1)] == pytest.approx((45 - 30) / n)
    assert headline_gains(runs, []) is None


def test_condition_level_on_known_rows():
    rows = [{"name": c, "predictivity": p + d, "gain": g + d, "clean_accuracy": 0.9 + 0.01 * i}
            for i, (c, p, g) in enumerate([("a", 0.1, 0.0), ("b", 0.2, 0.02), ("c", 0.3, 0.03), ("d", 0.4, 0.05)])
            for d in (-0.01, 0.01)]
    out = condition_level(rows, n_boot=300, level=0.95, seed=0)
    assert out["n_conditions"] == 4 and out["n_runs"] == 8
    assert out["pearson"]["r"] == pytest.approx(np.corrcoef([0.1, 0.2, 0.3, 0.4], [0.0, 0.02, 0.03, 0.05])[0, 1])
    assert out["mixed_model"]["n_groups"] == 4


def test_calibrated_simulation_trained_networks_sit_under_the_ceiling(experiment):
    """On sim_eeg's THINGS-EEG2 preset, trained networks predict in the calibrated range, well under the
    noise ceiling, and the recovered peak latency is within 20 ms of the simulated one."""
    out = run_study(experiment, {"name": "sim_eeg", "options": {"n_stimuli": 400, "preset": "things_eeg2"}},
                    layers=["conv3"], n_boot=100, progress=False)
    raw = [r["window_predictivity"]["raw"] for r in out["runs"]]
    normalized = [r["window_predictivity"]["ceiling_normalized"] for r in out["runs"]]
    assert all(0.03 <= v <= 0.25 for v in raw), raw
    assert all(0.15 <= v <= 0.9 for v in normalized), normalized
    assert abs(out["time_course"]["peak_ms"] - 100.0) <= 20
    assert out["time_course"]["null"]["mean"] < out["time_course"]["value"] - 0.1


def test_exclusion_rules(tmp_path):
    syn.write_run(tmp_path, "w0", 0, {}, regularizers=[{"name": "neural_prediction", "weight": 0.0}])
    syn.write_run(tmp_path, "w1", 0, {}, regularizers=[{"name": "neural_prediction", "weight": 1.0}])
    syn.write_run(tmp_path, "bad", 0, {}, reliable=False)
    runs = {r.name: r for r in load_runs(tmp_path)}
    assert exclusion(runs["w0"], None) == "weight 0 (baseline replicate)"
    assert exclusion(runs["w1"], None) is None and exclusion(runs["w1"], 0.99) is None  # clean 1.0
    assert exclusion(runs["w1"], 1.01) == "did not learn"
    assert exclusion(runs["bad"], 0.5) == "failed self-checks"


def test_cli_refuses_pre_stimulus_window_and_unknown_ceiling(experiment, capsys):
    from brainalign.cli import main

    study_file = experiment / STUDY
    before = study_file.stat().st_mtime_ns if study_file.exists() else None
    base = ["study", str(experiment), "--recording", "sim_eeg", "--option", "n_stimuli=400",
            "--option", f"times_ms={TIMES}", "--layer", "conv3"]
    for extra, match in ((["--time-window", "-50", "100"], "post-stimulus"), (["--ceiling", "nope"], "spearman_brown")):
        code = main(base + extra)
        _, err = capsys.readouterr()
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert (study_file.stat().st_mtime_ns if study_file.exists() else None) == before


def test_report_states_the_findings(experiment):
    from brainalign.reports import write_report

    out = run_study(experiment, sim(), layers=["conv3"], n_boot=100, progress=False)
    write_report(experiment)
    md = (experiment / "report.md").read_text()
    html = (experiment / "report.html").read_text()
    for line in out["findings"]:
        assert line in md
    assert "Condition level (headline)" in html and "Per run (secondary)" in html
