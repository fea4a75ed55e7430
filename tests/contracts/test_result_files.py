"""result.json is validated on every read: a newer schema_version is refused naming both versions, an older
one is migrated explicitly, a wrong-shaped file is one line; weights of another architecture are one line."""

from __future__ import annotations

import pytest

from brainalign import results
from brainalign.errors import DataError

DROP = "<drop>"  # as in conftest.py: leaves the field out

BAD_FILES = [
    ({"schema_version": 99}, ["schema_version 99 is newer", f"schema_version {results.SCHEMA_VERSION}", "upgrade"]),
    ({"schema_version": 0}, ["schema_version must be a whole number >= 1", "got 0"]),
    ({"schema_version": DROP}, ["schema_version must be a whole number >= 1", "got None"]),
    ({"robustness": [1, 2]}, ["robustness", "dictionary"]),
    ({"robustness": {"pgd_linf": {"eps": [0.0, 0.1], "accuracy": [0.5]}}},
     ["robustness.pgd_linf", "1 accuracies for 2 strengths"]),
    ({"clean_accuracy": "high"}, ["clean_accuracy", "number"]),
    ({"clean_accuracy": 7.0}, ["clean_accuracy", "less than or equal to 1"]),
    ({"seed": DROP}, ["seed: Field required"]),
]


def commands(run_dir):
    experiment = run_dir.parent
    return {
        "evaluate": ["evaluate", run_dir, "--n-examples", "40"],
        "evaluate-options-first": ["evaluate", "--n-examples", "40", run_dir],
        "leaderboard": ["leaderboard", experiment, "--out", experiment / "lb"],
        "report": ["report", experiment],
        "study": ["study", experiment, "--recording", "sim_eeg", "--option", "n_stimuli=50"],
    }


@pytest.mark.parametrize("command", ["evaluate", "evaluate-options-first", "leaderboard", "report", "study"])
@pytest.mark.parametrize(("fields", "needles"), BAD_FILES, ids=[str(f) for f, _ in BAD_FILES])
def test_a_bad_result_file_is_one_line_for_every_reader(refused, untrained_run, fields, needles, command):
    run_dir = untrained_run(**fields)
    before = (run_dir / results.RESULT).read_bytes()
    refused(commands(run_dir)[command], str(run_dir / results.RESULT), *needles)
    assert (run_dir / results.RESULT).read_bytes() == before


def test_an_older_schema_is_migrated_explicitly(untrained_run, monkeypatch):
    run_dir = untrained_run()
    monkeypatch.setattr(results, "SCHEMA_VERSION", results.SCHEMA_VERSION + 1)
    with pytest.raises(DataError, match="cannot be migrated"):
        results.read_result(run_dir)
    monkeypatch.setitem(results.MIGRATIONS, results.SCHEMA_VERSION - 1, lambda d: {**d, "migrated": True})
    migrated = results.read_result(run_dir)
    assert migrated["schema_version"] == results.SCHEMA_VERSION and migrated["migrated"] is True


def test_a_result_that_would_not_read_back_is_not_written(tmp_path):
    with pytest.raises(DataError, match="clean_accuracy"):
        results.write_result(tmp_path, {"schema_version": 1, "experiment": "e", "name": "n", "seed": 0,
                                        "clean_accuracy": 2.0})
    assert not (tmp_path / results.RESULT).exists()


def test_nan_accuracies_are_written_as_null_and_read_back(tmp_path):
    results.write_result(tmp_path, {"schema_version": 1, "experiment": "e", "name": "n", "seed": 0,
                                    "clean_accuracy": float("nan")})
    assert results.read_result(tmp_path)["clean_accuracy"] is None


@pytest.mark.parametrize("order", ["options-after", "options-before"])
def test_weights_of_another_architecture_are_one_line(refused, untrained_run, order):
    run_dir = untrained_run(weights_width=16)
    args = (["evaluate", run_dir, "--suite", "quick"] if order == "options-after"
            else ["evaluate", "--suite", "quick", run_dir])
    refused(args, str(run_dir / results.WEIGHTS), "another architecture", "small_cnn", "of another shape")


def test_a_failed_seed_is_flagged_and_counted_by_the_run_loader(untrained_run):
    from brainalign.analysis.runs import failed_runs, load_runs

    untrained_run(name="a")
    run_dir = untrained_run(name="b", clean_accuracy=None)  # NaN is written as null
    runs = load_runs(run_dir.parent)
    assert [(r.name, r.failed) for r in runs] == [("a", False), ("b", True)]
    assert failed_runs(runs) == {"b": [0]}
