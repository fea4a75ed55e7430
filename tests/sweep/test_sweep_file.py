"""The sweep file and everything checked before a trial starts (no Ray needed)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from brainalign import sweep as sweep_mod
from brainalign.errors import ConfigError
from brainalign.io import read_json, write_json, write_yaml
from brainalign.sweep import MANIFEST, RESULT, load_sweep, run_sweep, selection_table

ATTACK = "pgd_linf[steps=2]"
PIXEL = [{"name": "pixel_similarity", "weight": 1.0, "params": {"threshold": 0.4}}]


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if the sweep reaches for Ray (everything here happens before any trial starts)."""

    def forbidden():
        raise AssertionError("Ray was needed, but nothing should have run")

    monkeypatch.setattr(sweep_mod, "_import_ray", forbidden)


def test_grid_gives_every_combination_with_stable_readable_names(sweep_file):
    path = sweep_file(grid={"seed": [0, 1], "train.lr": [0.003, 0.01]})
    sweep = load_sweep(path)
    assert [t.key for t in sweep.trials] == ["lr=0.003__seed0", "lr=0.01__seed0", "lr=0.003__seed1", "lr=0.01__seed1"]
    assert [(t.seed, t.config.train.lr) for t in sweep.trials] == [(0, 0.003), (0, 0.01), (1, 0.003), (1, 0.01)]
    assert all(t.run_dir.parent == sweep.experiment_dir for t in sweep.trials)
    assert load_sweep(path).hash == sweep.hash  # the same file, the same identity


def test_default_names_use_the_shortest_unambiguous_field_suffix(sweep_file):
    path = sweep_file(base={"regularizers": PIXEL * 2},
                      grid={"regularizers.0.weight": [0, 2.5], "regularizers.1.weight": [1.0],
                            "train.weight_decay": [0.001], "regularizers.0.params.threshold": [0.2]})
    names = [t.name for t in load_sweep(path).trials]
    assert names == ["0.weight=0-1.weight=1-weight_decay=0.001-threshold=0.2",
                     "0.weight=2.5-1.weight=1-weight_decay=0.001-threshold=0.2"]


def test_random_search_is_reproducible_in_range_and_named_by_template(sweep_file):
    random = {"num_samples": 3, "seed": 7,
              "train.lr": {"distribution": "loguniform", "low": 1e-4, "high": 1e-1},
              "model.width": {"distribution": "choice", "values": [8, 12]}}
    path = sweep_file(grid={"seed": [0]}, random=random, name_template="lr{train.lr:.3g}-w{model.width}")
    first, again = load_sweep(path), load_sweep(path)
    lrs = [t.config.train.lr for t in first.trials]
    assert lrs == [t.config.train.lr for t in again.trials] and len(set(lrs)) == 3
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    assert all(t.config.model.width in (8, 12) for t in first.trials)
    assert all(t.name == f"lr{t.config.train.lr:.3g}-w{t.config.model.width}" for t in first.trials)
    other = load_sweep(sweep_file("other.yaml", grid={"seed": [0]}, random={**random, "seed": 8},
                                  name_template="lr{train.lr:.3g}-w{model.width}"))
    assert [t.config.train.lr for t in other.trials] != lrs and other.hash != first.hash


