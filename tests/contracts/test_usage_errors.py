"""Usage errors of the command line (typer/click): one line, exit 2, options before and after the command."""

from __future__ import annotations

import pytest

from brainalign import __version__
from brainalign.cli import main

CASES = [
    # (arguments, words the one line must contain)
    (["train"], ["missing argument CONFIG"]),
    (["train", "--bogus", "c.yaml"], ["no such option --bogus", "valid:", "--set"]),
    (["train", "c.yaml", "--bogus"], ["no such option --bogus", "valid:", "--set"]),
    (["--bogus", "train", "c.yaml"], ["no such option --bogus", "valid:", "--debug", "--version"]),
    (["bogus"], ["No such command 'bogus'", "valid:", "train", "evaluate"]),
    (["data", "bogus"], ["No such command 'bogus'", "valid:", "inspect", "simulate"]),
    (["demo", "--seeds", "0"], ["--seeds", "greater than or equal to 1"]),
    (["demo", "--seeds", "x"], ["--seeds", "x"]),
    (["evaluate", "run", "--n-examples", "0"], ["--n-examples", "greater than or equal to 1"]),
    (["evaluate", "--n-examples", "0", "run"], ["--n-examples", "greater than or equal to 1"]),
    (["list"], ["missing argument KIND", "datasets"]),
    (["train", "a.yaml", "b.yaml"], ["unexpected extra argument"]),
    (["evaluate", "run", "--suite"], ["--suite", "requires an argument"]),
    (["study", "runs"], ["missing option --recording"]),
    (["data", "simulate", "eeg"], ["missing option --out"]),
]


@pytest.mark.parametrize(("args", "needles"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_usage_errors_are_one_line_exit_2(refused, args, needles):
    refused(args, *needles)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_is_accepted_before_or_after_the_command(tmp_path, where):
    from brainalign.errors import ConfigError

    args = ["train", str(tmp_path / "missing.yaml")]
    with pytest.raises(ConfigError):
        main(["--debug", *args] if where == "before" else [*args, "--debug"])


def test_without_debug_the_same_error_is_one_line(refused, tmp_path):
    refused(["train", tmp_path / "missing.yaml"], "config file not found")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"brainalign {__version__}"
