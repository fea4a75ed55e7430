"""Feedback: progress lines when output is not a terminal, --quiet, and the summary that ends train/evaluate."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import yaml

from brainalign import console


class _Lines(logging.Handler):
    """The messages the brainalign logger emits, captured at the logger itself (whatever other tests
    configured on it or on the root logger)."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_progress_logs_start_ticks_and_end_when_not_a_terminal(monkeypatch):
    monkeypatch.setattr(console, "_is_terminal", lambda: False)
    monkeypatch.setattr(console.LOGGER, "level", logging.INFO)
    handler = _Lines()
    console.LOGGER.addHandler(handler)
    try:
        out = list(console.progress(range(3), desc="phase", every_s=0.0, postfix=lambda: "loss 1.0"))
    finally:
        console.LOGGER.removeHandler(handler)
    assert out == [0, 1, 2]
    lines = handler.lines
    assert lines[0] == "phase: started (0/3)"
    assert "phase: 2/3 after" in lines[2] and lines[2].endswith("loss 1.0")
    assert lines[-1].startswith("phase: done (3/3) in") and lines[-1].endswith("loss 1.0")


def test_progress_disabled_or_quiet_says_nothing(caplog, monkeypatch):
    monkeypatch.setattr(console, "_is_terminal", lambda: False)
    monkeypatch.setattr(console.LOGGER, "propagate", True)
    with caplog.at_level(logging.WARNING, logger="brainalign"):
        console.LOGGER.setLevel(logging.WARNING)
        assert list(console.progress([1, 2], desc="quiet")) == [1, 2]
        console.LOGGER.setLevel(logging.INFO)
        assert list(console.progress([1, 2], desc="off", enabled=False)) == [1, 2]
    assert not [r for r in caplog.records if r.name == "brainalign"]


def _config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "experiment": "t", "name": "baseline", "out_dir": str(tmp_path / "runs"),
        "model": {"name": "small_cnn", "width": 8},
        "train": {"epochs": 2, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0, "threads": 1},
        "eval": {"n_examples": 40, "selfcheck_examples": 20,
                 "attacks": [{"name": "pgd_linf", "eps": [0.0, 0.1], "params": {"steps": 2}},
                             {"name": "apgd_ce_t_linf", "eps": [0.0, 0.1], "params": {"steps": 2}}]}}))
    return path


def test_train_writes_progress_into_a_redirected_stream_and_ends_with_its_summary(tmp_path):
    cmd = [sys.executable, "-m", "brainalign.cli", "train", str(_config(tmp_path))]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # stderr is a pipe, not a terminal
    assert done.returncode == 0, done.stderr
    assert "baseline seed 0: training: started (0/2)" in done.stderr
    assert "baseline seed 0: training: done (2/2)" in done.stderr
    assert "self-checks on 20 test images" in done.stderr
    for field in ("clean accuracy", "headline robust", "PGD robust", "self-checks", "time", "run folder"):
        assert field in done.stdout
    assert "this run: 2 steps" in done.stdout  # the headline names the budget it actually ran
    result = json.loads((tmp_path / "runs" / "t" / "baseline__seed0" / "result.json").read_text())
    assert result["did_not_learn"] is (result["clean_accuracy"] < 0.2)  # 10 classes, 360 test images
    quiet = subprocess.run(cmd[:3] + ["evaluate", str(tmp_path / "runs" / "t" / "baseline__seed0"), "--quiet"],
                           capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and "headline robust" in quiet.stdout
