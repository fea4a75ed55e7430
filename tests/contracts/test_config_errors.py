"""Bad configuration values are refused when the config is parsed, before anything is trained or written:
one line naming the field and what is allowed, exit 2, no run folder left, options before or after the config."""

from __future__ import annotations

import pytest

CASES = [
    # (override, words the one line must contain)
    ("train.lr=.inf", ["train.lr", "finite number"]),
    ("train.lr=.nan", ["train.lr", "finite number"]),
    ("train.momentum=.nan", ["train.momentum", "finite number"]),
    ("regularizers=[{name: pixel_similarity, weight: .inf}]", ["regularizers.0.weight", "finite number"]),
    ("regularizers=[{name: pixel_similarity, params: {threshold: .nan}}]",
     ["regularizers.0.params", "threshold must be a finite number"]),
    ("defences=[{name: gaussian_noise_augmentation, params: {sigma: .inf}}]", ["defences.0", "sigma must be"]),
    ("defences=[{name: trades, params: {beta: .nan}}]", ["defences.0", "beta must be"]),
    ("eval.attacks=[{name: pgd_linf, eps: [.nan]}]", ["eval.attacks.0.eps.0", "finite number"]),
    ("eval.attacks=[{name: pgd_linf, eps: [0.1, 2.0]}]", ["eval.attacks.0", "eps must be in [0, 1]", "got 2"]),
    ("eval.attacks=[{name: pgd_linf, eps: [-1]}]", ["eval.attacks.0.eps", ">= 0"]),
    ("eval.attacks=[{name: pgd_banana, eps: [0.1]}]", ["eval.attacks.0", "unknown attack 'pgd_banana'", "pgd_linf"]),
    ("eval.attacks=[{name: pgd_linf, eps: [0.1], params: {stepz: 3}}]", ["unknown parameter 'stepz'", "steps"]),
    ("eval.suite=huge", ["eval.suite", "unknown suite 'huge'", "quick, standard, full"]),
    ("train.device=banana", ["train.device", "unknown device 'banana'", "cpu, cuda, cuda:N", "mps"]),
    ("train.device=cuda:97", ["train.device", "cuda:97 is not available", "cpu"]),
    ("model.input_size=100000", ["model.input_size", "less than or equal to 1024"]),
    ("model.input_size=.inf", ["model.input_size"]),
]


@pytest.mark.parametrize("order", ["set-after-config", "set-before-config"])
@pytest.mark.parametrize(("override", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_config_values_are_refused_before_training(refused, tmp_path, override, needles, order):
    config = tmp_path / "c.yaml"
    config.write_text(f"out_dir: {tmp_path / 'runs'}\ntrain: {{epochs: 1}}\n")
    args = (["train", config, "--set", override] if order == "set-after-config"
            else ["train", "--set", override, config])
    refused(args, *needles)
    assert not (tmp_path / "runs").exists()


def test_a_good_device_is_accepted_when_present():
    from brainalign.config import check_device, parse_config

    assert parse_config({"train": {"device": "cuda:1"}}).train.device == "cuda:1"  # the form is checked here
    check_device("cpu")  # availability when a run starts
