"""Gradient ratios: measured like separate backward passes would, logged per epoch, never change training."""

from __future__ import annotations

import logging

import pytest
import torch

from brainalign import gradient_ratios, results
from brainalign.io import load_checkpoint, read_json
from brainalign.train import train

PIXEL = {"name": "pixel_similarity", "params": {"threshold": 0.4}}


def test_ratios_equal_the_norms_of_separate_backward_passes():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    out = net(x)
    ce = torch.nn.functional.cross_entropy(out, y)
    term = 3.0 * out.pow(2).mean()
    got = gradient_ratios.ratios(ce, [term], list(net.parameters()))

    def norm(loss):
        net.zero_grad()
        loss.backward(retain_graph=True)
        return torch.sqrt(sum(p.grad.double().pow(2).sum() for p in net.parameters())).item()

    assert got == [pytest.approx(norm(term) / norm(ce), rel=1e-9)]


def test_measuring_does_not_change_the_trajectory(tiny_config, tmp_path, monkeypatch):
    a = train(tiny_config(out_dir=str(tmp_path / "a"), regularizers=[{**PIXEL, "weight": 1.0}]),
              progress=False, evaluate=False)
    monkeypatch.setattr(gradient_ratios, "measured", lambda step: False)
    b = train(tiny_config(out_dir=str(tmp_path / "b"), regularizers=[{**PIXEL, "weight": 1.0}]),
              progress=False, evaluate=False)
    wa, wb = (load_checkpoint(d / results.WEIGHTS)[0] for d in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows_a, rows_b = (results.read_metrics(d / results.METRICS) for d in (a, b))
    assert all(r["grad_ratio_reg0"] > 0 for r in rows_a) and "grad_ratio_reg0" not in rows_b[0]
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
    record = read_json(a / results.RESULT)["gradient_ratios"]["reg0"]
    assert record["name"] == "pixel_similarity" and record["n_epochs"] == 3


def test_a_dominating_term_is_warned_about(tiny_config, caplog):
    with caplog.at_level(logging.WARNING, logger="brainalign.train"):
        run = train(tiny_config(regularizers=[{**PIXEL, "weight": 1000.0}]), progress=False, evaluate=False)
    result = read_json(run / results.RESULT)
    assert result["gradient_ratios"]["reg0"]["dominates"] is True
    assert len(result["gradient_warnings"]) == 1 and "pixel_similarity" in caplog.text


def test_summary_of_rows_without_terms_is_empty():
    assert gradient_ratios.summarize([{"loss": 1.0}], []) == {"gradient_ratios": {}, "gradient_warnings": []}
