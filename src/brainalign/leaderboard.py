"""The leaderboard: run folders aggregated into a Parquet table, RobustBench-style model cards and an HTML page.

``build_leaderboard(dir)`` reads only run folders (``config.yaml`` and ``result.json``), never retrains or
re-attacks, and writes to ``dir/leaderboard/`` (or ``out``):

- ``model_info/<dataset>/<threat model>/<model id>.json``: one model card per run in RobustBench's
  ``model_info`` layout (RobustBench/robustbench, ``model_info/cifar10/Linf/*.json``) with the same fields
  (``link, name, authors, additional_data, number_forward_passes, dataset, venue, architecture, eps,
  clean_acc, reported, autoattack_acc, unreliable, footnote``), numbers as floats instead of strings, and
  ours added: regularizers and their parameters, seed, n_examples, every attack's configuration and curve,
  self-check flags, brain-alignment scores, package versions and commit. Accuracies are percentages, as in
  RobustBench; ``eps`` is in native [0, 1] pixel units. The cards validate against
  ``leaderboard_schema.json`` (shipped beside this module).
- ``leaderboard.parquet``: one row per model configuration (the run's config less its seed and where it
  ran), seeds aggregated: for each accuracy the mean over seeds, its 95% Student-t interval
  (``<column>_low``, ``<column>_high``; ``brainalign.analysis.stats.mean_ci``, empty for one seed) and
  ``n_seeds``; numbers rounded to 2 decimals (percentages) so that no float noise shows. Key columns
  first: name, dataset, threat model, eps, clean, headline, n seeds. Needs pyarrow.
- ``leaderboard_runs.parquet``: the per-seed rows the table aggregates (one per run folder).
- ``leaderboard.html``: the aggregated table, self-contained (inline script, no network), sorts and filters;
  rendered from ``brainalign/templates/leaderboard.html.j2``.

``eps`` is the threat model's stated headline eps for the data set (``brainalign.headline``), never the
largest strength present. ``headline_acc`` is brainalign's headline robust accuracy (``headline_attack`` names
it: the same string as in summary.json, report.json and study.json); ``robust_acc`` is the worst accuracy over
every attack of the threat model evaluated at that ``eps``; ``autoattack_acc`` is AutoAttack's accuracy there, and None
(with a footnote) when AutoAttack was not run, rather than a weaker attack's number under its name.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brainalign import results
from brainalign.config import read_yaml
from brainalign.errors import BrainAlignError, ConfigError
from brainalign.headline import HEADLINE_NAME
from brainalign.io import write_json, write_text

SCHEMA_FILE = "leaderboard_schema.json"
CARD_FORMAT = "brainalign-model-card/1"
THREAT_MODELS = ("Linf", "L2")
OUT_DIR = "leaderboard"


def schema() -> dict[str, Any]:
    """The JSON Schema of a model card."""
    return json.loads(importlib.resources.files("brainalign").joinpath(SCHEMA_FILE).read_text())


def _pct(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else 100.0 * float(value)


def _entries(result: dict[str, Any], norm: str) -> dict[str, dict[str, Any]]:
    return {k: e for k, e in result.get("robustness", {}).items() if e.get("norm") == norm}


def _acc_at(entry: dict[str, Any], eps: float) -> float | None:
    for e, a in zip(entry.get("eps", []), entry.get("accuracy", []), strict=False):
        if math.isclose(float(e), eps, rel_tol=1e-9, abs_tol=1e-12) and a is not None:
            return float(a)
    return None


def _unreliable(self_checks: Any) -> bool:
    """Whether any self-check failed: ``reliable: false``, a ``False`` flag, or an entry with ``passed: false``."""
    if isinstance(self_checks, bool):
        return not self_checks
    if isinstance(self_checks, dict):
        if isinstance(self_checks.get("reliable"), bool):
            return not self_checks["reliable"]
        if isinstance(self_checks.get("passed"), bool):
            return not self_checks["passed"]
        return any(_unreliable(v) for v in self_checks.values())
    if isinstance(self_checks, list):
        return any(_unreliable(v) for v in self_checks)
    return False


def _additional_data(result: dict[str, Any]) -> bool:
    """Training used data beyond the classification set: a neural recording behind a regularizer."""
    from brainalign.registry import REGULARIZERS

    for reg in result.get("regularizers", []):
        if reg.get("weight", 0) > 0 and reg.get("name") in REGULARIZERS:
            if getattr(REGULARIZERS.info(reg["name"]), "target", None) == "recording":
                return True
    return False


def _headline_eps(run: dict[str, Any], norm: str) -> float | None:
    """The threat model's stated headline eps for this run's data set (``brainalign.headline``), never the
    largest strength present; None for a norm without a stated eps."""
    from brainalign.headline import threat_model

    tm = threat_model(str(run["result"].get("data", run["config"].get("data", {}).get("name", ""))))
    return tm.eps if tm.norm == norm else None


def _headline(run: dict[str, Any]) -> float | None:
    """The run's headline robust accuracy (``brainalign.headline``), None when not evaluated with it."""
    from brainalign.analysis.runs import Run
    from brainalign.headline import headline_accuracy

    return headline_accuracy(Run(run["dir"], run["result"]))


