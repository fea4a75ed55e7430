"""summarize / summary_table on hand-made run folders whose answers are known exactly."""

from __future__ import annotations

import json

import pytest
import synthetic_runs as syn

from brainalign.analysis.summary import summarize, summary_table
from brainalign.headline import HEADLINE_NAME, describe

CE, T, PGD = "apgd_ce_linf[steps=100]", "apgd_t_linf[steps=100]", "pgd_linf[steps=10]"


@pytest.fixture(autouse=True)
def apgd_meta(monkeypatch):
    monkeypatch.setitem(syn.ATTACK_META, "apgd_ce_linf", ("whitebox", "Linf"))
    monkeypatch.setitem(syn.ATTACK_META, "apgd_t_linf", ("whitebox", "Linf"))


def curves(clean: int, ce: int, t: int, pgd: int) -> dict[str, dict[float, int]]:
    return {PGD: {0.0: clean, 0.1: pgd}, CE: {0.0: clean, 0.1: ce}, T: {0.0: clean, 0.1: t}}


def experiment(root):
    for seed in range(3):
        syn.write_run(root, "baseline", seed, curves(180, 60, 50, 70), data="digits", final_train_loss=0.1 + seed / 10)
        # seed 1 keeps 100 of 200 images clean: below 0.9 x 180 / 200, a failed seed
        clean = 100 if seed == 1 else 178
        ratio = {"name": "pixel_similarity", "median": 1.5 + seed, "median_first_quarter": 5.0, "max": 40.0,
                 "share_above_1": 0.8, "dominates": seed == 0, "n_epochs": 10}
        syn.write_run(root, "pixel", seed, curves(clean, 90, 80 + seed, 95), data="digits",
                      regularizers=syn.only("pixel_similarity"), gradient_ratios={"reg0": ratio})
        syn.write_run(root, "chance", seed, curves(20, 5, 5, 5), data="digits", regularizers=syn.only("spectral"))
    return root


def test_headline_failed_seeds_and_words(tmp_path):
    summary = summarize(experiment(tmp_path))
    assert summary["headline"]["attack"] == HEADLINE_NAME and summary["headline"]["eps"] == describe("digits")["eps"]
    base, pixel, chance = (summary["conditions"][n] for n in ("baseline", "pixel", "chance"))
    # headline = worst case per image over APGD-CE and APGD-T (the first k images stay correct)
    assert base["robust_accuracy"]["mean"] == pytest.approx(50 / 200)
    assert base["robust_accuracy_pgd"]["mean"] == pytest.approx(70 / 200)
    assert base["final_train_loss"]["mean"] == pytest.approx(0.2) and base["n_failed"] == 0
    assert pixel["n_failed"] == 1 and pixel["failed_seeds"][0]["seed"] == 1
    assert pixel["seeds_in_means"] == [0, 2] and pixel["clean_accuracy"]["mean"] == pytest.approx(178 / 200)
    assert pixel["all_seeds"]["clean_accuracy"]["mean"] == pytest.approx((178 * 2 + 100) / 600)
    assert pixel["gain"]["mean"] == pytest.approx(((80 - 50) + (82 - 50)) / 2 / 200)
    assert pixel["gain_pgd"]["mean"] == pytest.approx(25 / 200)
    assert chance["did_not_learn"] == [0, 1, 2] and chance["n_failed"] == 3
    assert pixel["did_not_learn"] == [] and base["did_not_learn"] == []
    words = " ".join(summary["statements"])
    assert "pixel: 1 of 3 seeds failed (seeds 1)" in words and "chance: seeds 0, 1, 2 did not learn" in words
    table = summary_table(summary)
    assert "| pixel | 3 | 1: seed 1 |" in table and "did not learn: seeds 0, 1, 2" in table
    assert HEADLINE_NAME in table and "Baseline final training loss: 0.200" in table
    assert pixel["gradient_ratios"] == [{"term": "reg0", "name": "pixel_similarity", "n_seeds": 3, "median": 2.5,
                                         "median_first_quarter": 5.0, "max": 40.0, "dominated_in_seeds": [0]}]
    assert "the pixel_similarity term's gradient outweighs cross-entropy's" in words
    assert "| pixel | pixel_similarity | 2.500 | 5.000 | 40.000 | seed 0 |" in table
    json.dumps(summary, allow_nan=True)