@pytest.mark.parametrize("grid, message", [
    ({"train.epochs": [2, 0]}, r"grid train.epochs=0 is invalid: train.epochs: .*greater than or equal to 1"),
    ({"model.name": ["small_cnn", "vgg"]}, r"grid model.name='vgg' is invalid: model.name: unknown model 'vgg'"),
    ({"train.optimizer": ["adam", "rmsprop"]}, r"grid train.optimizer='rmsprop' is invalid: .*must be 'sgd' or"),
    ({"regularizers.2.weight": [1.0]},
     r"^field 'regularizers.2.weight': index 2 is out of range \(regularizers has 0 entries\)$"),
    ({"train.lr": 0.01}, r"grid.train.lr: must be a non-empty list"),
    ({"name": ["a", "b"]}, r"name cannot be swept"),
    ({"train.nonsense": [1]}, r"grid train.nonsense=1 is invalid: train.nonsense: unknown field"),
])
def test_an_invalid_grid_value_names_the_field_and_value(sweep_file, grid, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(sweep_file(grid=grid))


@pytest.mark.parametrize("spec, message", [
    ({"distribution": "normal", "low": 0, "high": 1}, r"random.train.lr.distribution: must be one of uniform"),
    ({"distribution": "loguniform", "low": 0.0, "high": 1.0}, r"random.train.lr: need 0 < low < high"),
    ({"distribution": "uniform", "low": 0.1}, r"random.train.lr: .*missing high"),
    ({"distribution": "uniform", "low": -1.0, "high": 0.1}, r"random train.lr=-1.0 is invalid: train.lr: .*greater"),
])
def test_an_invalid_distribution_is_refused(sweep_file, spec, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(sweep_file(random={"num_samples": 2, "train.lr": spec}))


def test_names_that_collide_or_name_nothing_are_refused(sweep_file):
    with pytest.raises(ConfigError, match=r"two trials get the run folder same__seed0"):
        load_sweep(sweep_file(grid={"train.lr": [0.003, 0.01]}, name_template="same"))
    with pytest.raises(ConfigError, match=r"name_template: \{train.typo\} is neither"):
        load_sweep(sweep_file(grid={"train.lr": [0.003]}, name_template="x{train.typo}"))


def test_execution_settings_are_validated_but_not_part_of_the_identity(sweep_file):
    laptop = load_sweep(sweep_file("a.yaml", grid={"seed": [0, 1]}, sweep={"max_concurrent": 1}))
    cluster = load_sweep(sweep_file("b.yaml", grid={"seed": [0, 1]},
                                    sweep={"max_concurrent": 64, "cpus_per_trial": 4, "retries": 5}))
    assert laptop.hash == cluster.hash and cluster.execution.retries == 5
    with pytest.raises(ConfigError, match=r"sweep.retries: must be a whole number >= 0"):
        load_sweep(sweep_file("c.yaml", sweep={"retries": -1}))
    with pytest.raises(ConfigError, match=r"sweep.workers: unknown field"):
        load_sweep(sweep_file("d.yaml", sweep={"workers": 2}))


def test_another_sweeps_folder_is_refused_before_any_trial(sweep_file, no_ray):
    first = load_sweep(sweep_file("a.yaml", grid={"train.lr": [0.003, 0.01]}))
    write_json(first.experiment_dir / MANIFEST, first.manifest())
    second = sweep_file("b.yaml", grid={"train.lr": [0.003, 0.03]})
    with pytest.raises(ConfigError, match=r"holds the results of another sweep \(differs in: grid\); never overwrit"):
        run_sweep(second, progress=False)
    assert read_json(first.experiment_dir / MANIFEST)["hash"] == first.hash
    assert sorted(p.name for p in first.experiment_dir.iterdir()) == [MANIFEST]


def test_a_run_folder_of_another_configuration_is_refused_before_any_trial(sweep_file, no_ray):
    sweep = load_sweep(sweep_file(grid={"train.lr": [0.003, 0.01]}))
    other = sweep.trials[1].config.model_copy(update={"train": sweep.trials[1].config.train.model_copy(
        update={"epochs": 5})})
    write_yaml(other.run_dir / "config.yaml", other.to_dict())
    before = (other.run_dir / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"lr=0.01__seed0 holds a run of another configuration \(differs in: train\)"):
        run_sweep(sweep.path, progress=False)
    assert (other.run_dir / "config.yaml").read_text() == before
    assert not (sweep.experiment_dir / MANIFEST).exists()


def test_an_unreachable_cluster_is_a_clear_error_before_any_trial(sweep_file):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = sweep_file(grid={"train.lr": [0.003]})
    with pytest.raises(ConfigError, match=rf"cannot reach a Ray cluster at 127.0.0.1:{port} \(.*refused.*\)"):
        run_sweep(path, address=f"127.0.0.1:{port}", progress=False)
    with pytest.raises(ConfigError, match=r"expected host:port"):
        run_sweep(path, address="nohost", progress=False)
    assert not load_sweep(path).experiment_dir.exists()


def test_without_ray_the_error_says_what_to_install(sweep_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'brainalign\[sweep\]'"):
        run_sweep(sweep_file(grid={"train.lr": [0.003]}), progress=False)


def test_finished_trials_are_skipped_without_starting_ray(sweep_file, fake_run, no_ray):
    sweep = load_sweep(sweep_file(grid={"seed": [0, 1]}))
    for t in sweep.trials:
        fake_run(t.config, clean=0.9)
    result = run_sweep(sweep.path, progress=False)
    assert [t.status for t in result.trials] == ["skipped", "skipped"] and result.complete
    saved = read_json(sweep.experiment_dir / RESULT)
    assert [t["status"] for t in saved["trials"]] == ["skipped", "skipped"]
    assert read_json(sweep.experiment_dir / MANIFEST)["hash"] == sweep.hash


def test_a_run_missing_an_attack_is_not_finished(sweep_file, fake_run):
    sweep = load_sweep(sweep_file())
    fake_run(sweep.trials[0].config, clean=0.9, robustness={"fgsm": {"eps": [0.0, 0.1], "accuracy": [0.9, 0.1]}})
    assert not sweep_mod.is_finished(sweep.trials[0].config)
    fake_run(sweep.trials[0].config, clean=0.9)
    assert sweep_mod.is_finished(sweep.trials[0].config)


VAL_EVAL = {"n_examples": 100, "split": "val",
            "attacks": [{"name": "pgd_linf", "eps": [0.0, 0.1], "params": {"steps": 2}}]}


def _objective_sweep(sweep_file, **objective):
    return load_sweep(sweep_file(
        base={"regularizers": PIXEL, "eval": VAL_EVAL},
        grid={"seed": [0, 1], "regularizers.0.weight": [0.0, 1.0, 2.0]},
        objective={"attack": ATTACK, "eps": 0.1, "baseline": {"regularizers.0.weight": 0.0}, **objective}))


def test_selection_rule_objective_is_computed_from_run_folders_against_the_baseline(sweep_file, fake_run):
    sweep = _objective_sweep(sweep_file)
    # (clean, robust at eps 0.1) per (weight, seed); weight 0 is the baseline.
    table = {(0.0, 0): (0.90, 0.20), (0.0, 1): (0.90, 0.20),
             (1.0, 0): (0.86, 0.28), (1.0, 1): (0.84, 0.32),   # clean ratio .944 >= .9, robust 1.5 > 1: accept
             (2.0, 0): (0.70, 0.50), (2.0, 1): (0.72, 0.50)}   # clean ratio .789 < .9: reject
    for t in sweep.trials:
        clean, robust = table[(t.params["regularizers.0.weight"], t.seed)]
        fake_run(t.config, clean, {ATTACK: {"eps": [0.0, 0.1], "accuracy": [clean, robust]}})
    rows = {json.dumps(r["setting"]): r for r in selection_table(sweep)}
    accepted, rejected = rows['{"regularizers.0.weight": 1.0}'], rows['{"regularizers.0.weight": 2.0}']
    assert accepted["accepted"] is True and accepted["n_seeds"] == 2
    assert accepted["clean_ratio"] == pytest.approx(0.85 / 0.90) and accepted["robust_ratio"] == pytest.approx(1.5)
    assert rejected["accepted"] is False and rejected["clean_ratio"] == pytest.approx(0.71 / 0.90)
    assert len(rows) == 2  # the baseline is not a candidate


def test_selection_rule_waits_for_unfinished_runs_and_refuses_attacks_not_evaluated(sweep_file, fake_run):
    sweep = _objective_sweep(sweep_file)
    fake_run(sweep.trials[0].config, 0.9)
    assert all(r["accepted"] is None and r["unfinished"] for r in selection_table(sweep))
    with pytest.raises(ConfigError, match=r"does not evaluate fgsm at eps 0.1"):
        _objective_sweep(sweep_file, attack="fgsm")
    with pytest.raises(ConfigError, match=r"objective.baseline: 'train.lr' is not a swept field"):
        _objective_sweep(sweep_file, baseline={"train.lr": 0.1})


def test_selection_never_reads_test_images(sweep_file):
    with pytest.raises(ConfigError, match=r"evaluates the test split; selection reads the validation split only"):
        load_sweep(sweep_file(base={"regularizers": PIXEL},
                              grid={"seed": [0], "regularizers.0.weight": [0.0, 1.0]},
                              objective={"attack": ATTACK, "eps": 0.1, "baseline": {"regularizers.0.weight": 0.0}}))


def test_named_settings_cross_the_grid_and_name_the_runs(sweep_file):
    settings = [{"name": "baseline", "set": {}},
                {"name": "pix-w2", "set": {"regularizers": PIXEL, "regularizers.0.weight": 2.0}}]
    sweep = load_sweep(sweep_file(settings=settings, grid={"seed": [0, 1]}))
    assert [t.key for t in sweep.trials] == ["baseline__seed0", "baseline__seed1", "pix-w2__seed0", "pix-w2__seed1"]
    assert sweep.trials[0].config.regularizers == [] and sweep.trials[2].config.regularizers[0].weight == 2.0
    assert sweep.trials[2].params == {"setting": "pix-w2", "seed": 0}
    with pytest.raises(ConfigError, match=r"settings.1 \(bad\) is invalid: .*weight"):
        load_sweep(sweep_file(settings=[settings[0], {"name": "bad", "set": {"regularizers": PIXEL,
                                                                               "regularizers.0.weight": -1}}]))
    with pytest.raises(ConfigError, match=r"settings.1.name: 'baseline' must be unique"):
        load_sweep(sweep_file(settings=[settings[0], settings[0]]))


@pytest.mark.parametrize("name, n_trials", [("sweep_pixel.yaml", 27), ("sweep_random.yaml", 8)])
def test_the_shipped_sweep_files_are_valid(name, n_trials):
    sweep = load_sweep(Path(__file__).parents[2] / "configs" / name)
    assert len(sweep.trials) == n_trials and len({t.key for t in sweep.trials}) == n_trials
    assert sweep.experiment_dir.name == name.removesuffix(".yaml")


def test_a_trials_line_is_rounded_and_names_the_headline():
    from brainalign.headline import HEADLINE_NAME
    from brainalign.sweep import trial_line

    line = trial_line(2, 4, "sw-lr=0.003__seed1", "finished", clean=0.9123456, headline=1 / 3, seconds=12.46)
    assert line == f"[2/4]  finished  sw-lr=0.003__seed1  clean 91.2%  {HEADLINE_NAME} 33.3%  12 s"
    failed = trial_line(1, 1, "x__seed0", "failed", error="ConfigError: bad")
    assert failed == "[1/1]  failed    x__seed0  (ConfigError: bad)"
    assert "nan" not in trial_line(1, 1, "x__seed0", "finished", clean=0.5, headline=float("nan"))


def test_the_sweep_summary_counts_trials_and_rounds_the_selection(tmp_path):
    from brainalign.sweep import SweepResult, TrialOutcome, sweep_summary_lines

    trials = [TrialOutcome("a", 0, {}, tmp_path / "a__seed0", "finished"),
              TrialOutcome("b", 0, {}, tmp_path / "b__seed0", "skipped"),
              TrialOutcome("c", 0, {}, tmp_path / "c__seed0", "failed", "ValueError: boom")]
    selection = [{"setting": {"train.lr": 0.01}, "accepted": True, "clean_ratio": 0.98765432,
                  "robust_ratio": 1.2345678, "n_seeds": 2}]
    lines = sweep_summary_lines(SweepResult(tmp_path, tmp_path / "m.json", trials, selection, seconds=33.7))
    assert lines[0] == "3 trials in 34 s: 1 finished, 1 skipped (finished before), 1 failed"
    assert lines[1] == f"failed   {tmp_path / 'c__seed0'}  (ValueError: boom)"
    assert lines[2] == "accepted=True  train.lr=0.01  clean ratio 0.988, robust ratio 1.235, 2 seeds"
    assert lines[3] == f"sweep folder: {tmp_path}" and len(lines) == 4


def test_trial_lines_reach_the_callers_stdout_while_tune_is_silenced(sweep_file, capsys):
    pytest.importorskip("ray")
    from types import SimpleNamespace

    from brainalign.sweep import _quiet_tune, _trial_reporter, load_sweep

    sweep = load_sweep(sweep_file(grid={"train.lr": [0.003, 0.01]}))
    reporter = _trial_reporter(sweep.trials, print)
    trial = SimpleNamespace(config={"trial": {"key": sweep.trials[1].key}}, last_result={"run_complete": True},
                            num_failures=1)
    with _quiet_tune():
        from ray import cloudpickle

        cloudpickle.dumps(reporter)  # Tune pickles its callbacks: no stream may be held (pytest's is not picklable)
        print("Tune's own output")
        reporter.on_trial_recover(0, [], trial)
        reporter.on_trial_complete(0, [], trial)
    out = capsys.readouterr().out
    name = f"{sweep.trials[1].name}__seed{sweep.trials[1].seed}"
    assert "Tune's own output" not in out
    assert out.splitlines()[0].startswith(f"[retry]  {name}  ") and "attempt 2" in out
    # the run folder does not exist and Tune never said it started: no numbers, no time
    assert out.splitlines()[1] == f"[1/2]  finished  {name}"