def model_card(run: dict[str, Any], threat_model: str, eps: float | None) -> dict[str, Any]:
    """One run's model card (RobustBench fields plus ours) for ``threat_model`` at ``eps``."""
    result, config = run["result"], run["config"]
    model = config.get("model", {})
    entries = _entries(result, threat_model) if threat_model in THREAT_MODELS else {}
    at_eps = {k: _acc_at(e, eps) for k, e in entries.items()} if eps is not None else {}
    at_eps = {k: a for k, a in at_eps.items() if a is not None}
    robust_attack = min(at_eps, key=at_eps.get) if at_eps else None
    auto = [a for k, a in at_eps.items() if entries[k].get("attack", "").startswith("autoattack")]
    headline = entries.get(robust_attack, {}) if robust_attack else {}
    self_checks = result.get("selfchecks", result.get("self_checks"))
    unreliable = (not result["reliable"]) if isinstance(result.get("reliable"), bool) else _unreliable(self_checks)
    notes = []
    if robust_attack is None:
        notes.append(f"no Lp attack evaluated at the headline eps ({eps}); robust_acc is empty")
    else:
        notes.append(f"robust_acc: worst of {', '.join(sorted(at_eps))} at eps {eps:g} "
                     f"(native [0, 1] pixel units) on {headline.get('n_examples')} test images")
    if robust_attack is not None and not auto:
        notes.append("AutoAttack was not run, so autoattack_acc is empty")
    if unreliable:
        reasons = self_checks.get("reasons") if isinstance(self_checks, dict) else None
        notes.append("a self-check failed" + (f": {'; '.join(map(str, reasons))}" if reasons else ""))
    if result.get("simulated_data"):
        notes.append("regularized with SIMULATED brain data")
    return {
        "link": "",
        "name": run["id"],
        "authors": "",
        "additional_data": _additional_data(result),
        "number_forward_passes": 1,
        "dataset": result.get("data", config.get("data", {}).get("name", "")),
        "venue": "N/A",
        "architecture": f"{model.get('name', result.get('model', ''))} (width {model.get('width')})",
        "eps": eps if robust_attack is not None else None,
        "clean_acc": _pct(result.get("clean_accuracy")),
        "reported": None,
        "autoattack_acc": _pct(min(auto)) if auto else None,
        "unreliable": unreliable,
        "footnote": "; ".join(notes),
        # brainalign's fields
        "format": CARD_FORMAT,
        "threat_model": threat_model,
        "robust_acc": _pct(at_eps[robust_attack]) if robust_attack else None,
        "robust_attack": robust_attack,
        "headline_acc": _pct(_headline(run)) if threat_model == "Linf" else None,
        "headline_attack": HEADLINE_NAME,
        "n_examples": headline.get("n_examples", config.get("eval", {}).get("n_examples")),
        "n_test": result.get("n_test"),
        "experiment": result.get("experiment"),
        "run_name": result.get("name"),
        "seed": result.get("seed"),
        "run_dir": run["rel"],
        "regularizers": [{"name": r.get("name"), "weight": float(r.get("weight", 0.0)),
                          "control": r.get("control", "none"), "params": r.get("params", {})}
                         for r in result.get("regularizers", [])],
        "defences": result.get("defences", []),
        "simulated_data": bool(result.get("simulated_data", False)),
        "attacks": [
            {"key": k, "attack": e.get("attack", k), "norm": e.get("norm", "none"), "family": e.get("family"),
             "params": e.get("params", {}), "eps": [float(x) for x in e.get("eps", [])],
             "accuracy": [_pct(a) for a in e.get("accuracy", [])], "auc": _pct(e.get("auc")),
             "n_examples": e.get("n_examples")}
            for k, e in result.get("robustness", {}).items()
        ],
        "self_checks": self_checks,
        "brain_alignment": result.get("alignment", result.get("brain_alignment")),
        "training": {k: config.get("train", {}).get(k) for k in ("epochs", "batch_size", "optimizer", "lr")},
        "versions": {"brainalign": result.get("package_version"), "torch": result.get("torch_version"),
                     "python": result.get("python_version")},
        "commit": result.get("git_commit"),
        "schema_version": result.get("schema_version"),
    }


