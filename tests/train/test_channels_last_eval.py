"""A run trained in channels_last memory format is also attacked in it (brainalign.speed), with the same
outcomes as the same weights attacked in the default format, up to float rounding."""

from __future__ import annotations

import pytest
import torch

import brainalign.evaluate as evaluate
from brainalign.config import AttackSpec
from brainalign.run_folder import load_trained_model
from brainalign.train import train

pytestmark = pytest.mark.trains


def test_channels_last_runs_are_attacked_in_that_format(tiny_config, monkeypatch):
    formats = []
    original = evaluate.run_attack

    def spy(model, x, y, spec, seed, batch_size, flags_out):
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
        formats.append(conv.weight.is_contiguous(memory_format=torch.channels_last))
        return original(model, x, y, spec, seed, batch_size, flags_out)

    monkeypatch.setattr(evaluate, "run_attack", spy)
    run = train(tiny_config(train__channels_last=True, eval__selfchecks=False), progress=False)
    assert formats == [True]
    config, data, model = load_trained_model(run)  # rebuilt in the default format
    x, y = data.test.images[:120], data.test.labels[:120]
    spec = AttackSpec(name="pgd_linf", eps=[0.0, 0.1], params={"steps": 3})
    default, fast = {}, {}
    original(model, x, y, spec, config.seed, 256, default)
    original(model.to(memory_format=torch.channels_last), x, y, spec, config.seed, 256, fast)
    for key in default:  # float rounding may flip an image sitting on a decision boundary, not more
        assert int((default[key] != fast[key]).sum()) <= 2


def test_the_channels_last_benchmark_runs_and_both_formats_agree():
    """benchmarks.bench_channels_last (not timed here): it runs, and the formats' input gradients agree."""
    from benchmarks.bench_channels_last import measure

    r = measure(images=32, batch=16, repeats=1, steps=1)
    assert r["max_grad_diff"] < 1e-5
    assert all(r[k] > 0 for k in ("attack_ratio", "train_ratio", "attack_ms", "train_ms"))
