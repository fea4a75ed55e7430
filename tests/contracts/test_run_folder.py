"""The run folder's life (brainalign.run_folder): a kill at any write point resumes or reruns to the same
files, a second writer is refused, and another sample size never mixes into a finished evaluation."""

from __future__ import annotations

import os

import filelock
import pytest

from brainalign import results, run_folder
from brainalign.errors import BrainAlignError, ConfigError
from brainalign.evaluate import evaluate_run
from brainalign.io import load_checkpoint, read_json
from brainalign.train import train

ATTACKS = [{"name": "pgd_linf", "eps": [0.0, 0.1], "params": {"steps": 2}}]


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way catches it."""


def tiny(tiny_config, out):
    return tiny_config(out_dir=str(out), train={"epochs": 2, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0},
                       eval={"n_examples": 40, "selfcheck_examples": 10, "attacks": ATTACKS})


def snapshot(run_dir):
    """What a finished run is: its result (less provenance), metrics, weights and per-example flags."""
    result = read_json(run_dir / results.RESULT)
    weights, _ = load_checkpoint(run_dir / results.WEIGHTS)
    flags, _ = load_checkpoint(run_dir / results.FLAGS)
    return result, (run_dir / results.METRICS).read_text(), weights, flags


def assert_same(a, b):
    assert a[0] == b[0]
    assert a[1] == b[1]
    for x, y in ((a[2], b[2]), (a[3], b[3])):
        assert x.keys() == y.keys()
        assert all(x[k].equal(y[k]) for k in x)


def test_a_kill_at_every_write_point_reruns_to_the_same_run(tiny_config, tmp_path, monkeypatch):
    reference_config = tiny(tiny_config, tmp_path / "reference")
    replaces = []
    real_replace = os.replace

    def counting(src, dst):
        replaces.append(os.path.basename(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", counting)
    train(reference_config, progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    reference = snapshot(reference_config.run_dir)
    # config, (checkpoint, metrics) per epoch, weights, result, then the evaluation's flags and results.
    assert replaces[:7] == [results.CONFIG, results.CHECKPOINT, results.METRICS, results.CHECKPOINT,
                            results.METRICS, results.WEIGHTS, results.RESULT]
    assert len(replaces) >= 9
    real_write_result = results.write_result

    def result_then_kill(*args):
        real_write_result(*args)
        raise Killed

    # Killed just before the k-th rename, or (k = len) right after the first result.json, before the checkpoint
    # is deleted.
    for k in range(len(replaces) + 1):
        config = tiny(tiny_config, tmp_path / f"killed{k}")
        count = [0]

        def kill_at_k(src, dst, k=k, count=count):
            if count[0] == k:
                raise Killed
            count[0] += 1
            return real_replace(src, dst)

        if k < len(replaces):
            monkeypatch.setattr(os, "replace", kill_at_k)
        else:
            monkeypatch.setattr(results, "write_result", result_then_kill)
        with pytest.raises(Killed):
            train(config, progress=False)
        if k == len(replaces):
            assert (config.run_dir / results.CHECKPOINT).exists() and (config.run_dir / results.RESULT).exists()
        monkeypatch.undo()
        assert train(config, progress=False) == config.run_dir  # resumes or reruns, never stuck
        assert not (config.run_dir / results.CHECKPOINT).exists()
        assert_same(snapshot(config.run_dir), reference)


def test_checkpoint_cadence_skips_checkpoints_not_results(tiny_config, tmp_path, monkeypatch):
    # train.checkpoint_every_s: no checkpoint before that many seconds; metrics.csv after every epoch all the
    # same, the same run at the end, and a kill before any checkpoint reruns from the start to the same run.
    reference_config = tiny(tiny_config, tmp_path / "reference")
    train(reference_config, progress=False)
    reference = snapshot(reference_config.run_dir)
    real_replace = os.replace

    def sparse(out):
        config = tiny(tiny_config, out)
        return config.model_copy(update={"train": config.train.model_copy(update={"checkpoint_every_s": 1e9})})

    replaces = []
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaces.append(os.path.basename(dst)),
                                                         real_replace(src, dst))[1])
    config = sparse(tmp_path / "sparse")
    train(config, progress=False)
    monkeypatch.undo()
    assert replaces[:5] == [results.CONFIG, results.METRICS, results.METRICS, results.WEIGHTS, results.RESULT]
    assert results.CHECKPOINT not in replaces
    got = snapshot(config.run_dir)
    assert got[0]["robustness"] == reference[0]["robustness"]
    assert_same((None, *got[1:]), (None, *reference[1:]))

    killed = sparse(tmp_path / "killed")
    metrics_writes = [0]

    def kill_at_second_metrics(src, dst):
        if os.path.basename(dst) == results.METRICS:
            metrics_writes[0] += 1
            if metrics_writes[0] == 2:
                raise Killed
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", kill_at_second_metrics)
    with pytest.raises(Killed):
        train(killed, progress=False)
    monkeypatch.undo()
    assert run_folder.state(killed.run_dir) == run_folder.CLAIMED  # one epoch's metrics, no checkpoint
    train(killed, progress=False)
    assert_same((None, *snapshot(killed.run_dir)[1:]), (None, *reference[1:]))


def test_killed_between_weights_and_result_is_not_stuck(tiny_config, tmp_path, monkeypatch):
    config = tiny(tiny_config, tmp_path)
    monkeypatch.setattr(results, "write_result", lambda *a: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        train(config, progress=False, evaluate=False)
    monkeypatch.undo()
    run_dir = config.run_dir
    assert (run_dir / results.WEIGHTS).exists() and not (run_dir / results.RESULT).exists()
    assert run_folder.state(run_dir) == run_folder.CHECKPOINTED
    train(config, progress=False, evaluate=False)
    assert run_folder.state(run_dir) == run_folder.TRAINED
    evaluate_run(run_dir, progress=False)
    assert run_folder.state(run_dir) == run_folder.EVALUATED


def test_a_second_writer_is_refused_clearly(tiny_config, tmp_path, capsys):
    from brainalign.cli import main

    config = tiny(tiny_config, tmp_path)
    train(config, progress=False, evaluate=False)
    before = read_json(config.run_dir / results.RESULT)
    with filelock.FileLock(str(config.run_dir / run_folder.LOCK)):  # another process writes this folder
        with pytest.raises(BrainAlignError, match="being written by another brainalign process"):
            train(config, progress=False)
        assert main(["evaluate", str(config.run_dir)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "being written by another brainalign process" in err[0]
    assert read_json(config.run_dir / results.RESULT) == before


def test_another_sample_size_is_refused_not_mixed(tiny_config, tmp_path):
    config = tiny(tiny_config, tmp_path)
    run_dir = train(config, progress=False)
    before = (run_dir / results.RESULT).read_bytes()
    with pytest.raises(ConfigError, match=r"evaluated on 40 test images; n_examples 16 would mix"):
        evaluate_run(run_dir, n_examples=16, progress=False)
    with pytest.raises(ConfigError, match="would mix"):
        evaluate_run(run_dir, suite="quick", n_examples=16, progress=False)
    assert (run_dir / results.RESULT).read_bytes() == before
    evaluate_run(run_dir, n_examples=40, progress=False)  # the same size is fine (nothing to do)
    assert (run_dir / results.RESULT).read_bytes() == before