def test_no_gain_is_said_in_words(tmp_path):
    for seed in range(3):
        syn.write_run(tmp_path, "baseline", seed, curves(180, 60, 50, 70), data="digits")
        # seed 0's check predates APGD-T on every target (no such key); seed 2's APGD-T breaks one more image
        check = {"computed": True, "n_checked": 5, "broken_by_fab_t": 0, "broken_by_square": seed % 2,
                 "broken_by_either": seed % 2 + (seed == 2),
                 **({"broken_by_apgd_t_all": int(seed == 2)} if seed else {})}
        syn.write_run(tmp_path, "same", seed, curves(180, 60, 50 + (seed - 1) * 4, 70), data="digits",
                      regularizers=syn.only("decorrelation"), headline_check=check)
    summary = summarize(tmp_path)
    assert summary["conditions"]["same"]["headline_check"] == {
        "n_runs": 3, "n_checked": 15, "n_runs_apgd_t": 2, "broken_by_apgd_t_all": 1, "broken_by_fab_t": 0,
        "broken_by_square": 1, "broken_by_either": 2}
    assert summary["conditions"]["baseline"]["headline_check"] is None
    words = summary["statements"]
    assert words[0] == ("Headline check: APGD-T on every target, FAB-T and Square broke 2 of 15 sampled images that "
                        "survived the headline attacks, over 3 run(s) in 1 condition(s) (named below).")
    assert any(s.startswith("same: APGD-T on every target, FAB-T and Square broke 2 of 15") and "overstates" in s
               for s in words)
    assert "same: no clear robustness gain over the baseline (95% CI holds 0) under the headline attack." in \
        summary["statements"]


def test_report_shows_the_same_headline_and_failed_seeds(tmp_path):
    from brainalign.reports import write_report

    root = experiment(tmp_path)
    summary = summarize(root)
    paths = write_report(root, n_boot=50)
    report = json.loads(paths["json"].read_text())
    assert report["headline"]["attack"] == summary["headline"]["attack"] == HEADLINE_NAME
    assert report["headline"]["eps"] == summary["headline"]["eps"]
    pixel = next(c for c in report["conditions"] if c["name"] == "pixel")
    assert pixel["n_failed"] == 1 and pixel["failed_seeds"][0]["seed"] == 1
    assert pixel["robust_accuracy"] == summary["conditions"]["pixel"]["robust_accuracy"]
    assert pixel["gain"] == summary["conditions"]["pixel"]["gain"]
    assert pixel["gradient_ratios"][0]["median"] == 2.5
    for page in (paths["html"].read_text(), paths["md"].read_text()):
        assert "Gradient ratios" in page and "2.500" in page
        assert HEADLINE_NAME in page and "seed 1: clean 0.500 &lt; 0.9" in page.replace("<", "&lt;")


def test_leaderboard_shows_the_same_headline(tmp_path):
    from brainalign.io import read_json
    from brainalign.leaderboard import build_leaderboard

    root = experiment(tmp_path / "exp")
    summary = summarize(root)
    out = build_leaderboard(root, tmp_path / "board")
    card = read_json(out / "model_info" / "digits" / "Linf" / "baseline__seed0.json")
    assert card["headline_attack"] == summary["headline"]["attack"] and card["eps"] == summary["headline"]["eps"]
    assert card["headline_acc"] == pytest.approx(100 * summary["conditions"]["baseline"]["robust_accuracy"]["mean"])


def test_the_combined_headline_attack_gives_the_same_numbers_and_structure_specific_gains(tmp_path, monkeypatch):
    """Runs evaluated with the one headline attack (apgd_ce_t_linf) read as the CE/T pair does, and the
    structure-specific gains (regularizer minus control) are computed from it."""
    monkeypatch.setitem(syn.ATTACK_META, "apgd_ce_t_linf", ("whitebox", "Linf"))
    both = "apgd_ce_t_linf[steps=100]"
    for seed in range(3):
        syn.write_run(tmp_path, "baseline", seed, {PGD: {0.0: 180, 0.1: 70}, both: {0.0: 180, 0.1: 50}},
                      data="digits")
        syn.write_run(tmp_path, "neural", seed, {PGD: {0.0: 180, 0.1: 95}, both: {0.0: 180, 0.1: 80 + seed}},
                      data="digits", regularizers=syn.only("neural_similarity"))
        syn.write_run(tmp_path, "decorrelation", seed, {PGD: {0.0: 180, 0.1: 75}, both: {0.0: 180, 0.1: 60}},
                      data="digits", regularizers=syn.only("decorrelation"))
    summary = summarize(tmp_path)
    assert summary["conditions"]["baseline"]["robust_accuracy"]["mean"] == pytest.approx(50 / 200)
    assert summary["conditions"]["neural"]["gain"]["mean"] == pytest.approx(31 / 200)
    rows = [r for r in summary["structure_specific_gains"]["rows"] if "diff" in r]
    assert [(r["treatment"], r["control"]) for r in rows] == [("neural", "decorrelation")]
    assert rows[0]["diff"] == pytest.approx(21 / 200)


