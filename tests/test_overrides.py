"""`--set` overrides: fields, list entries by index, appends with +=, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from brainalign.cli import main
from brainalign.config import apply_overrides, get_field, load_config, set_field
from brainalign.errors import ConfigError

CONFIGS = Path(__file__).parents[1] / "configs"
TWIN = CONFIGS / "offline" / "dapello2023_cka.yaml"  # one cka regularizer on sim_it


def test_edit_a_list_entry_by_index():
    config = load_config(TWIN, ["regularizers.0.weight=3", "regularizers.0.name=neural_prediction",
                                "regularizers.0.params={layers: [layer4]}"])
    (reg,) = config.regularizers
    assert (reg.name, reg.weight, reg.params) == ("neural_prediction", 3.0, {"layers": ["layer4"]})
    assert reg.recording.name == "sim_it"


def test_negative_index_counts_from_the_end():
    config = load_config(TWIN, ["regularizers+={name: spectral}", "regularizers.-1.weight=0.5",
                                "regularizers.-2.weight=2"])
    assert [(r.name, r.weight) for r in config.regularizers] == [("cka", 2.0), ("spectral", 0.5)]


def test_append_a_flow_mapping_creates_the_list_when_absent():
    config = load_config(CONFIGS / "baseline.yaml", ["regularizers+={name: cka, recording: {name: sim_it}}",
                                                     "eval.attacks+={name: fgsm, eps: [0, 0.1]}"])
    (reg,) = config.regularizers
    assert reg.name == "cka" and reg.recording.name == "sim_it" and reg.weight == 1.0
    assert [(a.name, a.eps) for a in config.eval.attacks] == [("fgsm", [0.0, 0.1])]


def test_append_to_a_list_inside_free_form_params():
    config = load_config(TWIN, ["regularizers.0.params.layers+=layer3", "regularizers.0.params.extra_list+=1"])
    assert config.regularizers[0].params["layers"] == ["layer4", "layer3"]
    assert config.regularizers[0].params["extra_list"] == [1]


def test_replace_an_entry_or_the_whole_list():
    data = apply_overrides({"regularizers": [{"name": "cka"}, {"name": "spectral"}]},
                           ["regularizers.1={name: dcca}"])
    assert data["regularizers"] == [{"name": "cka"}, {"name": "dcca"}]
    assert load_config(TWIN, ["regularizers=[]"]).regularizers == []


@pytest.mark.parametrize(("path", "override", "message"), [
    (TWIN, "regularizers.3.weight=1",
     r"^override 'regularizers.3.weight': index 3 is out of range \(regularizers has 1 entry; use 0..0, "
     r"or add one with regularizers\+=\.\.\.\)$"),
    (TWIN, "regularizers.-2.weight=1", r"index -2 is out of range \(regularizers has 1 entry"),
    (CONFIGS / "baseline.yaml", "regularizers.0.weight=3",
     r"index 0 is out of range \(regularizers has 0 entries; add one with regularizers\+=\.\.\.\)$"),
    (TWIN, "regularizers.first.weight=1", r"regularizers is a list; 'first' is not an index \(use 0..0\)"),
    (TWIN, "train.epochs.0=1", r"train.epochs is a value, not a section or a list"),
    (TWIN, "train.epochs+=1", r"^override 'train.epochs\+=': train.epochs is not a list"),
    (CONFIGS / "baseline.yaml", "train.lr+=1", r"train.lr is not a list"),
    (TWIN, "+=1", r"must look like section.field=value \(or list\+=entry\)"),
])
def test_bad_overrides_name_the_problem(path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(path, [override])


def test_cli_rejects_a_bad_index_in_one_line_and_writes_nothing(tmp_path, capsys):
    code = main(["train", str(TWIN), "--set", f"out_dir={tmp_path}", "--set", "regularizers.1.weight=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "index 1 is out of range" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_missing_sections_inside_a_new_entry_are_created():
    config = load_config(CONFIGS / "baseline.yaml", [
        "regularizers+={name: cka}", "regularizers.0.recording.name=sim_it",
        "regularizers.0.recording.options.n_stimuli=300",
        "eval.attacks+={name: fgsm, eps: [0.0]}", "eval.attacks.0.eps+=0.1"])
    rec = config.regularizers[0].recording
    assert (rec.name, rec.options) == ("sim_it", {"n_stimuli": 300})
    assert config.eval.attacks[0].eps == [0.0, 0.1]


def test_sweeps_and_overrides_walk_dotted_paths_the_same_way():
    data = {"regularizers": [{"name": "cka", "params": {"layers": ["a"]}}]}
    set_field(data, "regularizers.-1.params.layers", ["b"], source="field")
    assert get_field(data, "regularizers.0.params.layers") == get_field(data, "regularizers.-1.params.layers") == ["b"]
    assert apply_overrides(data, ["regularizers.0.weight=2"])["regularizers"][0]["weight"] == 2
    with pytest.raises(KeyError):
        get_field(data, "regularizers.1.weight")
    # A sweep field cannot append, so its error does not suggest +=; an override's does.
    with pytest.raises(ConfigError, match=r"^field 'regularizers.1.weight': index 1 is out of range "
                                          r"\(regularizers has 1 entry; use 0..0\)$"):
        set_field(data, "regularizers.1.weight", 1.0, source="field")
    with pytest.raises(ConfigError, match=r"use 0..0, or add one with regularizers\+=\.\.\.\)$"):
        set_field(data, "regularizers.1.weight", 1.0)
