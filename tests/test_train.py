import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from brainalign import results
from brainalign.errors import ConfigError
from brainalign.io import load_checkpoint, read_json, write_yaml
from brainalign.train import build_trainee, train


def test_training_learns_and_writes_the_run_folder(tiny_config):
    run_dir = train(tiny_config(), progress=False)
    for name in (results.CONFIG, results.METRICS, results.RESULT, results.WEIGHTS, results.FLAGS):
        assert (run_dir / name).exists(), name
    assert not (run_dir / results.CHECKPOINT).exists()
    result = read_json(run_dir / results.RESULT)
    assert result["schema_version"] == results.SCHEMA_VERSION
    assert isinstance(result["clean_accuracy"], float) and result["clean_accuracy"] > 0.5  # chance is 0.1
    assert result["seed"] == 0 and result["package_version"]
    rows = results.read_metrics(run_dir / results.METRICS)
    assert [r["epoch"] for r in rows] == [0.0, 1.0, 2.0]
    assert rows[-1]["loss"] < rows[0]["loss"]
    entry = result["robustness"]["pgd_linf[steps=3]"]
    assert entry["eps"] == [0.0, 0.1] and entry["accuracy"][1] <= entry["accuracy"][0]
    flags, _ = load_checkpoint(run_dir / results.FLAGS)
    assert flags["pgd_linf[steps=3]@0"].shape == (120,)


