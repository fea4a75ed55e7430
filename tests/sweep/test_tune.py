"""The one selection rule (brainalign.tune) and `brainalign tune`, from run folders written without training."""

from __future__ import annotations

import json

import pytest
import yaml

from brainalign import sweep as sweep_mod
from brainalign.config import parse_config, read_yaml
from brainalign.demo import condition_config, config_digest, load_conditions
from brainalign.errors import ConfigError
from brainalign.io import read_json
from brainalign.regularizers import selection_rule
from brainalign.tune import (
    ACCEPTED,
    FALLBACK_BEST_CLEAN,
    FALLBACK_CLEAN_KEPT,
    accepts,
    load_tuning,
    run_tuning,
    select,
    sweep_content,
)

ATTACK = "pgd_linf[steps=2]"
LAYERS = ["conv1", "conv2", "conv3"]


def row(setting, clean, robust, base_clean=0.9, base_robust=0.2):
    return {"setting": {"setting": setting}, "clean_reg": clean, "robust_reg": robust, "clean_unreg": base_clean,
            "robust_unreg": base_robust, "accepted": accepts(clean, base_clean, robust, base_robust)}


def test_the_rule_is_defined_once():
    assert selection_rule is not accepts  # the pixel module's name calls the one definition
    for args in [(0.85, 0.9, 0.3, 0.2), (0.80, 0.9, 0.3, 0.2), (0.9, 0.9, 0.2, 0.2), (0.5, 0.0, 0.1, 0.0)]:
        assert selection_rule(*args) is accepts(*args)
    assert accepts(0.81, 0.9, 0.21, 0.2) and not accepts(0.80, 0.9, 0.21, 0.2)  # 0.9 x 0.9 = 0.81 is kept


def test_select_takes_the_accepted_setting_with_the_highest_validation_robust_accuracy():
    rows = [row("a", 0.85, 0.30), row("b", 0.95, 0.25), row("c", 0.70, 0.60), row("d", 0.88, 0.30)]
    choice = select(rows)
    # c is the most robust but loses clean accuracy (0.70 < 0.81); a and d tie on robust: higher clean wins.
    assert choice["status"] == ACCEPTED and choice["row"]["setting"]["setting"] == "d" and choice["n_accepted"] == 3


def test_with_no_accepted_setting_the_fallback_is_stated():
    kept = [row("a", 0.85, 0.15), row("b", 0.90, 0.19), row("c", 0.70, 0.60)]
    choice = select(kept)
    assert choice["status"] == FALLBACK_CLEAN_KEPT and choice["row"]["setting"]["setting"] == "b"
    lost = [row("a", 0.70, 0.50), row("b", 0.75, 0.10)]
    choice = select(lost)
    assert choice["status"] == FALLBACK_BEST_CLEAN and choice["row"]["setting"]["setting"] == "b"
    with pytest.raises(ConfigError, match="not finished"):
        select([{**row("a", 0.9, 0.3), "accepted": None}])


@pytest.fixture
def tuning_file(tmp_path):
    def make(**over):
        data = {
            "experiment": "tn", "out_dir": str(tmp_path / "runs"), "seeds": [0, 1],
            "attack": {"name": "pgd_linf", "params": {"steps": 2}},
            "base": {"model": {"name": "small_cnn", "width": 8},
                     "train": {"epochs": 2, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0, "threads": 1},
                     "eval": {"n_examples": 100}},
            "methods": {
                "baseline": {},
                "pixel_similarity": {
                    "regularizers": [{"name": "pixel_similarity", "weight": 1.0,
                                      "params": {"threshold": 0.4, "layers": LAYERS}}],
                    "grid": {"regularizers.0.weight": [1.0, 3.0], "regularizers.0.params.layers": [LAYERS, ["fc"]]}},
                "decorrelation": {
                    "role": "control",
                    "regularizers": [{"name": "decorrelation", "weight": 1.0, "params": {"layers": LAYERS}}],
                    "grid": {"regularizers.0.weight": [0.5]},
                    "matched": {"of": "pixel_similarity",
                                "copy": ["regularizers.0.weight", "regularizers.0.params.layers"]}},
            },
            **over,
        }
        path = tmp_path / "tune.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return make