def _read_runs(root: Path) -> list[dict[str, Any]]:
    runs = []
    for run_dir in results.find_runs(root):
        rel = run_dir.relative_to(root)
        runs.append({
            "dir": run_dir,
            "rel": str(rel) if str(rel) != "." else run_dir.name,
            "id": "__".join(rel.parts) if rel.parts else run_dir.name,
            "result": results.read_result(run_dir),
            "config": read_yaml(run_dir / results.CONFIG),
        })
    return runs


def _row(card: dict[str, Any]) -> dict[str, Any]:
    row = {
        "model": card["name"], "experiment": card["experiment"], "run": card["run_name"], "seed": card["seed"],
        "dataset": card["dataset"], "architecture": card["architecture"],
        "regularizers": " + ".join(f"{r['name']}(w={r['weight']:g})" for r in card["regularizers"]) or "none",
        "regularizer_params": json.dumps([r["params"] for r in card["regularizers"]], sort_keys=True),
        "threat_model": card["threat_model"], "eps": card["eps"], "clean_acc": card["clean_acc"],
        "robust_acc": card["robust_acc"], "robust_attack": card["robust_attack"],
        "headline_acc": card["headline_acc"], "headline_attack": card["headline_attack"],
        "autoattack_acc": card["autoattack_acc"], "n_examples": card["n_examples"],
        "unreliable": card["unreliable"], "simulated_data": card["simulated_data"],
        "additional_data": card["additional_data"], "commit": card["commit"],
        "brainalign_version": card["versions"]["brainalign"],
    }
    for attack in card["attacks"]:
        for e, a in zip(attack["eps"], attack["accuracy"], strict=False):
            row[f"{attack['key']}@{e:g}"] = a
    return row


