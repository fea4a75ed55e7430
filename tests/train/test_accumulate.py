"""Gradient accumulation (train.accumulate_steps): k micro-batches of B/k make the same step as one batch of B."""

from __future__ import annotations

import pytest
import torch

import brainalign.train as train_module
from brainalign.cli import main
from brainalign.config import parse_config
from brainalign.errors import ConfigError
from brainalign.train import build_trainee, generator, train, train_step

pytestmark = pytest.mark.trains

B = 24
NEURAL = [{"name": "neural_prediction", "params": {"stimuli": "classification"}, "recording": {"name": "sim_eeg"}}]


def _trainee(batch_size: int, k: int, regularizers: list, **train):
    config = parse_config({
        "data": {"name": "digits", "max_train": 64},
        "model": {"name": "small_cnn", "width": 8},  # no BatchNorm: a micro-batch's statistics are not the batch's
        "train": {"batch_size": batch_size, "accumulate_steps": k, "optimizer": "sgd", "lr": 0.5, **train},
        "regularizers": regularizers})
    trainee = build_trainee(config)
    # float64, so that the only difference between the two is the order of a few additions
    trainee.model.double()
    for reg, _ in trainee.regularizers:
        reg.double()
    return trainee


def _step(trainee, idx):
    data = trainee.data.train
    return train_step(trainee, data.images[idx].double(), data.labels[idx], generator(0, "step"), idx)


def _params(trainee) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainee.optimizer.param_groups[0]["params"]]


@pytest.mark.parametrize("regularizers", [[], NEURAL], ids=["baseline", "neural_prediction"])
@pytest.mark.parametrize("k", [2, 3])
def test_k_micro_batches_make_the_step_of_one_batch(regularizers, k):
    idx = torch.arange(5, 5 + B)
    whole, split = _trainee(B, 1, regularizers), _trainee(B // k, k, regularizers)
    before = _params(whole)
    assert all(torch.equal(a, b) for a, b in zip(before, _params(split), strict=True))
    logs_whole, logs_split = _step(whole, idx), _step(split, idx)
    moved = 0.0
    for start, a, b in zip(before, _params(whole), _params(split), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)
        moved = max(moved, float((a - start).abs().max()))
    assert moved > 1e-3  # the step did move the weights
    assert set(logs_split) == set(logs_whole)
    for key in logs_whole:  # ce, reg0, loss: the step's means; correct: a count; grad_ratio_*: the step's
        assert logs_split[key] == pytest.approx(logs_whole[key], rel=1e-9), key
    if regularizers:
        assert "grad_ratio_reg0" in logs_whole  # measured on the first step of an epoch

    # control: the first micro-batch alone makes another step, so the comparison above can fail
    alone = _trainee(B // k, 1, regularizers)
    _step(alone, idx[: B // k])
    assert max(float((a - b).abs().max()) for a, b in zip(_params(alone), _params(split), strict=True)) > 1e-4


def test_a_ragged_step_weights_micro_batches_by_their_examples():
    """7 examples in 3 micro-batches (3, 2, 2): still the step of the 7 together."""
    idx = torch.arange(7)
    whole, split = _trainee(7, 1, NEURAL), _trainee(3, 3, NEURAL)
    _step(whole, idx), _step(split, idx)
    for a, b in zip(_params(whole), _params(split), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


def test_the_loop_hands_each_step_batch_size_times_k_examples(tiny_config, monkeypatch):
    sizes = []

    def spy(trainee, x, y, gen, index=None):
        sizes.append(len(y))
        return real(trainee, x, y, gen, index)

    real = train_module.train_step
    monkeypatch.setattr(train_module, "train_step", spy)
    config = tiny_config(data={"name": "digits", "max_train": 50},
                         train={"epochs": 1, "batch_size": 8, "accumulate_steps": 3, "optimizer": "sgd"})
    train(config, progress=False, evaluate=False)
    assert sizes == [24, 24, 2]  # 50 training images in steps of 8 x 3


@pytest.mark.parametrize("value", [0, -2, 1.5, "two"])
def test_bad_accumulate_steps_is_one_config_error(value):
    with pytest.raises(ConfigError, match=r"^train\.accumulate_steps: "):
        parse_config({"train": {"accumulate_steps": value}})


def test_bad_accumulate_steps_on_the_command_line_is_one_line_exit_2(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"out_dir: {tmp_path / 'runs'}\n")
    code = main(["train", str(config), "--set", "train.accumulate_steps=0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: train.accumulate_steps: Input should be greater than or equal to 1"), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_two_gloo_processes_accumulate_as_one_process(tiny_config, tmp_path, two_gloo_processes):
    """torchrun, 2 processes: each cuts its half of a step (8 x 2 x 2 examples) into 2 micro-batches of 8."""
    from brainalign import results

    config = tiny_config(out_dir=str(tmp_path / "one"), data={"name": "digits", "max_train": 96},
                         train={"epochs": 1, "batch_size": 16, "accumulate_steps": 2, "optimizer": "sgd",
                                "threads": 1})
    single = train(config, progress=False, evaluate=False)
    parallel = two_gloo_processes(config, single)  # weights equal to the one-process run's
    rows_a, rows_b = (results.read_metrics(d / results.METRICS) for d in (single, parallel))
    assert len(rows_a) == len(rows_b) == 1
    assert rows_b[0] == pytest.approx(rows_a[0], rel=1e-5)


def test_a_last_step_too_small_for_every_process_and_micro_batch_is_refused(tiny_config):
    from brainalign.distributed import check_world

    config = tiny_config(train={"batch_size": 16, "accumulate_steps": 2})
    check_world(config, n_train=96 + 4, world=2)  # last step: 4 examples, 2 per process, 1 per micro-batch
    with pytest.raises(ConfigError, match=r"last batch of an epoch has 3 of 99 .* 2 processes x 2 micro-batches"):
        check_world(config, n_train=96 + 3, world=2)