def test_tuning_file_expands_to_one_sweep_on_the_validation_split(tuning_file):
    path = tuning_file()
    content = sweep_content(load_tuning(path))
    sweep = sweep_mod.load_sweep(path, content)
    assert len(sweep.trials) == 2 * (1 + 4 + 1)
    assert {t.config.eval.split for t in sweep.trials} == {"val"}
    assert all(not t.config.eval.selfchecks for t in sweep.trials)
    # The cheap attack at the data set's headline eps (digits: 0.1), with the clean point.
    assert sweep.objective.attack == ATTACK and sweep.objective.eps == 0.1
    assert [a.eps for a in sweep.trials[0].config.eval.attacks] == [[0.0, 0.1]]
    names = sorted({t.name for t in sweep.trials})
    assert "pixel_similarity-weight=3-layers=fc" in names
    assert "pixel_similarity-weight=1-layers=conv1_conv2_conv3" in names


@pytest.mark.parametrize("over, message", [
    ({"methods": {"pixel": {}}}, r"methods: a mapping .* with a 'baseline'"),
    ({"seeds": []}, r"seeds: a non-empty list"),
    ({"methods": {"baseline": {}, "x": {"role": "cure"}}}, r"methods.x.role: must be one of"),
    ({"methods": {"baseline": {}, "x": {"wieght": 1}}}, r"methods.x: unknown key 'wieght'"),
    ({"methods": {"baseline": {}, "x": {"matched": {"of": "nothing", "copy": []}}}}, r"methods.x.matched"),
])
def test_a_bad_tuning_file_names_the_field(tuning_file, tmp_path, over, message):
    with pytest.raises(ConfigError, match=message):
        run_tuning(tuning_file(**over), tmp_path / "tuned")
    assert not (tmp_path / "tuned").exists()