def test_checked_seeds_are_read_under_either_key_and_said(tmp_path):
    # result.json's "selfchecks" (as evaluate writes it) or the older "self_checks": the same checked seed.
    ok = {"reliable": True, "reasons": [], "checks": {}}
    syn.write_run(tmp_path, "baseline", 0, curves(180, 60, 50, 70), data="digits", selfchecks=ok)
    syn.write_run(tmp_path, "baseline", 1, curves(180, 60, 50, 70), data="digits")
    syn.write_run(tmp_path, "other", 0, curves(180, 70, 60, 80), data="digits", self_checks=ok)
    syn.write_run(tmp_path, "other", 1, curves(180, 70, 60, 80), data="digits")
    summary = summarize(tmp_path)
    assert [c["selfchecked_seeds"] for c in summary["conditions"].values()] == [[0], [0]]
    assert "Self-checks ran on seed 0 of every condition" in summary_table(summary)


def test_a_stored_headline_check_speaks_only_for_unchanged_configs(tmp_path):
    from brainalign.demo import cite_headline_check, write_headline_check

    root = tmp_path / "demo"
    own = {"computed": True, "n_checked": 4, "broken_by_apgd_t_all": 0, "broken_by_fab_t": 0, "broken_by_square": 1,
           "broken_by_either": 1}
    for seed in range(2):
        syn.write_run(root, "baseline", seed, curves(180, 60, 50, 70), data="digits")
        syn.write_run(root, "same", seed, curves(180, 60, 52, 70), data="digits",
                      regularizers=syn.only("decorrelation"))
        syn.write_run(root, "live", seed, curves(180, 60, 52, 70), data="digits",
                      regularizers=syn.only("decorrelation"), headline_check=own if seed == 0 else None)
    stored = tmp_path / "stored.json"
    check = {"n_runs": 1, "n_checked": 16, "n_runs_apgd_t": 1, "broken_by_apgd_t_all": 0, "broken_by_fab_t": 1,
             "broken_by_square": 0, "broken_by_either": 1}
    stored.write_text(json.dumps({
        "command": "brainalign demo --check", "git_commit": "abc1234def", "created": "2026-12-07", "seeds": [0],
        "conditions": {"baseline": {"config_digest": "b", **check}, "same": {"config_digest": "old", **check},
                       "live": {"config_digest": "l", **check}}}))
    # "same" was checked with another config (stale), "new" never: the stored check speaks for the baseline only;
    # "live" checked in these runs, which win over the stored check.
    digests = {"baseline": "b", "same": "s", "live": "l", "new": "n"}
    citation = cite_headline_check(stored, root, digests)
    assert set(citation["conditions"]) == {"baseline", "live"}
    assert citation["stale"] == ["same"] and citation["missing"] == ["new"]
    summary = summarize(root)
    conditions = summary["conditions"]
    assert conditions["baseline"]["headline_check"] == {"config_digest": "b", **check, "stored": True}
    assert conditions["same"]["headline_check"] is None
    live = conditions["live"]["headline_check"]
    assert live["n_checked"] == 4 and "stored" not in live
    source = summary["headline_check_source"]
    assert source["these_runs"] == ["live"] and source["stored"] == ["baseline"] and source["stale"] == ["same"]
    words = summary["statements"]
    assert words[0].startswith("Headline check (stored: `brainalign demo --check` at abc1234 on 2026-12-07, seed 0 "
                               "of the same configs; live checked in these runs): APGD-T on every target, FAB-T and "
                               "Square broke 2 of 20 sampled images")
    assert any("does not speak for same (their configs changed since" in s for s in words)
    said = " ".join(words)
    assert "live: APGD-T on every target, FAB-T and Square broke 1 of 4 sampled images that survived the headline " \
        "attacks (1 run(s)): the headline overstates" in said
    assert "baseline: APGD-T on every target, FAB-T and Square broke 1 of 16 sampled images that survived the " \
        "headline attacks (1 run(s), stored): the headline overstates" in said
    assert any("does not speak for new (it never checked them)" in s for s in words)
    # The report reads the same citation (it summarizes the folder again).
    from brainalign.reports import write_report

    report = json.loads(write_report(root, n_boot=20)["json"].read_text())
    assert report["findings"]["statements"][0] == words[0]

    # A run that checked writes the record a later demo cites: its own checks only, with their digests.
    record = write_headline_check(tmp_path / "new.json", summary, digests)
    assert set(record["conditions"]) == {"live"} and record["conditions"]["live"]["config_digest"] == "l"
    assert json.loads((tmp_path / "new.json").read_text()) == record

    # No stored check at all: said once, without listing every condition.
    cite_headline_check(tmp_path / "absent.json", root, digests)
    words = summarize(root)["statements"]
    assert sum("Headline check" in s for s in words) == 2  # the live check's line and "none stored"
    assert any(s.startswith("Headline check: none stored") for s in words)
