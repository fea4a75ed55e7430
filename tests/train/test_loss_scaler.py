"""fp16 loss scaling: the GradScaler's state travels in the checkpoint, so a resumed run is the uninterrupted one.

fp16 runs need CUDA (``train.precision``); the CPU stand-in is ``torch.amp.GradScaler("cpu")`` (torch >= 2.3)
put in the place of the run's scaler (``brainalign.speed.scaler``) on an fp32 run. It grows its scale every 2
steps, so its scale and growth tracker change throughout the run, as they do under fp16.
"""

from __future__ import annotations

import pytest
import torch

import brainalign.train as train_module
from brainalign import results
from brainalign.io import load_checkpoint
from brainalign.train import SCALER_GROWTH, SCALER_SCALE, train

pytestmark = pytest.mark.trains

INIT = (2.0**100, 0)  # (scale, growth tracker) of a new scaler


@pytest.fixture
def finals(monkeypatch):
    """The CPU stand-in scaler in every run; returns the list of each finished run's final scaler state."""
    monkeypatch.setattr(train_module, "scaler", lambda _: torch.amp.GradScaler("cpu", init_scale=INIT[0],
                                                                               growth_interval=2))
    states = []
    real_finish = train_module.finish_run

    def finish(trainee, *args, **kwargs):
        states.append(_state(trainee.scaler))
        real_finish(trainee, *args, **kwargs)

    monkeypatch.setattr(train_module, "finish_run", finish)
    return states


def _state(scaler) -> tuple[float, int]:
    state = scaler.state_dict()
    return state["scale"], state["_growth_tracker"]


def _config(tiny_config, out_dir):
    return tiny_config(out_dir=str(out_dir), data={"name": "digits", "max_train": 200},
                       train={"epochs": 3, "batch_size": 32, "optimizer": "sgd", "lr": 0.05})


def _interrupt_after_epoch_one(monkeypatch, config) -> dict[str, torch.Tensor]:
    """Train until the epoch-1 checkpoint is written, then stop as if killed; returns that checkpoint."""
    real_write = results.write_metrics
    saved = {}

    def dies(path, rows):
        if len(rows) == 2:
            saved.update(load_checkpoint(config.run_dir / results.CHECKPOINT)[0])
            raise KeyboardInterrupt
        real_write(path, rows)

    monkeypatch.setattr(results, "write_metrics", dies)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, evaluate=False)
    monkeypatch.setattr(results, "write_metrics", real_write)
    return saved


def test_the_checkpoint_carries_the_scaler_state_and_resume_restores_it(tiny_config, tmp_path, monkeypatch,
                                                                          finals):
    killed, clean = _config(tiny_config, tmp_path / "killed"), _config(tiny_config, tmp_path / "clean")
    saved = _interrupt_after_epoch_one(monkeypatch, killed)
    assert saved[SCALER_SCALE].dtype == torch.float64 and saved[SCALER_GROWTH].dtype == torch.int64
    checkpointed = (float(saved[SCALER_SCALE]), int(saved[SCALER_GROWTH]))
    assert checkpointed != INIT  # 14 steps: the scale has grown

    loaded = []
    real_load = train_module.Trainee.load_state_tensors

    def spy(self, tensors):
        real_load(self, tensors)
        loaded.append(_state(self.scaler))

    monkeypatch.setattr(train_module.Trainee, "load_state_tensors", spy)
    train(killed, progress=False, evaluate=False)
    assert loaded == [checkpointed]
    train(clean, progress=False, evaluate=False)
    resumed_final, clean_final = finals
    assert resumed_final == clean_final and clean_final[0] > checkpointed[0]
    assert results.read_metrics(killed.run_dir / results.METRICS) == results.read_metrics(
        clean.run_dir / results.METRICS)
    wk, wc = (load_checkpoint(c.run_dir / results.WEIGHTS)[0] for c in (killed, clean))
    assert all(torch.equal(wk[k], wc[k]) for k in wc)


def test_without_the_scaler_state_a_resumed_run_would_scale_otherwise(tiny_config, tmp_path, monkeypatch,
                                                                        finals):
    """Control: a checkpoint without the scaler's keys resumes with a new scaler, unlike the uninterrupted run."""
    killed, clean = _config(tiny_config, tmp_path / "killed"), _config(tiny_config, tmp_path / "clean")
    real_state = train_module.Trainee.state_tensors
    monkeypatch.setattr(train_module.Trainee, "state_tensors",
                        lambda self: {k: v for k, v in real_state(self).items() if not k.startswith("scaler.")})
    _interrupt_after_epoch_one(monkeypatch, killed)
    train(killed, progress=False, evaluate=False)
    train(clean, progress=False, evaluate=False)
    resumed_final, clean_final = finals
    assert resumed_final != clean_final


def test_runs_without_a_scaler_write_no_scaler_state(tiny_config, tmp_path, monkeypatch):
    config = _config(tiny_config, tmp_path)
    keys = []
    real_write = results.write_metrics

    def peek(path, rows):
        keys.extend(load_checkpoint(config.run_dir / results.CHECKPOINT)[0])
        real_write(path, rows)

    monkeypatch.setattr(results, "write_metrics", peek)
    train(config, progress=False, evaluate=False)
    assert keys and not [k for k in keys if k.startswith("scaler.")]
