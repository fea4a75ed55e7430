"""Tuning by one stated rule: every method's grid, trained on train, selected on validation, written as configs.

The rule (Attias, Pehlevan & Obeid 2024), defined once here and used by every sweep objective:

* a setting is **accepted** iff its validation clean accuracy >= 0.9 x the baseline's validation clean
  accuracy, and its validation robust accuracy > the baseline's, under a cheap attack (PGD-10 at the data
  set's headline eps, :func:`brainalign.headline.threat_model`); accuracies are means over the tuning seeds,
  each setting against the same-seed baseline;
* among accepted settings the one with the **highest validation robust accuracy** is selected
  (ties: higher validation clean accuracy, then the order of the grid);
* when **no setting is accepted**, the method is reported as ``no accepted setting`` and the demo still runs it,
  at a stated fallback: the highest validation robust accuracy among the settings that keep clean accuracy
  (>= 0.9 x baseline), or, if none does, the setting with the highest validation clean accuracy. The
  manifest and every tuned config say which of the three it is (``status``).

Test images are never read: tuning trials evaluate with ``eval.split: val`` (and no self-checks; their
numbers select settings and are never reported). A tuning file (``configs/sweep_tune_digits.yaml``) names
the base run, the seeds, the cheap attack and, per method, its config sections and its grid of knobs;
:func:`run_tuning` expands it into one sweep with a named setting per grid point (``brainalign.sweep``, Ray
Tune), applies the rule per method, and writes ``<out>/<method>.yaml`` per method plus ``<out>/manifest.json``
(grid, rule, validation numbers per setting and seed, seeds, code commit) atomically.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

from brainalign.errors import ConfigError

MIN_CLEAN_RATIO = 0.9
RULE_NAME = "attias2024"
RULE_TEXT = ("accept iff validation clean >= 0.9 x baseline validation clean and validation robust > baseline "
             "validation robust (same-seed baseline, mean over tuning seeds); select the accepted setting with "
             "the highest validation robust accuracy (ties: higher clean, then grid order); with none accepted: "
             "'no accepted setting', fallback = highest robust among settings with clean >= 0.9 x baseline, "
             "else highest clean")
ACCEPTED = "accepted"
FALLBACK_CLEAN_KEPT = "no accepted setting (fallback: highest robust with clean kept)"
FALLBACK_BEST_CLEAN = "no accepted setting (fallback: highest clean)"
BASELINE = "baseline"
MANIFEST = "manifest.json"
ROLES = ("baseline", "regularizer", "control", "defence")
_METHOD_KEYS = {"role", "description", "regularizers", "defences", "train", "grid", "matched"}
_TOP_KEYS = {"experiment", "out_dir", "base", "seeds", "attack", "methods", "sweep"}


def accepts(clean_reg: float, clean_unreg: float, robust_reg: float, robust_unreg: float, *,
            min_clean_ratio: float = MIN_CLEAN_RATIO) -> bool:
    """Attias et al.'s acceptance test: clean accuracy kept, robustness gained.

    Accept iff clean_reg / clean_unreg >= 0.9 (R0/U0) and robust_reg / robust_unreg > 1 (RD/UD). A zero
    unregularized accuracy makes a ratio undefined: then any positive regularized accuracy counts as a gain
    (and a zero clean accuracy fails).
    """
    for name, v in (("clean_reg", clean_reg), ("clean_unreg", clean_unreg), ("robust_reg", robust_reg),
                    ("robust_unreg", robust_unreg)):
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be an accuracy in [0, 1], got {v}")
    clean_ok = clean_reg >= min_clean_ratio * clean_unreg and clean_reg > 0
    robust_ok = robust_reg > robust_unreg
    return bool(clean_ok and robust_ok)


def select(rows: list[dict[str, Any]], min_clean_ratio: float = MIN_CLEAN_RATIO) -> dict[str, Any]:
    """Apply the rule to one method's selection rows (``brainalign.sweep.selection_table`` rows).

    Returns ``{"row": the chosen row, "status": ACCEPTED | FALLBACK_CLEAN_KEPT | FALLBACK_BEST_CLEAN,
    "n_accepted": int}``; a method with an unfinished row cannot be selected (ConfigError).
    """
    if not rows:
        raise ConfigError("select: the method has no settings")
    unfinished = [r for r in rows if r.get("accepted") is None]
    if unfinished:
        raise ConfigError(f"select: settings not finished: {', '.join(str(r['setting']) for r in unfinished)}")
    order = {id(r): i for i, r in enumerate(rows)}

    def best(candidates: list[dict[str, Any]], key: str) -> dict[str, Any]:
        other = "clean_reg" if key == "robust_reg" else "robust_reg"
        return min(candidates, key=lambda r: (-r[key], -r[other], order[id(r)]))

    accepted = [r for r in rows if r["accepted"]]
    if accepted:
        return {"row": best(accepted, "robust_reg"), "status": ACCEPTED, "n_accepted": len(accepted)}
    kept = [r for r in rows if r["clean_reg"] >= min_clean_ratio * r["clean_unreg"]]
    if kept:
        return {"row": best(kept, "robust_reg"), "status": FALLBACK_CLEAN_KEPT, "n_accepted": 0}
    return {"row": best(rows, "clean_reg"), "status": FALLBACK_BEST_CLEAN, "n_accepted": 0}


# --------------------------------------------------------------------------------------------------------
# The tuning file


def _dotted(prefix: str, section: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in section.items()}


def _strings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _short(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def method_settings(name: str, method: dict[str, Any]) -> list[dict[str, Any]]:
    """A method's grid as named settings: ``{name, set}`` with the method's sections and one grid point each."""
    fixed: dict[str, Any] = {}
    for section in ("regularizers", "defences"):
        if section in method:
            fixed[section] = copy.deepcopy(method[section])
    fixed.update(_dotted("train", method.get("train") or {}))
    grid = method.get("grid") or {}
    out = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo, strict=True))
        from brainalign.sweep import _format_value

        label = "-".join(f"{_short(k)}={'_'.join(v) if _strings(v) else _format_value(v)}" for k, v in values.items())
        out.append({"name": "-".join(filter(None, [name, label])), "set": {**copy.deepcopy(fixed), **values},
                    "values": values})
    return out


def load_tuning(path: str | Path) -> dict[str, Any]:
    """Read and check a tuning file; returns it normalised (methods with their settings and role)."""
    from brainalign.config import read_yaml

    path = Path(path)
    raw = read_yaml(path)
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}; valid: {', '.join(sorted(_TOP_KEYS))}")
    methods = raw.get("methods")
    if not isinstance(methods, dict) or BASELINE not in methods:
        raise ConfigError(f"{path}: methods: a mapping of method name -> sections and grid, with a '{BASELINE}'")
    seeds = raw.get("seeds", [0, 1])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{path}: seeds: a non-empty list of whole numbers >= 0, got {seeds!r}")
    attack = raw.get("attack", {"name": "pgd_linf", "params": {"steps": 10}})
    if not isinstance(attack, dict) or "name" not in attack or set(attack) - {"name", "params"}:
        raise ConfigError(f"{path}: attack: a mapping with name and optional params, e.g. "
                          f"{{name: pgd_linf, params: {{steps: 10}}}}")
    normalised: dict[str, Any] = {}
    for name, method in methods.items():
        method = method or {}
        if not isinstance(method, dict) or set(method) - _METHOD_KEYS:
            bad = sorted(set(method) - _METHOD_KEYS) if isinstance(method, dict) else ["(not a mapping)"]
            raise ConfigError(f"{path}: methods.{name}: unknown key {bad[0]!r}; "
                              f"valid: {', '.join(sorted(_METHOD_KEYS))}")
        role = method.get("role", BASELINE if name == BASELINE else "regularizer")
        if role not in ROLES:
            raise ConfigError(f"{path}: methods.{name}.role: must be one of {', '.join(ROLES)}, got {role!r}")
        grid = method.get("grid") or {}
        if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
            raise ConfigError(f"{path}: methods.{name}.grid: a mapping of dotted.field: [values]")
        matched = method.get("matched")
        if matched is not None:
            if (not isinstance(matched, dict) or set(matched) - {"of", "copy"} or matched.get("of") not in methods
                    or not isinstance(matched.get("copy"), list)):
                raise ConfigError(f"{path}: methods.{name}.matched: {{of: <a method>, copy: [dotted fields]}}")
        normalised[name] = {**method, "role": role, "settings": method_settings(name, method)}
    return {**raw, "seeds": seeds, "attack": attack, "methods": normalised, "path": str(path)}


def sweep_content(tuning: dict[str, Any]) -> dict[str, Any]:
    """The sweep (``brainalign.sweep`` content) a tuning file expands to: a named setting per grid point."""
    from brainalign.config import parse_config
    from brainalign.headline import threat_model

    base = copy.deepcopy(tuning.get("base") or {})
    data_name = parse_config(base).data.name
    eps = threat_model(data_name).eps
    attack = {"name": tuning["attack"]["name"], "eps": [0.0, eps], "params": tuning["attack"].get("params") or {}}
    base["eval"] = {**(base.get("eval") or {}), "split": "val", "attacks": [attack], "selfchecks": False}
    base.pop("regularizers", None)
    base.pop("defences", None)
    settings = [{"name": s["name"], "set": s["set"]} for m in tuning["methods"].values() for s in m["settings"]]
    from brainalign.config import AttackSpec

    return {
        "base": base,
        "experiment": tuning.get("experiment", "tune"),
        **({"out_dir": tuning["out_dir"]} if "out_dir" in tuning else {}),
        "settings": settings,
        "grid": {"seed": tuning["seeds"]},
        "objective": {"rule": RULE_NAME, "attack": AttackSpec(**attack).key, "eps": eps,
                      "baseline": {"setting": BASELINE}, "match": ["seed"], "min_clean_ratio": MIN_CLEAN_RATIO},
        "sweep": tuning.get("sweep") or {"max_concurrent": 1, "cpus_per_trial": 1},
    }


def _config_of(sweep, setting: str, seed: int) -> dict[str, Any]:
    trial = next(t for t in sweep.trials if t.params.get("setting") == setting and t.seed == seed)
    return trial.config.to_dict()


def _per_seed(sweep, setting: str, attack: str, eps: float) -> list[dict[str, Any]]:
    from brainalign import results
    from brainalign.sweep import is_finished, robust_accuracy

    rows = []
    for t in sweep.trials:
        if t.params.get("setting") != setting:
            continue
        row: dict[str, Any] = {"seed": t.seed, "run": t.key, "finished": is_finished(t.config)}
        if row["finished"]:
            result = results.read_result(t.run_dir)
            row.update({"val_clean": robust_accuracy(result, attack, 0.0),
                        "val_robust": robust_accuracy(result, attack, eps),
                        "final_train_loss": result.get("final_train_loss"), "git_commit": result.get("git_commit")})
        rows.append(row)
    return rows


def _write_tuned(path: Path, config: dict[str, Any], name: str, note: dict[str, Any]) -> None:
    """A selected setting as a run config (its training sections; eval is the user's: it defaults to the test
    split), headed by a comment naming the method, setting, status and manifest."""
    import yaml

    from brainalign.io import write_text

    body = {"name": name, **{k: copy.deepcopy(config[k]) for k in ("data", "model", "train", "regularizers",
                                                                  "defences")}}
    header = [f"# brainalign tune: {note['method']} ({note['role']}), selected by rule {RULE_NAME} on the "
              f"validation split.", f"# setting: {note['setting']}", f"# status: {note['status']}",
              f"# numbers per setting and seed: {MANIFEST} beside this file"]
    write_text(path, "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False))


def selections(tuning: dict[str, Any], sweep, table: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: every setting's validation numbers, the rule's choice and the configs to write."""
    by_setting = {r["setting"]["setting"]: r for r in table}
    objective = sweep.objective
    out: dict[str, Any] = {}
    for name, method in tuning["methods"].items():
        entry: dict[str, Any] = {"role": method["role"], "description": method.get("description", ""),
                                 "grid": method.get("grid") or {}, "settings": []}
        for s in method["settings"]:
            row = by_setting.get(s["name"], {})
            entry["settings"].append({"setting": s["name"], "values": s["values"],
                                      **{k: row.get(k) for k in ("clean_reg", "clean_unreg", "robust_reg",
                                                                  "robust_unreg", "clean_ratio", "robust_ratio",
                                                                  "accepted", "n_seeds")},
                                      "per_seed": _per_seed(sweep, s["name"], objective.attack, objective.eps)})
        if name == BASELINE:
            chosen = {"setting": method["settings"][0]["name"], "status": BASELINE, "n_accepted": None}
        else:
            rows = [by_setting[s["name"]] for s in method["settings"]]
            choice = select(rows, objective.min_clean_ratio)
            chosen = {"setting": choice["row"]["setting"]["setting"], "status": choice["status"],
                      "n_accepted": choice["n_accepted"]}
        entry["selected"] = chosen
        out[name] = entry
    return out


