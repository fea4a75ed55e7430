"""Attacks called from Python: the call runs in eval mode and restores every module's mode (a train-mode
BatchNorm keeps its running statistics), and refuses 0-255 images and bad strengths as `evaluate` does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))


def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 1, 8, 8, generator=g), torch.randint(0, 10, (6,), generator=g)


@pytest.mark.parametrize("name", ["fgsm", "pgd_linf", "pgd_l2", "apgd_ce_linf", "noise_gaussian", "rotation"])
@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_the_attack_runs_in_eval_mode_and_restores_each_modules_mode(name, mode):
    model = bn_model()
    model.train(mode != "eval")
    if mode == "mixed":
        model[1].eval()
    before = [m.training for m in model.modules()]
    stats = {k: v.clone() for k, v in model[1].state_dict().items()}
    seen = []
    model[1].register_forward_hook(lambda module, *_: seen.append(module.training))
    x, y = batch()
    strength = 10.0 if name == "rotation" else 0.1
    ATTACKS.get(name)(model, x, y, strength, generator=torch.Generator().manual_seed(0))
    assert not any(seen), "the attack must see the model in eval mode"
    assert seen or not ATTACKS.info(name).needs_gradients
    assert [m.training for m in model.modules()] == before
    assert all(torch.equal(v, model[1].state_dict()[k]) for k, v in stats.items())


BAD = [
    # (what, inputs scale, strength (None: the attack's smallest valid one), params, words of the error)
    ("0-255 images", 255.0, 0.1, {}, ["inputs must be images in [0, 1]", "1/255"]),
    ("negative images", -1.0, 0.1, {}, ["inputs must be images in [0, 1]"]),
    ("nan strength", 1.0, float("nan"), {}, ["must be a finite number"]),
    ("negative strength", 1.0, -0.5, {}, ["must be in ["]),
    ("unknown parameter", 1.0, None, {"no_such_param": 1}, ["unknown parameter 'no_such_param'"]),
]


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
@pytest.mark.parametrize(("what", "scale", "strength", "params", "needles"), BAD, ids=[b[0] for b in BAD])
def test_every_attack_refuses_bad_input_in_one_line(name, what, scale, strength, params, needles):
    x, y = batch()
    x = torch.cat([x] * 3, 1) if ATTACKS.info(name).requires_color else x
    if ATTACKS.info(name).needs_surrogate:
        params = {**params, "surrogate": bn_model()}
    if what == "unknown parameter" and _forwards_params(name):
        pytest.skip(f"{name} forwards **params it does not list")
    strength = ATTACKS.info(name).min_strength if strength is None else strength
    with pytest.raises(ConfigError) as err:
        ATTACKS.get(name)(bn_model(), x * scale, y, strength, generator=torch.Generator().manual_seed(0), **params)
    message = str(err.value)
    assert "\n" not in message and message.startswith(name)
    for needle in needles:
        assert needle in message


def _forwards_params(name: str) -> bool:
    from brainalign.attacks.base import attack_params

    return attack_params(ATTACKS.get(name)) is None


def test_the_registered_function_is_the_module_function():
    from brainalign.attacks.pgd import pgd_linf

    assert ATTACKS.get("pgd_linf") is pgd_linf  # calls from Python get the same checks
