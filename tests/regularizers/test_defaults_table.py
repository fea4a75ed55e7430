"""docs/regularizers.md's "Paper defaults" tables are the regularizers' defaults: every parameter of every
registered regularizer has a row, and its "ours" column equals the default in the code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml

from brainalign.config import RegularizerConfig
from brainalign.registry import REGULARIZERS
from brainalign.regularizers.targets import TargetOptions

DOC = Path(__file__).resolve().parents[2] / "docs" / "regularizers.md"


def _literal(cell: str):
    value = yaml.safe_load(cell)
    if isinstance(value, str):  # YAML 1.1 reads 1e-05 as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def doc_tables(text: str | None = None) -> dict[str, dict[str, object]]:
    """{regularizer: {parameter: default}} from the tables under '## Paper defaults'."""
    text = DOC.read_text() if text is None else text
    section = text.split("## Paper defaults", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, dict[str, object]] = {}
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("### "):
            names = re.findall(r"`([a-z_]+)`", line.split("—")[0])
            for name in names:
                tables[name] = {}
        elif line.startswith("| `") and names:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            param = cells[0].strip("`")
            default = re.search(r"`([^`]*)`", cells[2])
            assert default, f"{names}: row {param!r} has no `default` in its 'ours' column"
            for name in names:
                tables[name][param] = _literal(default.group(1))
    return tables


def code_defaults(name: str) -> dict[str, object]:
    """Every constructor default (through the **kwargs chain), the default layer set, the run's weight, and
    the paper's target options."""
    cls, info = REGULARIZERS.get(name), REGULARIZERS.info(name)
    out: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in klass.__dict__ and klass.__module__.startswith("brainalign"):
            for key, p in inspect.signature(klass.__init__).parameters.items():
                if key not in ("self", "kwargs"):
                    out[key] = p.default
    out["layers"] = info.default_layers
    out["weight"] = RegularizerConfig.model_fields["weight"].default
    for key, value in info.target_defaults:
        out[key] = value
    return out


def _same(a, b) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return list(a) == list(b)
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return a == pytest.approx(b, rel=1e-3)
    return a == b


def test_every_regularizer_has_a_table():
    assert set(doc_tables()) == set(REGULARIZERS.names())


def check(name: str, tables: dict[str, dict[str, object]]) -> None:
    table, code = tables[name], code_defaults(name)
    assert set(code) <= set(table), f"{name}: parameters without a row: {sorted(set(code) - set(table))}"
    target_defaults = TargetOptions()
    for param, documented in table.items():
        actual = code[param] if param in code else getattr(target_defaults, param)
        assert _same(actual, documented), (name, param, actual, documented)


@pytest.mark.parametrize("name", sorted(REGULARIZERS.names()))
def test_code_defaults_equal_the_documented_ones(name):
    check(name, doc_tables())


def test_a_divergence_fails():
    text = DOC.read_text()
    for old, new in [("| `10` | |", "| `11` | |"),  # spectral tau
                     ("| `[70, 170]` |", "| `[70, 160]` |"),  # cka window
                     ("| `128` | |", "| `32` | |")]:  # cka batch
        assert old in text
        with pytest.raises(AssertionError):
            check("cka" if "170" in old or "128" in old else "spectral", doc_tables(text.replace(old, new)))
    dropped = text.replace("| `pca` | top 80 PCs of the responses (per session) | `80` | over the whole recording: "
                           "one session here |\n", "")
    assert dropped != text
    with pytest.raises(AssertionError, match="without a row"):
        check("dcca", doc_tables(dropped))
