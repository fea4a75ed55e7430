"""The leaderboard: RobustBench-layout model cards valid against their schema, Parquet, and HTML."""

from __future__ import annotations

import re

import pytest

from brainalign.config import parse_config
from brainalign.errors import BrainAlignError, ConfigError
from brainalign.headline import HEADLINE_NAME
from brainalign.io import read_json
from brainalign.leaderboard import build_leaderboard, render_html, schema

jsonschema = pytest.importorskip("jsonschema")
ROBUSTBENCH_FIELDS = {  # RobustBench/robustbench model_info/cifar10/Linf/*.json, with numbers as floats
    "link": str, "name": str, "authors": str, "additional_data": bool, "number_forward_passes": int,
    "dataset": str, "venue": str, "architecture": str, "eps": float, "clean_acc": float, "unreliable": bool,
    "footnote": str,
}


def validate(card):
    jsonschema.validate(card, schema(), cls=jsonschema.Draft202012Validator)


def config(tmp_path, name, seed=0, **extra):
    return parse_config({"experiment": "lb", "name": name, "seed": seed, "out_dir": str(tmp_path / "runs"),
                         "model": {"name": "small_cnn", "width": 8}, **extra})


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(schema())
    assert {"link", "name", "clean_acc", "autoattack_acc", "eps", "unreliable"} <= set(schema()["required"])


def test_a_trained_runs_card_has_robustbench_fields_as_floats_and_ours(trained_run, tmp_path):
    config, run_dir = trained_run
    out = build_leaderboard(run_dir.parent, tmp_path / "board")
    card = read_json(out / "model_info" / "digits" / "Linf" / "pixel__seed3.json")
    validate(card)
    for field, kind in ROBUSTBENCH_FIELDS.items():
        assert isinstance(card[field], kind), field
    result = read_json(run_dir / "result.json")
    assert card["clean_acc"] == pytest.approx(100 * result["clean_accuracy"])
    entry = result["robustness"]["pgd_linf[steps=3]"]
    assert card["eps"] == 0.1 and card["robust_acc"] == pytest.approx(100 * entry["accuracy"][1])
    assert card["autoattack_acc"] is None and "AutoAttack was not run" in card["footnote"]
    assert card["seed"] == 3 and card["n_examples"] == 120 and card["commit"] == result["git_commit"]
    assert card["versions"]["torch"] == result["torch_version"]
    assert card["attacks"][0]["params"] == {"steps": 3}
    assert card["unreliable"] is (not result["reliable"]) and card["self_checks"] == result["selfchecks"]
    assert card["regularizers"] == [{"name": "pixel_similarity", "weight": 0.5, "control": "none",
                                     "params": {"threshold": 0.4}}]
    assert card["additional_data"] is False  # pixel targets come from the training images, not a recording


def test_robust_accuracy_is_the_worst_attack_at_the_stated_eps_and_failed_self_checks_are_flagged(
        tmp_path, fake_run):
    # a evaluated up to 0.3: the card still reads the digits threat model's stated eps (0.1), not the largest
    pgd = {"eps": [0.0, 0.05, 0.1, 0.3], "accuracy": [0.9, 0.5, 0.30, 0.0]}
    auto = {"attack": "autoattack_linf", "eps": [0.0, 0.05, 0.1], "accuracy": [0.9, 0.40, 0.25]}
    fake_run(config(tmp_path, "a"), 0.95, {"pgd_linf[steps=10]": pgd, "autoattack_linf": auto},
             selfchecks={"reliable": False, "reasons": ["gradient masking: loss did not rise"],
                         "checks": {"gradient_masking": {"passed": False, "skipped": False}}}, reliable=False,
             alignment={"V4": {"predictivity": 0.41}})
    fake_run(config(tmp_path, "b", regularizers=[{"name": "pixel_similarity", "weight": 4.0,
                                                  "params": {"threshold": 0.2}}]),
             0.90, {"pgd_linf[steps=10]": {"eps": [0.0, 0.05, 0.1], "accuracy": [0.9, 0.45, 0.35]},
                    "fgsm": {"attack": "fgsm", "eps": [0.0, 0.1], "accuracy": [0.9, 0.55]}},
             self_checks={"gradient_masking": {"passed": True}})  # an older layout: flags only
    out = build_leaderboard(tmp_path / "runs")
    a = read_json(out / "model_info" / "digits" / "Linf" / "lb__a__seed0.json")
    b = read_json(out / "model_info" / "digits" / "Linf" / "lb__b__seed0.json")
    for card in (a, b):
        validate(card)
        assert card["eps"] == 0.1  # the digits threat model's stated eps (brainalign.headline)
        assert card["headline_attack"] == HEADLINE_NAME and card["headline_acc"] is None  # APGD not run
    assert a["robust_acc"] == pytest.approx(25.0) and a["robust_attack"] == "autoattack_linf"
    assert a["autoattack_acc"] == pytest.approx(25.0)
    assert a["unreliable"] is True and "gradient masking: loss did not rise" in a["footnote"]
    assert a["brain_alignment"] == {"V4": {"predictivity": 0.41}}
    assert b["robust_acc"] == pytest.approx(35.0) and b["robust_attack"] == "pgd_linf[steps=10]"
    assert b["unreliable"] is False
    assert b["regularizers"] == [{"name": "pixel_similarity", "weight": 4.0, "control": "none",
                                  "params": {"threshold": 0.2}}]

    import pandas as pd

    table = pd.read_parquet(out / "leaderboard_runs.parquet").set_index("model")
    assert table.loc["lb__a__seed0", "robust_acc"] == pytest.approx(25.0)
    assert table.loc["lb__b__seed0", "fgsm@0.1"] == pytest.approx(55.0)
    assert table.loc["lb__b__seed0", "regularizers"] == "pixel_similarity(w=4)"

    page = (out / "leaderboard.html").read_text()
    assert "<script>" in page and "addEventListener('click'" in page and "id=filter" in page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # self-contained: nothing fetched
    assert page.index("lb/b") < page.index("lb/a")  # sorted by robust accuracy
    assert "class=unreliable" in page


