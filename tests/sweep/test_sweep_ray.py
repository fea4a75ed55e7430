"""A real 2-trial sweep on a local Ray cluster, one of whose trials loses its worker process mid-sweep."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from brainalign import results
from brainalign import sweep as sweep_mod
from brainalign.io import read_json
from brainalign.leaderboard import build_leaderboard, schema
from brainalign.sweep import MANIFEST, RESULT, load_sweep, run_sweep

ray = pytest.importorskip("ray")
VICTIM = "lr=0.01"


def killing_train_fn(log_dir: str, victim: str):
    """``train``, except that the victim trial's first attempt trains, then SIGKILLs its own worker process.

    Every attempt appends ``pid weights-mtime`` to ``<log_dir>/<name>.attempts``, so that the test sees the
    retry ran in a new process and kept the weights that the killed attempt had written.
    """

    def train_fn(config, progress=False):
        from brainalign.train import train

        log = Path(log_dir) / f"{config.name}.attempts"
        if config.name == victim and not log.exists():
            run_dir = train(config, progress=False, evaluate=False)
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {(run_dir / 'model.safetensors').stat().st_mtime_ns}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        with open(log, "a") as f:
            f.write(f"{os.getpid()} -\n")
        return train(config, progress=progress)

    return train_fn


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_run):
    """One local Ray for the module; the sweep runs once: 2 trials, the second's worker killed once."""
    root = tmp_path_factory.mktemp("ray_sweep")
    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": tiny_run(root / "runs"), "grid": {"train.lr": [0.003, 0.01]},
                                    "sweep": {"max_concurrent": 2, "cpus_per_trial": 1, "retries": 2}}))
    (root / "log").mkdir()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        lines: list[str] = []
        result = run_sweep(path, train_fn=killing_train_fn(str(root / "log"), VICTIM), on_trial=lines.append)
    finally:
        ray.shutdown()
    return path, root / "log", result, lines


def test_the_sweep_completes_with_every_run_folder(swept):
    path, _, result, _ = swept
    sweep = load_sweep(path)
    assert result.complete and [t.status for t in result.trials] == ["finished", "finished"]
    assert [t.run_dir for t in result.trials] == [t.run_dir for t in sweep.trials]
    for trial in sweep.trials:
        saved = results.read_result(trial.run_dir)
        assert saved["name"] == trial.name and saved["clean_accuracy"] > 0.2  # chance is 0.1
        assert saved["robustness"]["pgd_linf[steps=2]"]["eps"] == [0.0, 0.1]
        assert len(results.read_metrics(trial.run_dir / results.METRICS)) == 2
        assert not (trial.run_dir / results.CHECKPOINT).exists()
    assert read_json(sweep.experiment_dir / MANIFEST)["hash"] == sweep.hash
    assert [t["status"] for t in read_json(sweep.experiment_dir / RESULT)["trials"]] == ["finished", "finished"]


def test_each_finished_trial_is_one_rounded_line_once_even_after_a_retry(swept):
    path, _, _, lines = swept
    sweep = load_sweep(path)
    finished = [line for line in lines if not line.startswith("[retry]")]
    assert sorted(line.split()[0] for line in finished) == ["[1/2]", "[2/2]"]
    (retry,) = [line for line in lines if line.startswith("[retry]")]  # the victim's worker was killed once
    assert f"{VICTIM}__seed0" in retry and "attempt 2" in retry
    for trial in sweep.trials:
        (line,) = [x for x in finished if f"{trial.name}__seed{trial.seed}" in x]
        clean = results.read_result(trial.run_dir)["clean_accuracy"]
        assert line.split()[1] == "finished" and f"clean {100 * clean:.1f}%" in line, line


def test_a_killed_worker_is_retried_in_a_new_process_and_keeps_its_work(swept):
    path, log_dir, _, _ = swept
    attempts = (log_dir / f"{VICTIM}.attempts").read_text().split("\n")[:-1]
    assert len(attempts) == 2, attempts
    (killed_pid, weights_mtime), (retry_pid, _) = (line.split() for line in attempts)
    assert killed_pid != retry_pid
    run_dir = next(t.run_dir for t in load_sweep(path).trials if t.name == VICTIM)
    # The retry evaluated the weights that the killed worker had trained; it did not train them again.
    assert str((run_dir / results.WEIGHTS).stat().st_mtime_ns) == weights_mtime
    assert len((log_dir / "lr=0.003.attempts").read_text().split("\n")[:-1]) == 1


def test_rerunning_the_sweep_skips_every_finished_trial_without_ray(swept, monkeypatch):
    path, _, _, _ = swept
    monkeypatch.setattr(sweep_mod, "_import_ray", lambda: pytest.fail("a finished sweep must not start Ray"))
    stamps = [(t.run_dir / results.RESULT).stat().st_mtime_ns for t in load_sweep(path).trials]
    again = run_sweep(path, progress=False)
    assert [t.status for t in again.trials] == ["skipped", "skipped"]
    assert [(t.run_dir / results.RESULT).stat().st_mtime_ns for t in load_sweep(path).trials] == stamps


def test_the_sweeps_leaderboard_validates_against_its_schema(swept, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    path, _, _, _ = swept
    out = build_leaderboard(load_sweep(path).experiment_dir, tmp_path / "board")
    cards = sorted((out / "model_info" / "digits" / "Linf").glob("*.json"))
    assert [c.stem for c in cards] == ["lr=0.003__seed0", "lr=0.01__seed0"]
    for card in cards:
        jsonschema.validate(read_json(card), schema(), cls=jsonschema.Draft202012Validator)
