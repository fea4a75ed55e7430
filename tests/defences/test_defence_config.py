"""Bad defence settings fail before training, with one line naming the field."""

from __future__ import annotations

import pytest

from brainalign.config import parse_config
from brainalign.defences import build_defence, defence_record, eval_eps_by_norm
from brainalign.errors import ConfigError
from brainalign.train import train

PGD_01 = [{"name": "pgd_linf", "eps": [0.0, 0.1], "params": {"steps": 10}}]


def config(tmp_path, defence, attacks=PGD_01, suite="quick"):
    return parse_config({"out_dir": str(tmp_path / "runs"), "model": {"name": "small_cnn", "width": 4},
                         "train": {"epochs": 1}, "defences": [defence],
                         "eval": {"suite": suite, "attacks": attacks}})


@pytest.mark.parametrize("defence,message", [
    ({"name": "adversarial_training", "params": {"eps": 0.1, "steps": 0}},
     r"defences.0 \(adversarial_training\): steps must be a whole number >= 1, got 0"),
    ({"name": "adversarial_training", "params": {"eps": 0.1, "steps": 2.5}}, r"steps must be a whole number"),
    ({"name": "adversarial_training", "params": {"eps": 0.1, "steps": True}}, r"steps must be a whole number"),
    ({"name": "adversarial_training", "params": {"eps": -0.1}}, r"\(adversarial_training\): eps must be a number >= 0"),
    ({"name": "adversarial_training", "params": {"eps": 0.1, "step_size": 0}}, r"step_size must be a number > 0"),
    ({"name": "adversarial_training", "params": {"eps": 0.1, "warmup_epochs": -1}}, r"warmup_epochs must be"),
    ({"name": "adversarial_training", "params": {"eps": 0.1, "norm": "L1"}}, r"norm must be Linf or L2, got 'L1'"),
    ({"name": "adversarial_training", "params": {"eps": 1.5}}, r"Linf eps must be in \[0, 1\]"),
    ({"name": "adversarial_training", "params": {"epsilon": 0.1}},
     r"unknown parameter 'epsilon'; valid: eps, norm, steps, step_size, warmup_epochs"),
    ({"name": "adversarial_training", "params": {}}, r"parameter 'eps' is required"),
    ({"name": "trades", "params": {"beta": -1.0}}, r"defences.0 \(trades\): beta must be a number >= 0, got -1.0"),
    ({"name": "trades", "params": {"beta": float("nan")}}, r"beta must be a number >= 0"),
    ({"name": "trades", "params": {"steps": 0}}, r"\(trades\): steps must be a whole number >= 1"),
    ({"name": "gaussian_noise_augmentation", "params": {"sigma": -0.1}},
     r"defences.0 \(gaussian_noise_augmentation\): sigma must be a number >= 0, got -0.1"),
    ({"name": "gaussian_noise_augmentation", "params": {"mix": "yes"}}, r"mix must be true or false"),
])
def test_bad_parameters_are_one_clear_line(tmp_path, defence, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_defence(config(tmp_path, defence))
    assert "\n" not in str(err.value)


def test_training_eps_above_the_evaluation_fails_before_the_run_folder_is_touched(tmp_path):
    cfg = config(tmp_path, {"name": "adversarial_training", "params": {"eps": 0.2, "steps": 1}})
    with pytest.raises(ConfigError, match=r"defences.0 \(adversarial_training\): eps 0.2 \(Linf\) is larger than "
                                          r"the largest Linf eps of the evaluation \(0.1\)"):
        train(cfg, progress=False)
    assert not cfg.run_dir.exists()


@pytest.mark.parametrize("defence,ok", [
    ({"name": "adversarial_training", "params": {"eps": 0.3}}, True),  # the quick suite's Linf grid ends at 0.3
    ({"name": "adversarial_training", "params": {"eps": 0.31}}, False),
    ({"name": "trades", "params": {"eps": 2.0, "norm": "L2"}}, True),  # ... and its L2 grid at 2.0
    ({"name": "trades", "params": {"eps": 2.5, "norm": "L2"}}, False),
])
def test_the_suite_grid_bounds_the_training_eps(tmp_path, defence, ok):
    cfg = config(tmp_path, defence, attacks=[])
    if ok:
        assert build_defence(cfg) is not None
    else:
        with pytest.raises(ConfigError, match="larger than the largest"):
            build_defence(cfg)


def test_an_eps_in_a_norm_the_evaluation_does_not_test_is_not_compared(tmp_path):
    cfg = config(tmp_path, {"name": "adversarial_training", "params": {"eps": 1.0, "norm": "L2"}})
    assert build_defence(cfg).eps == 1.0  # the evaluation is Linf only: nothing to compare against


def test_eval_eps_by_norm(tmp_path):
    cfg = config(tmp_path, {"name": "gaussian_noise_augmentation"}, attacks=[])
    assert eval_eps_by_norm(cfg.eval) == {"Linf": 0.3, "L2": 2.0}  # the quick suite
    attacks = PGD_01 + [{"name": "noise_gaussian", "eps": [0.0, 0.5]},
                        {"name": "pgd_l2", "eps": [0.0, 0.7, 0.4], "params": {"steps": 5}}]
    assert eval_eps_by_norm(config(tmp_path, {"name": "gaussian_noise_augmentation"}, attacks).eval) == {
        "Linf": 0.1, "L2": 0.7}


def test_defence_record(tmp_path):
    cfg = config(tmp_path, {"name": "adversarial_training", "params": {"eps": 0.1, "steps": 4}})
    record = defence_record(cfg.defences[0], build_defence(cfg))
    assert record["uses_attack"] is True and record["reference"].startswith("Madry")
    assert record["params"] == {"eps": 0.1, "steps": 4}
    assert record["training_attack"]["attack"] == "pgd_linf" and record["training_attack"]["steps"] == 4
    noise = config(tmp_path, {"name": "gaussian_noise_augmentation", "params": {"sigma": 0.1}})
    assert defence_record(noise.defences[0], build_defence(noise))["training_attack"] is None