def test_one_row_per_configuration_with_seeds_aggregated_rounded_and_key_columns_first(tmp_path, fake_run):
    import pandas as pd
    from scipy import stats

    clean = {"a": [0.46000001, 0.5, 0.52], "b": [0.8]}
    robust = {"a": [0.2, 0.25, 0.3], "b": [0.4]}
    for name, values in clean.items():
        for seed, (c, r) in enumerate(zip(values, robust[name], strict=True)):
            fake_run(config(tmp_path, name, seed=seed, train={"threads": seed + 1}),
                     c, {"pgd_linf[steps=10]": {"eps": [0.0, 0.1], "accuracy": [c, r]}})
    # same name, another configuration (a different width): its own row, never pooled with "a"
    fake_run(parse_config({"experiment": "lb", "name": "a", "seed": 7, "out_dir": str(tmp_path / "runs"),
                           "model": {"name": "small_cnn", "width": 16}}), 0.9)
    printed: list[str] = []
    out = build_leaderboard(tmp_path / "runs", echo=printed.append)
    table = pd.read_parquet(out / "leaderboard.parquet")
    assert list(table.columns[:7]) == ["name", "dataset", "threat_model", "eps", "clean_acc", "headline_acc",
                                       "n_seeds"]
    assert len(table) == 3 and len(pd.read_parquet(out / "leaderboard_runs.parquet")) == 5
    a = table[table["name"].str.startswith("lb/a (config ") & (table["n_seeds"] == 3)].iloc[0]
    values = [100 * v for v in clean["a"]]
    mean, sem = sum(values) / 3, stats.sem(values)
    low, high = stats.t.interval(0.95, 2, loc=mean, scale=sem)
    assert a["clean_acc"] == round(mean, 2) and a["clean_acc_n"] == 3
    assert a["clean_acc_low"] == round(low, 2) and a["clean_acc_high"] == round(high, 2)
    assert a["robust_acc"] == 25.0 and a["pgd_linf[steps=10]@0.1"] == 25.0 and a["seeds"] == "0, 1, 2"
    for column in ("clean_acc", "clean_acc_low", "clean_acc_high", "robust_acc"):
        assert round(a[column], 2) == a[column]  # no float noise such as 48.666666667
    b = table[table["name"] == "lb/b"].iloc[0]
    assert b["n_seeds"] == 1 and b["clean_acc"] == 80.0 and pd.isna(b["clean_acc_low"])  # no interval from one seed
    other = table[table["name"].str.startswith("lb/a (config ") & (table["n_seeds"] == 1)].iloc[0]
    assert other["configuration"] != a["configuration"] and other["name"] != a["name"]
    for card in ("lb__a__seed0", "lb__a__seed1", "lb__a__seed2", "lb__a__seed7", "lb__b__seed0"):
        assert (out / "model_info" / "digits" / "Linf" / f"{card}.json").is_file()  # per-seed cards stay
    page = (out / "leaderboard.html").read_text()
    assert f'{round(mean, 2):.2f} <span class="ci">[{round(low, 2):.2f}, {round(high, 2):.2f}]</span>' in page
    assert "clean_acc_low" not in page and "46.000001" not in page
    (console,) = printed
    lines = console.splitlines()
    assert lines[0].split() == ["name", "dataset", "threat_model", "eps", "clean_acc", "headline_acc", "n_seeds",
                                "robust_acc"]
    assert len(lines) == 4 and [line.split()[-1] for line in lines[1:]] == ["45.0", "40.0", "37.4]"]  # best first
    assert lines[2].startswith("lb/b ")
    assert f"{round(mean, 2):.1f} [{round(low, 2):.1f}, {round(high, 2):.1f}]" in console


def test_html_escapes_what_it_shows():
    page = render_html([{"model": "<script>alert(1)</script>", "robust_acc": 1.0}])
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_bad_input_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BrainAlignError, match="no finished run folders"):
        build_leaderboard(tmp_path / "empty")
    with pytest.raises(BrainAlignError, match="not a folder"):
        build_leaderboard(tmp_path / "missing")
    with pytest.raises(ConfigError, match="threat_model must be one of Linf, L2"):
        build_leaderboard(tmp_path / "empty", threat_model="L1")
