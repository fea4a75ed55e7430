"""The generated catalog that `brainalign list` reads matches the live registries, and reading it needs no torch."""

from __future__ import annotations

import subprocess
import sys

from brainalign.catalog import PATH, catalog, live_catalog, render
from brainalign.cli import main

REGENERATE = "out of date: regenerate it with `python -m brainalign.catalog` and commit src/brainalign/_catalog.py"


def test_catalog_matches_the_live_registries():
    live = live_catalog()
    assert catalog() == live, f"the catalog is {REGENERATE}"
    assert PATH.read_text() == render(live), f"_catalog.py is {REGENERATE}"


def test_render_round_trips():
    data = {"models": [("a", "it's \"quoted\""), ("b", "x" * 300)], "attacks": []}
    namespace: dict = {}
    exec(compile(render(data), "<catalog>", "exec"), namespace)  # our own generated literal, not user input
    assert namespace["CATALOG"] == data


def test_list_prints_every_registered_entry(capsys):
    for kind, entries in live_catalog().items():
        assert main(["list", kind]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in lines] == [name for name, _ in entries]


def test_list_rejects_an_unknown_kind_in_one_line(capsys):
    assert main(["list", "widgets"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown kind 'widgets'; valid: datasets, models, regularizers, attacks, neural, defences")


def test_list_does_not_import_torch():
    code = ("import sys; from brainalign.cli import main; rc = main(['list', 'attacks']); "
            "heavy = sorted(m for m in ('torch', 'numpy', 'brainalign.registry') if m in sys.modules); "
            "print(rc, heavy, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "0 []", proc.stderr