def build_leaderboard(root: str | Path, out: str | Path | None = None, *, threat_model: str | None = None,
                      eps: float | None = None, echo: Callable[[str], None] | None = None) -> Path:
    """Aggregate the finished run folders below ``root``; returns the output folder.

    Args:
        root: an experiment folder or any folder above run folders.
        out: output folder (default ``root/leaderboard``).
        threat_model: ``Linf`` or ``L2`` for every card (default: per run, Linf if it was attacked in Linf,
            else L2).
        eps: the headline strength (default: the threat model's stated eps for the run's data set,
            ``brainalign.headline.threat_model``).
        echo: called with the table's key columns as console text (:func:`console_table`), best first.
    """
    root = Path(root)
    out = Path(out) if out is not None else root / OUT_DIR
    if threat_model is not None and threat_model not in THREAT_MODELS:
        raise ConfigError(f"threat_model must be one of {', '.join(THREAT_MODELS)}, got {threat_model!r}")
    if eps is not None and not (math.isfinite(eps) and eps > 0):
        raise ConfigError(f"eps must be a finite strength > 0 (native [0, 1] pixel units), got {eps}")
    runs = _read_runs(root)
    if not runs:
        raise BrainAlignError(f"{root}: no finished run folders (with {results.RESULT}) below it")
    if eps is not None:
        norms = [threat_model] if threat_model else list(THREAT_MODELS)
        offered = sorted({float(e) for run in runs for n in norms for entry in _entries(run["result"], n).values()
                          for e in entry.get("eps", []) if float(e) > 0})
        if not any(math.isclose(eps, e, rel_tol=1e-9, abs_tol=1e-12) for e in offered):
            raise ConfigError(f"eps {eps:g}: no run was attacked at this strength; strengths run: "
                              f"{', '.join(f'{e:g}' for e in offered) or '(none)'}")
    cards = []
    for run in runs:
        norm = threat_model or next((n for n in THREAT_MODELS if _entries(run["result"], n)), "none")
        cards.append((norm, model_card(run, norm, eps if eps is not None else _headline_eps(run, norm))))
    _write_cards(out, cards)
    rows = [_row(card) for _, card in cards]
    table = aggregate([(run, row) for run, row in zip(runs, rows, strict=True)])
    _write_parquet(out / "leaderboard_runs.parquet", rows)
    _write_parquet(out / "leaderboard.parquet", table)
    write_text(out / "leaderboard.html", render_html(table, title=f"brainalign leaderboard: {root}"))
    if echo is not None:
        echo(console_table(table))
    return out


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first: headline robust accuracy, then the worst-attack robust accuracy; missing values last."""
    return sorted(rows, key=lambda r: tuple(
        x for c in ("headline_acc", "robust_acc") for x in (r.get(c) is None, -(r.get(c) or 0.0))))


def console_table(rows: list[dict[str, Any]], limit: int = 20, width: int = 120) -> str:
    """The aggregated rows' key columns (and robust_acc) as a plain-text table (rich), best first, at most
    ``limit`` rows; accuracies as ``mean [low, high]`` in percent."""
    from rich.console import Console
    from rich.table import Table

    def shown(row: dict[str, Any], column: str) -> str:
        value = row.get(column)
        if value is None:
            return "-"
        if column.endswith("_acc"):
            low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
            return f"{value:.1f}" + (f" [{low:.1f}, {high:.1f}]" if low is not None and high is not None else "")
        return f"{value:g}" if isinstance(value, float) else str(value)

    columns = [*KEY_COLUMNS, "robust_acc"]
    table = Table(*columns, box=None, pad_edge=False)
    ranked = _ranked(rows)
    for row in ranked[:limit]:
        table.add_row(*(shown(row, c) for c in columns))
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(table)
    text = "\n".join(line.rstrip() for line in console.export_text().rstrip().splitlines())
    if len(ranked) > limit:
        text += f"\n... and {len(ranked) - limit} more (leaderboard.html)"
    return text


# Fields of a run's config that say where or how fast it ran, not which model it trained.
_NOT_CONFIGURATION = ("seed", "out_dir", "train.device", "train.threads")
# Per-seed columns that are averaged over seeds, each with its 95% interval.
AGGREGATED = ("clean_acc", "headline_acc", "robust_acc", "autoattack_acc")
# The columns a reader needs first, in this order.
KEY_COLUMNS = ("name", "dataset", "threat_model", "eps", "clean_acc", "headline_acc", "n_seeds")
DECIMALS = 2


def configuration_key(config: dict[str, Any]) -> str:
    """A run's model configuration: its config less the seed and where it ran, as canonical JSON."""
    config = json.loads(json.dumps(config, default=str))
    for dotted in _NOT_CONFIGURATION:
        *parents, leaf = dotted.split(".")
        section = config
        for part in parents:
            section = section.get(part, {}) if isinstance(section, dict) else {}
        if isinstance(section, dict):
            section.pop(leaf, None)
    return json.dumps(config, sort_keys=True)


def _round(value: Any) -> Any:
    return None if value is None or not math.isfinite(value) else round(float(value), DECIMALS)