def matched_config(tuning: dict[str, Any], chosen: dict[str, Any], sweep, control: str) -> dict[str, Any] | None:
    """A control at its regularizer's selected settings: the control's config with the ``matched.copy`` fields
    taken from the regularizer's selected config (same weight, layers, pairs)."""
    from brainalign.config import get_field, set_field

    spec = tuning["methods"][control].get("matched")
    if not spec:
        return None
    own_first = tuning["methods"][control]["settings"][0]["name"]
    config = _config_of(sweep, own_first, tuning["seeds"][0])
    source = _config_of(sweep, chosen[spec["of"]]["selected"]["setting"], tuning["seeds"][0])
    for dotted in spec["copy"]:
        try:
            value = get_field(source, dotted)
        except KeyError:
            raise ConfigError(f"methods.{control}.matched.copy: {spec['of']}'s config has no {dotted}") from None
        set_field(config, dotted, copy.deepcopy(value), source="field")
    return config


def run_tuning(path: str | Path, out: str | Path = "src/brainalign/tuned", address: str | None = None,
               progress: bool = False, *, train_fn=None, on_trial=None) -> dict[str, Any]:
    """Run a tuning file's sweep (finished trials are skipped), apply the rule per method, write the configs.

    Writes ``<out>/<method>.yaml`` (the selected setting as a run config, with a ``tuned`` note), for a control
    with ``matched`` also ``<out>/<method>_matched.yaml`` (at its regularizer's selected settings), and
    ``<out>/manifest.json``; returns the manifest.

    Raises:
        ConfigError: an invalid tuning file (before anything runs), or trials that failed (nothing is written).
    """
    from brainalign import results
    from brainalign.io import write_json
    from brainalign.sweep import load_sweep, run_sweep, selection_table

    provenance = results.provenance()  # the code the trials run on, recorded before they run
    tuning = load_tuning(path)
    content = sweep_content(tuning)
    sweep = load_sweep(path, content)  # validates every trial before anything runs
    outcome = run_sweep(path, address, progress, train_fn=train_fn, raw=content, on_trial=on_trial)
    if not outcome.complete:
        failed = [f"{t.name} seed {t.seed}: {t.status} {t.error or ''}".strip() for t in outcome.trials
                  if t.status not in ("finished", "skipped")]
        raise ConfigError(f"tuning incomplete, nothing written; {len(failed)} trials: {'; '.join(failed[:3])}")
    chosen = selections(tuning, sweep, selection_table(sweep))
    out = Path(out)
    rule = {"name": RULE_NAME, "text": RULE_TEXT, "min_clean_ratio": MIN_CLEAN_RATIO,
            "attack": sweep.objective.attack, "eps": sweep.objective.eps, "split": "val"}
    files: dict[str, str] = {}
    for name, entry in chosen.items():
        sel = entry["selected"]
        note = {"method": name, "role": entry["role"], "setting": sel["setting"], "status": sel["status"],
                "rule": RULE_NAME, "manifest": MANIFEST}
        config = _config_of(sweep, sel["setting"], tuning["seeds"][0])
        _write_tuned(out / f"{name}.yaml", config, name, note)
        files[name] = f"{name}.yaml"
        matched = matched_config(tuning, chosen, sweep, name)
        if matched is not None:
            of = tuning["methods"][name]["matched"]["of"]
            mnote = {**note, "setting": f"matched to {of} ({chosen[of]['selected']['setting']})",
                     "status": "matched", "matched_to": of, "copied": tuning["methods"][name]["matched"]["copy"]}
            _write_tuned(out / f"{name}_matched.yaml", matched, f"{name}_matched", mnote)
            files[f"{name}_matched"] = f"{name}_matched.yaml"
    manifest = {
        "format": "brainalign-tuning", "version": 1,
        "tuning_file": str(path), "git_commit": provenance.get("git_commit"),
        "package_version": provenance.get("package_version"),
        "sweep_hash": sweep.hash, "experiment_dir": str(sweep.experiment_dir),
        "rule": rule, "seeds": tuning["seeds"], "base": content["base"],
        "trial_git_commits": sorted({str(r.get("git_commit")) for e in chosen.values() for st in e["settings"]
                                     for r in st["per_seed"] if r.get("finished")}),
        "seconds": outcome.seconds, "methods": chosen, "configs": files,
    }
    write_json(out / MANIFEST, manifest)
    return manifest


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    """One line per method: its selected setting, status and validation numbers (for the CLI)."""
    lines = []
    for name, entry in manifest["methods"].items():
        sel = entry["selected"]
        row = next(s for s in entry["settings"] if s["setting"] == sel["setting"])
        clean, robust = row.get("clean_reg"), row.get("robust_reg")
        nums = "" if clean is None or math.isnan(clean) else f"  val clean {clean:.3f} robust {robust:.3f}"
        lines.append(f"{name}: {sel['setting']} [{sel['status']}]{nums}")
    return lines
