"""Gains, paired tests, structure-specific gains and the strong-attack check on hand-made run folders."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic_runs as syn

from brainalign.analysis import holm
from brainalign.analysis.comparisons import (
    matched_controls,
    paired_tests,
    run_gain,
    strong_attack_check,
    structure_specific_gains,
)
from brainalign.analysis.runs import by_condition, find_baseline, load_runs, role
from brainalign.analysis.stats import mcnemar_p
from brainalign.errors import DataError

KEY = "pgd_linf[steps=10]"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return load_runs(syn.controls_experiment(tmp_path_factory.mktemp("controls")))


def test_roles_and_baseline(runs):
    groups = by_condition(runs)
    assert list(groups) == ["baseline", "decorr", "neural", "neural_shuffled"]
    assert find_baseline(runs) == "baseline"
    roles = {name: role(group[0], "baseline") for name, group in groups.items()}
    assert roles == {"baseline": "baseline", "decorr": "control", "neural": "regularizer",
                     "neural_shuffled": "control"}


def test_gain_same_seed_and_mean_baseline(runs, tmp_path):
    groups = by_condition(runs)
    gain = run_gain(groups["neural"][1], groups["baseline"], KEY)  # seed 1: +20 of 200 at eps 0.3 and 0.4
    assert gain["eps"] == [0.3, 0.4] and gain["baseline"] == "seed 1"
    assert gain["gain"] == pytest.approx(0.1)
    # a seed the baseline lacks is compared with the mean baseline curve
    lonely = load_runs(syn.write_run(tmp_path, "neural", 7, {KEY: syn.shifted(10)}).parent)[0]
    gain = run_gain(lonely, groups["baseline"], KEY)
    assert gain["baseline"] == "mean of 3 baseline runs" and gain["gain"] == pytest.approx(0.05)


def test_paired_tests_pool_seeds_and_correct_over_the_table(runs):
    out = paired_tests(runs, n_boot=200)
    assert out["baseline"] == "baseline" and out["correction"] == "holm"
    rows = {(r["condition"], r["eps"][0]): r for r in out["rows"]}
    assert set(rows) == {(c, e) for c in ("decorr", "neural", "neural_shuffled") for e in (0.3, 0.4)}
    neural = rows[("neural", 0.3)]
    # 30 + 20 + 25 images right only under neural, none only under the baseline
    assert (neural["mcnemar"]["n_base_only"], neural["mcnemar"]["n_other_only"]) == (0, 75)
    assert neural["mcnemar"]["p_exact"] == pytest.approx(mcnemar_p(0, 75)[0])
    assert neural["diff"] == pytest.approx(75 / 600)
    assert neural["images"]["low"] > 0 and neural["paired_by"] == "seed"
    shuffled = rows[("neural_shuffled", 0.4)]
    assert shuffled["diff"] == 0 and shuffled["mcnemar"]["p_exact"] == 1.0
    p = [r["mcnemar"]["p_exact"] for r in out["rows"]]
    np.testing.assert_allclose([r["p_adjusted"] for r in out["rows"]], holm(p))
    assert out["family_size"] == 6
    bh = paired_tests(runs, n_boot=50, correction="bh", test="p_midp")
    assert bh["rows"][0]["p_adjusted"] <= 1 and bh["test"] == "p_midp"


def test_matched_controls_found_from_result_json(runs):
    assert sorted(matched_controls(runs)) == [("neural", "decorr", "decorrelation"),
                                              ("neural", "neural_shuffled", "shuffled")]


def test_structure_specific_gains(runs):
    out = structure_specific_gains(runs, n_boot=500)
    rows = {r["control"]: r for r in out["rows"]}
    shuffled = rows["neural_shuffled"]
    # per seed: +0.15, +0.10, +0.125 of the high-eps accuracy (mean over eps 0.3 and 0.4)
    assert shuffled["diff"] == pytest.approx(0.125)
    assert shuffled["eps"] == [0.3, 0.4]
    assert 0 < shuffled["over_seeds"]["low"] < 0.125 < shuffled["over_seeds"]["high"]
    assert 0 < shuffled["images"]["low"] < 0.125 < shuffled["images"]["high"]
    assert shuffled["verdict"] == "structure-specific gain"
    assert shuffled["treatment_gain"]["mean"] == pytest.approx(0.125)
    assert shuffled["control_gain"]["mean"] == pytest.approx(0.0)
    decorr = rows["decorr"]
    assert decorr["diff"] == 0 and decorr["verdict"] == "no clear difference"
    given = structure_specific_gains(runs, [("neural", "baseline")], n_boot=100)
    assert given["rows"][0]["kind"] == "given" and given["rows"][0]["diff"] == pytest.approx(0.125)
    with pytest.raises(DataError, match="nope"):
        structure_specific_gains(runs, [("neural", "nope")])


def test_strong_attack_check_flags_shrinking_gains(tmp_path):
    pgd, aa = "pgd_linf[steps=10]", "autoattack_linf"
    base = {0.0: 180, 0.2: 60, 0.4: 20}
    syn.write_run(tmp_path, "baseline", 0, {pgd: base, aa: base})
    # masked: +40 images under PGD (gain 0.2), +10 under AutoAttack (0.05)
    syn.write_run(tmp_path, "masked", 0, {pgd: {0.0: 180, 0.2: 60, 0.4: 60}, aa: {0.0: 180, 0.2: 60, 0.4: 30}},
                  regularizers=syn.only("spectral"))
    syn.write_run(tmp_path, "robust", 0, {pgd: {0.0: 180, 0.2: 60, 0.4: 60}, aa: {0.0: 180, 0.2: 60, 0.4: 50}},
                  regularizers=syn.only("spectral"))
    out = strong_attack_check(tmp_path)
    assert out["computed"] and (out["pgd"], out["strong"]) == (pgd, aa)
    rows = {r["condition"]: r for r in out["rows"]}
    assert rows["masked"]["flag"] and rows["masked"]["retained"] == pytest.approx(0.25)
    assert not rows["robust"]["flag"] and rows["robust"]["retained"] == pytest.approx(0.75)
    assert strong_attack_check(tmp_path, pgd, pgd)["rows"][0]["flag"] is False


def test_strong_attack_check_without_strong_attack(runs):
    out = strong_attack_check(runs)
    assert out["computed"] is False and "AutoAttack" in out["reason"]


def test_no_finished_runs_is_one_clear_error(tmp_path):
    (tmp_path / "empty__seed0").mkdir()
    with pytest.raises(DataError, match="no finished runs") as err:
        load_runs(tmp_path)
    assert "\n" not in str(err.value)
