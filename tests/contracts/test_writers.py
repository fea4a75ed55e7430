"""Writers that produce several files: leaderboard cards as a set, `data simulate` staged, a full disk in one
line; bad options refused before anything is written (options before and after the command)."""

from __future__ import annotations

import errno
import os

import pytest


@pytest.mark.parametrize("order", ["after", "before"])
@pytest.mark.parametrize(("eps", "needles"), [
    ("-1", ["eps must be a finite strength > 0", "got -1"]),
    ("nan", ["eps must be a finite strength > 0", "got nan"]),
    ("inf", ["eps must be a finite strength > 0"]),
    ("0.37", ["eps 0.37: no run was attacked at this strength", "strengths run: 0.1"]),
])
def test_leaderboard_eps_is_validated(refused, untrained_run, tmp_path, eps, needles, order):
    experiment = untrained_run().parent
    args = (["leaderboard", experiment, "--eps", eps] if order == "after"
            else ["leaderboard", "--eps", eps, experiment])
    refused(args, *needles)


def test_leaderboard_cards_are_written_as_a_set(untrained_run, monkeypatch):
    from brainalign import leaderboard

    first = untrained_run(name="a")
    untrained_run(name="b")
    experiment = first.parent
    out = leaderboard.build_leaderboard(experiment)
    cards = sorted(p.relative_to(out) for p in (out / "model_info").rglob("*.json"))
    assert len(cards) == 2
    real = leaderboard.write_json
    calls = []

    def fail_on_second(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(leaderboard, "write_json", fail_on_second)
    with pytest.raises(OSError):  # a rerun that fails part-way through the cards
        leaderboard.build_leaderboard(experiment)
    assert len(calls) == 2
    assert sorted(p.relative_to(out) for p in (out / "model_info").rglob("*.json")) == cards  # the old set
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_a_full_disk_is_one_line(refused, untrained_run, monkeypatch):
    experiment = untrained_run().parent
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)
    line = refused(["leaderboard", experiment], "No space left on device", "free space")
    monkeypatch.setattr(os, "replace", real_replace)
    assert "internal error" not in line


@pytest.mark.parametrize("order", ["after", "before"])
@pytest.mark.parametrize(("kind", "fmt", "needles"), [
    ("banana", "things_eeg2", ["unknown simulation 'banana'", "valid: eeg", "v1"]),
    ("banana", "brainio", ["unknown simulation 'banana'", "valid: eeg"]),
    ("v1", "things_eeg2", ["things_eeg2 format holds EEG", "brainio"]),
    ("eeg", "csv", ["unknown format 'csv'", "things_eeg2"]),
])
def test_data_simulate_bad_options(refused, tmp_path, kind, fmt, needles, order):
    out = tmp_path / "sim"
    args = (["data", "simulate", kind, "--out", out, "--format", fmt] if order == "after"
            else ["data", "simulate", "--out", out, "--format", fmt, kind])
    refused(args, *needles)


def test_data_simulate_is_staged_a_failure_leaves_nothing(tmp_path, monkeypatch):
    from brainalign.neural import writers

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers, "_save_npy", fail)  # the recording fails after the images are written
    with pytest.raises(OSError):
        writers.simulate_to_disk("eeg", tmp_path / "sim", n_stimuli=12)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    path = writers.simulate_to_disk("eeg", tmp_path / "sim", n_stimuli=12)
    assert path.is_dir() and (tmp_path / "sim" / "SIMULATED_DATA.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["sim"]
