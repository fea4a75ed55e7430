"""Bad input fails with one clear ConfigError before any attack runs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from brainalign.attacks import check_attack, check_inputs, minimal_attack
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS

SHAPE = (1, 8, 8)


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(("name", "strengths", "needle"), [
    ("pgd_linf", [0.0, 1.5], "[0, 1]"),
    ("fgsm", [-0.1], "[0, 1]"),
    ("pgd_l2", [9.0], "[0, 8]"),  # an L2 radius above the box's diameter sqrt(1 * 8 * 8) = 8
    ("corruption_fog", [6], "[0, 5]"),
    ("corruption_fog", [2.5], "whole number"),
    ("rotation", [200.0], "[0, 180]"),
    ("caa", [1.5], "[0, 1]"),
    ("noise_gaussian", [math.nan], "finite"),
])
def test_strength_out_of_range(name, strengths, needle):
    with pytest.raises(ConfigError) as exc:
        check_attack(name, strengths, image_shape=SHAPE)
    assert needle in _one_line(exc)


def test_unknown_attack_lists_the_valid_ones():
    with pytest.raises(ConfigError) as exc:
        check_attack("pgd_linfinity", [0.1])
    assert "pgd_linf" in _one_line(exc)


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ConfigError) as exc:
        check_attack("pgd_linf", [0.1], {"stepz": 10})
    assert "steps" in _one_line(exc)
    with pytest.raises(ConfigError):
        check_attack("fgsm", [0.1], {"steps": 10})
    check_attack("pgd_linf", [0.1], {"steps": 10, "restarts": 2, "eot": 4})
    check_attack("cw_l2", [0.5], {"steps": 10})


def test_colour_attacks_refuse_grayscale():
    for name in ("hue", "saturation", "recolor"):
        with pytest.raises(ConfigError) as exc:
            check_attack(name, [0.1], image_shape=SHAPE)
        assert "grayscale" in _one_line(exc)
        check_attack(name, [0.1], image_shape=(3, 8, 8))
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ConfigError):
        ATTACKS.get("hue")(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval(), x, torch.tensor([0, 1]), 0.5)


def test_transfer_needs_a_surrogate():
    with pytest.raises(ConfigError) as exc:
        check_attack("transfer_fgsm", [0.1])
    assert "surrogate" in _one_line(exc)
    check_attack("transfer_fgsm", [0.1], {"surrogate": nn.Identity()})


def test_model_returning_probabilities_is_refused(gray_model, digits_models):
    x, y = digits_models.test_batch(8)
    check_inputs(gray_model, x, y, 10)
    with pytest.raises(ConfigError) as exc:
        check_inputs(nn.Sequential(gray_model, nn.Softmax(dim=1)).eval(), x, y, 10)
    assert "probabilities" in _one_line(exc)


def test_model_in_training_mode_is_refused(digits_models):
    x, y = digits_models.test_batch(8)
    model = digits_models.cnn(1, seed=0).train()
    with pytest.raises(ConfigError) as exc:
        check_inputs(model, x, y, 10)
    assert "eval" in _one_line(exc)


def test_labels_out_of_range_are_refused(gray_model, digits_models):
    x, y = digits_models.test_batch(8)
    with pytest.raises(ConfigError) as exc:
        check_inputs(gray_model, x, torch.full_like(y, 10), 10)
    assert "[0, 9]" in _one_line(exc)
    with pytest.raises(ConfigError):
        check_inputs(gray_model, x, y, 12)  # the model has 10 logits


def test_minimal_attack_lookup():
    assert minimal_attack("boundary") is ATTACKS.get("boundary").minimal
    with pytest.raises(ConfigError) as exc:
        minimal_attack("pgd_linf")
    assert "cw_l2" in _one_line(exc)