def test_run_tuning_selects_per_method_and_writes_configs_and_manifest(tuning_file, fake_run, tmp_path, monkeypatch):
    path = tuning_file()
    sweep = sweep_mod.load_sweep(path, sweep_content(load_tuning(path)))
    # (val clean, val robust) per setting; the baseline: 0.90 / 0.20 on both seeds.
    table = {"baseline": (0.90, 0.20),
             "pixel_similarity-weight=1-layers=conv1_conv2_conv3": (0.88, 0.30),
             "pixel_similarity-weight=3-layers=conv1_conv2_conv3": (0.86, 0.35),   # accepted, most robust
             "pixel_similarity-weight=1-layers=fc": (0.89, 0.20),                 # no gain
             "pixel_similarity-weight=3-layers=fc": (0.60, 0.50),                 # clean lost
             "decorrelation-weight=0.5": (0.90, 0.18)}                            # no accepted setting
    for t in sweep.trials:
        clean, robust = table[t.params["setting"]]
        fake_run(t.config, 0.5, {ATTACK: {"eps": [0.0, 0.1], "accuracy": [clean, robust]}}, final_train_loss=0.1)
    monkeypatch.setattr(sweep_mod, "_import_ray", lambda: pytest.fail("every trial was finished"))
    out = tmp_path / "tuned"
    manifest = run_tuning(path, out, progress=False)

    pixel = manifest["methods"]["pixel_similarity"]
    assert pixel["selected"] == {"setting": "pixel_similarity-weight=3-layers=conv1_conv2_conv3", "status": ACCEPTED,
                                 "n_accepted": 2}
    assert manifest["methods"]["decorrelation"]["selected"]["status"] == FALLBACK_CLEAN_KEPT
    assert manifest["rule"]["split"] == "val" and manifest["seeds"] == [0, 1] and manifest["git_commit"]
    assert manifest["trial_git_commits"] == [manifest["git_commit"]]  # the code every trial ran on
    setting = next(s for s in pixel["settings"] if s["setting"] == pixel["selected"]["setting"])
    assert setting["clean_reg"] == pytest.approx(0.86) and setting["robust_unreg"] == pytest.approx(0.20)
    assert [s["val_robust"] for s in setting["per_seed"]] == pytest.approx([0.35, 0.35])
    assert read_json(out / "manifest.json") == json.loads(json.dumps(manifest))

    # Each config is an ordinary run config: the selected setting's training sections (eval is the user's).
    tuned = parse_config(read_yaml(out / "pixel_similarity.yaml"))
    assert tuned.regularizers[0].weight == 3.0 and tuned.regularizers[0].params["layers"] == LAYERS
    assert tuned.eval.split == "test" and tuned.train.epochs == 2
    # The control at its regularizer's selected settings (same weight and layers), and at its own best.
    matched = parse_config(read_yaml(out / "decorrelation_matched.yaml"))
    own = parse_config(read_yaml(out / "decorrelation.yaml"))
    assert (matched.regularizers[0].name, matched.regularizers[0].weight) == ("decorrelation", 3.0)
    assert own.regularizers[0].weight == 0.5
    assert sorted(p.name for p in out.iterdir()) == ["baseline.yaml", "decorrelation.yaml",
                                                     "decorrelation_matched.yaml", "manifest.json",
                                                     "pixel_similarity.yaml"]

    # The demo runs every condition at its tuned setting, each control both ways.
    conditions, schedule = load_conditions(out)
    assert [c.name for c in conditions] == ["baseline", "pixel_similarity", "decorrelation_own_best",
                                            "decorrelation_matched"]
    assert schedule["epochs"] == 2 and conditions[1].regularizers[0]["weight"] == 3.0
    assert conditions[2].tuned["status"] == FALLBACK_CLEAN_KEPT and conditions[3].tuned["status"] == "matched"
    config = condition_config(conditions[3], seed=4, out_dir=tmp_path / "demo", quick=False, schedule=schedule)
    assert config.regularizers[0].weight == 3.0 and config.seed == 4 and config.eval.split == "test"
    assert {a.name for a in config.eval.attacks} >= {"apgd_ce_t_linf", "pgd_linf"}
    assert [a.params["steps"] for a in config.eval.attacks if a.name.startswith("apgd")] == [100]
    # The headline attack at the headline eps alone; the checks of the evaluation on seed 0 only.
    assert [a.eps for a in config.eval.attacks if a.name.startswith("apgd")] == [[0.0, 0.1]]
    assert not config.eval.selfchecks and config.eval.headline_check == 0
    first = condition_config(conditions[1], seed=0, out_dir=tmp_path / "demo", quick=False, schedule=schedule)
    assert first.eval.selfchecks and first.eval.headline_check == 0  # the headline check is stored ...
    checked = condition_config(conditions[1], seed=0, out_dir=tmp_path / "demo", quick=False, schedule=schedule,
                               check=True)
    assert checked.eval.headline_check > 0  # ... by `brainalign demo --check`
    # A stored check speaks for a condition while what makes its model and headline is unchanged.
    digest = config_digest(first)
    assert config_digest(checked) == digest
    moved = first.to_dict()
    moved["out_dir"] = str(tmp_path / "elsewhere")
    moved["eval"]["attacks"] = [a for a in moved["eval"]["attacks"] if a["name"] != "pgd_linf"]
    assert config_digest(parse_config(moved)) == digest
    for section, key, value in (("train", "epochs", 3), ("eval", "n_examples", 17)):
        changed = first.to_dict()
        changed[section][key] = value
        assert config_digest(parse_config(changed)) != digest, key
    heavier = first.to_dict()
    heavier["regularizers"][0]["weight"] = 4.0
    assert config_digest(parse_config(heavier)) != digest