def test_same_seed_same_weights_other_seed_other_weights(tiny_config, tmp_path):
    a = train(tiny_config(out_dir=str(tmp_path / "a")), progress=False, evaluate=False)
    b = train(tiny_config(out_dir=str(tmp_path / "b")), progress=False, evaluate=False)
    c = train(tiny_config(out_dir=str(tmp_path / "c"), seed=1), progress=False, evaluate=False)
    wa, wb, wc = (load_checkpoint(d / results.WEIGHTS)[0] for d in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_a_run_folder_of_another_configuration_is_not_overwritten(tiny_config):
    run_dir = train(tiny_config(), progress=False, evaluate=False)
    before = (run_dir / results.WEIGHTS).read_bytes()
    with pytest.raises(ConfigError, match="holds a run of another configuration .*train"):
        train(tiny_config(train={"epochs": 4, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0}),
              progress=False)
    assert (run_dir / results.WEIGHTS).read_bytes() == before


def test_finished_run_is_skipped(tiny_config):
    run_dir = train(tiny_config(), progress=False)
    stamp = (run_dir / results.WEIGHTS).stat().st_mtime_ns
    train(tiny_config(), progress=False)
    assert (run_dir / results.WEIGHTS).stat().st_mtime_ns == stamp


def test_sigkill_mid_training_then_resume_matches_uninterrupted(tiny_config, tmp_path):
    train_section = {"epochs": 25, "optimizer": "sgd", "lr": 0.05, "threads": 1}
    killed = tiny_config(out_dir=str(tmp_path / "killed"), train=train_section, model={"name": "small_cnn",
                                                                                        "width": 16})
    clean = tiny_config(out_dir=str(tmp_path / "clean"), train=train_section, model={"name": "small_cnn",
                                                                                      "width": 16})
    config_file = tmp_path / "killed.yaml"
    write_yaml(config_file, killed.to_dict())
    script = ("import sys, torch; torch.set_num_threads(1)\n"
              "from brainalign.config import load_config\nfrom brainalign.train import train\n"
              f"train(load_config({str(config_file)!r}), progress=False, evaluate=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    checkpoint = killed.run_dir / results.CHECKPOINT
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "the run should have written a checkpoint before it was killed"
    assert not (killed.run_dir / results.WEIGHTS).exists(), "the run finished before it could be killed"
    epochs_done = int(load_checkpoint(checkpoint)[1]["epoch"]) + 1
    assert 1 <= epochs_done < 25

    train(killed, progress=False, evaluate=False)
    train(clean, progress=False, evaluate=False)
    rows_k = results.read_metrics(killed.run_dir / results.METRICS)
    rows_c = results.read_metrics(clean.run_dir / results.METRICS)
    assert rows_k == rows_c
    assert read_json(killed.run_dir / results.RESULT)["clean_accuracy"] == \
        read_json(clean.run_dir / results.RESULT)["clean_accuracy"]
    wk, wc = (load_checkpoint(c.run_dir / results.WEIGHTS)[0] for c in (killed, clean))
    assert all(torch.equal(wk[k], wc[k]) for k in wk)


def test_kill_between_checkpoint_and_metrics_loses_no_row(tiny_config, tmp_path, monkeypatch):
    """The checkpoint carries the metrics rows, so a kill right after it was written loses nothing."""
    killed = tiny_config(out_dir=str(tmp_path / "killed"))
    clean = tiny_config(out_dir=str(tmp_path / "clean"))
    real_write = results.write_metrics
    calls = []

    def dies_on_second_epoch(path, rows):
        calls.append(len(rows))
        if len(rows) == 2:
            raise KeyboardInterrupt  # as if killed after the epoch-1 checkpoint, before metrics.csv
        real_write(path, rows)

    monkeypatch.setattr(results, "write_metrics", dies_on_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(killed, progress=False, evaluate=False)
    monkeypatch.setattr(results, "write_metrics", real_write)
    assert len(results.read_metrics(killed.run_dir / results.METRICS)) == 1
    train(killed, progress=False, evaluate=False)
    train(clean, progress=False, evaluate=False)
    assert results.read_metrics(killed.run_dir / results.METRICS) == results.read_metrics(
        clean.run_dir / results.METRICS)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_regularizer_parameters_step_fused_and_resume_matches_uninterrupted(tiny_config, tmp_path, monkeypatch,
                                                                           optimizer):
    """A regularizer's own parameters (here neural_prediction's readout) step in a fused group of the one
    optimiser, the model's in torch's loop; the checkpoint carries both groups' state, so a run killed after
    an epoch's checkpoint resumes to the uninterrupted run's metrics and weights."""
    regs = [{"name": "neural_prediction", "weight": 1.0, "recording": {"name": "sim_v1", "options": {"n_units": 64}}}]
    train_section = {"epochs": 3, "optimizer": optimizer, "lr": 0.003, "weight_decay": 0.0, "threads": 1}
    killed, clean = (tiny_config(out_dir=str(tmp_path / d), train=train_section, regularizers=regs)
                     for d in ("killed", "clean"))
    trainee = build_trainee(killed)
    model_group, own_group = trainee.optimizer.param_groups
    assert not model_group.get("fused") and own_group["fused"] is True
    assert {id(p) for p in own_group["params"]} == {id(p) for p in trainee.regularizers[0][0].parameters()}
    real_write = results.write_metrics

    def dies_on_second_epoch(path, rows):
        if len(rows) == 2:
            raise KeyboardInterrupt  # as if killed after the epoch-1 checkpoint
        real_write(path, rows)

    monkeypatch.setattr(results, "write_metrics", dies_on_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(killed, progress=False, evaluate=False)
    monkeypatch.setattr(results, "write_metrics", real_write)
    saved = load_checkpoint(killed.run_dir / results.CHECKPOINT)[0]
    n_model = len(model_group["params"])
    assert any(k.startswith(f"optim.{n_model}.") for k in saved), "no optimiser state of the fused group"
    train(killed, progress=False, evaluate=False)
    train(clean, progress=False, evaluate=False)
    assert results.read_metrics(killed.run_dir / results.METRICS) == results.read_metrics(
        clean.run_dir / results.METRICS)
    wk, wc = (load_checkpoint(c.run_dir / results.WEIGHTS)[0] for c in (killed, clean))
    assert all(torch.equal(wk[k], wc[k]) for k in wk)