def aggregate(runs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per model configuration from ``(run, per-seed row)`` pairs: key columns first, then each
    accuracy's mean over seeds with its 95% interval (``mean_ci``), rounded; ``n_seeds`` counts the runs.

    ``configuration`` is a short hash of :func:`configuration_key`; rows that share a name (its config
    changed between runs) carry it in the name. An accuracy missing in some seeds is averaged over those
    that have it (``<column>_n`` says how many);
    ``unreliable_seeds`` counts seeds whose self-checks failed; per-attack columns are seed means.
    """
    from brainalign.analysis.stats import mean_ci

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run, row in runs:
        key = (str(row["threat_model"]), repr(row["eps"]), configuration_key(run["config"]))
        groups.setdefault(key, []).append(row)
    table = []
    for (_, _, config_key), members in groups.items():
        members = sorted(members, key=lambda r: (r["seed"] is None, r["seed"] or 0))
        first = members[0]
        name = "/".join(str(p) for p in (first["experiment"], first["run"]) if p)
        row: dict[str, Any] = {"name": name or first["model"], "dataset": first["dataset"],
                               "threat_model": first["threat_model"], "eps": first["eps"]}
        for column in AGGREGATED:
            ci = mean_ci([r[column] for r in members if r[column] is not None])
            row[column] = _round(ci["mean"])
            row[f"{column}_low"], row[f"{column}_high"] = _round(ci["low"]), _round(ci["high"])
            row[f"{column}_n"] = ci["n"]
        row["n_seeds"] = len(members)
        row = {**{c: row[c] for c in KEY_COLUMNS}, **row}
        row.update({
            "seeds": ", ".join(str(r["seed"]) for r in members),
            "unreliable_seeds": sum(bool(r["unreliable"]) for r in members),
            "headline_attack": first["headline_attack"],
            "robust_attacks": ", ".join(sorted({str(r["robust_attack"]) for r in members if r["robust_attack"]})),
            "regularizers": first["regularizers"], "regularizer_params": first["regularizer_params"],
            "architecture": first["architecture"], "simulated_data": first["simulated_data"],
            "additional_data": first["additional_data"], "n_examples": first["n_examples"],
            "experiment": first["experiment"], "run": first["run"],
            "models": ", ".join(r["model"] for r in members),
        })
        attack_columns = [c for r in members for c in r if "@" in c]
        for column in dict.fromkeys(attack_columns):
            values = [r[column] for r in members if r.get(column) is not None]
            row[column] = _round(sum(values) / len(values)) if values else None
        row["configuration"] = hashlib.sha256(config_key.encode()).hexdigest()[:8]
        table.append(row)
    names = [r["name"] for r in table]
    for row in table:  # one name, several configurations (a config edited between runs): told apart
        if names.count(row["name"]) > 1:
            row["name"] += f" (config {row['configuration']})"
    return table


def _write_cards(out: Path, cards: list[tuple[str, dict[str, Any]]]) -> None:
    """The model cards as one set: written into a staging folder, which then replaces ``out/model_info``;
    a failure part-way leaves the previous set (or none) and no stray card."""
    import shutil
    import tempfile

    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out, prefix=".model_info.", suffix=".staging"))
    except OSError as exc:
        raise BrainAlignError(f"cannot write to {out}: {exc.strerror or exc}") from None
    final, old = out / "model_info", out / f".model_info.{staging.name}.old"
    try:
        for norm, card in cards:
            write_json(staging / _safe(card["dataset"]) / norm / f"{_safe(card['name'])}.json", card)
        if final.exists():
            final.rename(old)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not final.exists():
            old.rename(final)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._=-" else "_" for c in str(name)) or "_"


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        warnings.warn("pyarrow is not installed: leaderboard.parquet skipped (pip install 'brainalign[sweep]')",
                      stacklevel=3)
        return
    import pandas as pd

    from brainalign.io import atomic_path

    frame = pd.DataFrame(rows)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _shown(value: float) -> str:
    return f"{value:.{DECIMALS}f}" if abs(value) >= 1 else f"{value:.4g}"


def render_html(rows: list[dict[str, Any]], title: str = "brainalign leaderboard") -> str:
    """A self-contained HTML table of leaderboard rows: click a header to sort, type to filter.

    A column ``X`` with ``X_low``/``X_high`` beside it shows as one cell, ``mean [low, high]`` (sorted by the
    mean); rows are ordered by headline robust accuracy, then the worst-attack robust accuracy.
    """
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    folded = {f"{c}{suffix}" for c in columns if f"{c}_low" in columns for suffix in ("_low", "_high", "_n")}
    columns = [c for c in columns if c not in folded]
    rows = _ranked(rows)

    def cell(row: dict[str, Any], column: str) -> dict[str, Any]:
        value = row.get(column)
        if value is None:
            return {"kind": "none"}
        if isinstance(value, bool):
            return {"kind": "text", "text": "yes" if value else "no"}
        if isinstance(value, (int, float)):
            low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
            return {"kind": "number", "value": repr(value),
                    "text": _shown(value) if isinstance(value, float) else str(value),
                    "ci": f"[{_shown(low)}, {_shown(high)}]" if low is not None and high is not None else ""}
        return {"kind": "text", "text": str(value)}

    notes = ("One row per model configuration, seeds aggregated: accuracies in percent, the mean over seeds "
             "with its 95% confidence interval in brackets (none for one seed); n_seeds counts the seeds. "
             "headline_acc: brainalign's headline robust accuracy; robust_acc: the worst attack evaluated at eps "
             "(native [0, 1] pixel units). Rows in red have a seed that failed a self-check. Per-seed model "
             "cards are in model_info/. Click a column to sort; type to filter (all words must match).")
    from brainalign.templates import environment

    shown = [{"unreliable": bool(r.get("unreliable") or r.get("unreliable_seeds")),
              "cells": [cell(r, c) for c in columns]} for r in rows]
    return environment().get_template("leaderboard.html.j2").render(title=title, notes=notes, columns=columns,
                                                                      rows=shown)
