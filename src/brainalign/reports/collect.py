"""Everything a report shows, gathered from run folders and study.json into one JSON-ready dict.

Reads only files (result.json, flags.safetensors, study.json); never trains or attacks. Pieces that were
not computed (no study, no self-checks, no strong attack, no matched controls) are entries with
``"computed": False`` and the reason, so that the renderers can say "not computed" instead of failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from brainalign import __version__
from brainalign.analysis.comparisons import paired_tests, run_gain, strong_attack_check, structure_specific_gains
from brainalign.analysis.runs import Run, attack_keys, by_condition, find_baseline, headline_attack, load_runs, role
from brainalign.analysis.stats import mean_ci, nanmean
from brainalign.analysis.summary import condition_means, gradient_balance, seed_statuses, summarize
from brainalign.errors import BrainAlignError
from brainalign.headline import describe, pgd_key
from brainalign.io import read_json

SCHEMA_VERSION = 1
STUDY = "study.json"
def _curves(groups: dict[str, list[Run]], key: str, level: float) -> dict[str, Any]:
    """Mean accuracy and CI over seeds per strength, per condition, for one attack."""
    grid: set[float] = set()
    entry: dict[str, Any] = {}
    for group in groups.values():
        for run in group:
            curve = run.curve(key)
            if curve:
                grid |= set(curve[0])
                entry = entry or run.robustness[key]
    eps = sorted(grid)
    out = {"eps": eps, "family": entry.get("family"), "norm": entry.get("norm"), "attack": entry.get("attack"),
           "parameter": entry.get("parameter", "eps"), "conditions": {}}
    for name, group in groups.items():
        curves = [c for c in (r.curve(key) for r in group) if c]
        if not curves:
            continue
        cis = [mean_ci([c[1][c[0].index(e)] for c in curves if e in c[0]], level) for e in eps]
        out["conditions"][name] = {"mean": [c["mean"] for c in cis], "low": [c["low"] for c in cis],
                                   "high": [c["high"] for c in cis], "n": len(curves)}
    return out


def _robust_accuracy(run: Run, key: str, high: list[float]) -> float:
    curve = run.curve(key)
    if curve is None or not high:
        return float("nan")
    return nanmean([curve[1][curve[0].index(e)] for e in high if e in curve[0]])


def _high(runs: list[Run], key: str | None) -> list[float]:
    from brainalign.robustness.metrics import high_strengths

    if key is None:
        return []
    grid = sorted({e for r in runs if r.curve(key) for e in r.curve(key)[0]})
    return high_strengths(grid) if any(e > 0 for e in grid) else []


def _not_computed(reason: str, **extra) -> dict[str, Any]:
    return {"computed": False, "reason": reason, **extra}


def _safe(fn, *args, **kwargs) -> dict[str, Any]:
    try:
        out = fn(*args, **kwargs)
    except BrainAlignError as exc:
        return _not_computed(str(exc))
    out.setdefault("computed", True)
    return out


def _summary(experiment_dir: Path, base: str | None) -> dict[str, Any]:
    """summary.json's content (``brainalign.analysis.summary.summarize``), or why it could not be made."""
    try:
        return {"computed": True, **summarize(experiment_dir, baseline=base or "baseline")}
    except BrainAlignError as exc:
        return _not_computed(str(exc))


def _claims(summary: dict[str, Any], base: str | None) -> dict[str, Any]:
    """The claims table (``brainalign.claims``), from the same summary as summary.json."""
    if base is None:
        return _not_computed("no baseline condition: the claims compare gains over the baseline")
    if not summary["computed"]:
        return summary
    return {"computed": True, "rows": summary["claims"]}


def _findings(summary: dict[str, Any]) -> dict[str, Any]:
    """What the numbers say in words (``brainalign.analysis.summary.statements``): the report's first lines."""
    if not summary["computed"]:
        return summary
    return {"computed": True, "statements": list(summary.get("statements") or [])}


def simulated_recordings(diagnostics: list[dict[str, Any]], study: dict[str, Any]) -> list[dict[str, Any]]:
    """Each simulated recording behind a condition's targets or the study, with what it is in words: the
    loader's registered description and its docstring's first line (``brainalign.registry.NEURAL_LOADERS``,
    the one place that says what a simulation computes)."""
    from brainalign.errors import ConfigError
    from brainalign.registry import NEURAL_LOADERS

    used: dict[str, list[str]] = {}
    for d in diagnostics:
        if d["simulated"] and d.get("recording"):
            used.setdefault(str(d["recording"]), []).append(d["condition"])
    recording = (study.get("recording") or {}) if study.get("computed") else {}
    if recording.get("simulated") and recording.get("name"):
        used.setdefault(str(recording["name"]), []).append("the study")
    out = []
    for name, users in used.items():
        try:
            entry = NEURAL_LOADERS.entry(name)
        except ConfigError:
            out.append({"name": name, "used_by": users, "description": "", "summary": "not a registered loader"})
            continue
        doc = (getattr(entry.obj, "__doc__", None) or "").strip().split("\n")[0].rstrip(".")
        out.append({"name": name, "used_by": list(dict.fromkeys(users)), "description": entry.description,
                    "summary": doc})
    return out


def _study(experiment_dir: Path) -> dict[str, Any]:
    path = experiment_dir / STUDY
    if not path.exists():
        return _not_computed(f"no {STUDY}: run `brainalign study {experiment_dir} --recording NAME` first")
    try:
        study = read_json(path)
    except BrainAlignError as exc:
        return _not_computed(str(exc))
    study["computed"] = True
    return study


def collect_report(experiment_dir: str | Path, *, baseline: str | None = None, attack: str | None = None,
                   level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The content of report.json for an experiment folder (see the module docstring)."""
    experiment_dir = Path(experiment_dir)
    runs = load_runs(experiment_dir)
    groups = by_condition(runs)
    base = find_baseline(runs, baseline)
    summary = _summary(experiment_dir, base)
    study = _study(experiment_dir)
    if attack is None and study.get("computed"):
        attack = (study.get("settings") or {}).get("attack")
        attack = attack if attack in attack_keys(runs) else None
    key = headline_attack(runs, attack)
    high = _high(runs, key)
    base_runs = {r.seed: r for r in groups.get(base, [])} if base else {}

    checks = {str(r.path.relative_to(experiment_dir)): r.self_checks for r in runs}
    conditions = []
    for name, group in groups.items():
        run_checks = [(r, r.self_checks) for r in group]
        ran = [(r, c) for r, c in run_checks if c is not None]
        reasons = [f"seed {r.seed}: {reason}" for r, c in ran for reason in c.get("reasons", [])]
        gains = [run_gain(r, groups[base], key)["gain"] for r in group] if base and key else []
        status = seed_statuses(group, base_runs)
        accepted = [r for r, s in zip(group, status, strict=True) if not s["failed"]]
        means = condition_means(accepted, base_runs, level)
        conditions.append({
            "name": name, "role": role(group[0], base), "n_seeds": len(group), "seeds": [r.seed for r in group],
            "regularizers": group[0].regularizers, "defences": group[0].defences,
            "n_failed": len(group) - len(accepted),
            "failed_seeds": [{"seed": s["seed"], "reason": s["reason"]} for s in status if s["failed"]],
            "did_not_learn": [s["seed"] for s in status if s["did_not_learn"]],
            "seeds_in_means": [r.seed for r in accepted],
            "clean_accuracy": means["clean_accuracy"],
            "robust_accuracy": means["robust_accuracy"],
            "robust_accuracy_pgd": means["robust_accuracy_pgd"],
            "gain": means.get("gain", mean_ci([], level)),
            "gain_pgd": means.get("gain_pgd", mean_ci([], level)),
            "curve_robust_accuracy": mean_ci([_robust_accuracy(r, key, high) for r in group], level),
            "curve_gain": mean_ci(gains, level),
            "gradient_ratios": gradient_balance(group),
            "self_checks": "not computed" if not ran else ("unreliable" if reasons or
                                                            any(not c["reliable"] for _, c in ran) else "passed"),
            "n_checked": len(ran), "reasons": reasons, "simulated": any(r.simulated for r in group),
        })

    diagnostics = []
    for name, group in groups.items():
        for target in group[0].result.get("regularization_targets") or []:
            if isinstance(target, dict) and target:
                diagnostics.append({"condition": name, "regularizer": target.get("name"),
                                    "control": target.get("control", "none"),
                                    "simulated": bool(target.get("simulated")),
                                    "recording": target.get("recording"),
                                    "description": target.get("description", ""),
                                    "diagnostics": target.get("diagnostics")})

    simulated_conditions = [c["name"] for c in conditions if c["simulated"]]
    study_simulated = bool(study.get("computed") and (study.get("recording") or {}).get("simulated"))
    curves = {k: _curves(groups, k, level) for k in attack_keys(runs)}
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": experiment_dir.name,
        "package_version": __version__,
        "git_commits": sorted({str(r.result.get("git_commit")) for r in runs if r.result.get("git_commit")}),
        "n_runs": len(runs),
        "baseline": base,
        "simulated": {"any": bool(simulated_conditions or study_simulated), "conditions": simulated_conditions,
                      "study_recording": study_simulated},
        "headline": {**describe(str(runs[0].result.get("data", ""))), "pgd_attack": pgd_key(runs[0]), "level": level,
                     "robust_accuracy": "brainalign.headline: worst case per image over the headline attacks at "
                                        "the threat model's eps, mean over accepted seeds",
                     "curve_attack": key, "high_eps": high,
                     "curve_robust_accuracy": "accuracy averaged over the high-epsilon strengths of the curve "
                                              "attack (curves, paired tests and structure-specific gains)"},
        "conditions": conditions,
        "runs": [{"run": p, "reliable": None if c is None else bool(c.get("reliable")),
                  "reasons": [] if c is None else list(c.get("reasons", []))} for p, c in checks.items()],
        "self_checks": {"computed": any(c is not None for c in checks.values()),
                        "reason": "no run has self-check results in its result.json",
                        "runs_checked": sum(c is not None for c in checks.values()), "runs": len(checks)},
        "curves": curves,
        "paired_tests": _safe(paired_tests, runs, baseline=base, attacks=[key] if key else None, n_boot=n_boot,
                              level=level, seed=seed) if base and key else
        _not_computed("no baseline condition" if not base else "no attack results"),
        "structure_specific": _safe(structure_specific_gains, runs, attack=key, baseline=base, n_boot=n_boot,
                                    level=level, seed=seed) if key else _not_computed("no attack results"),
        "strong_attack": _safe(strong_attack_check, runs, baseline=base) if key else
        _not_computed("no attack results"),
        "target_diagnostics": diagnostics,
        "simulated_recordings": simulated_recordings(diagnostics, study),
        "claims": _claims(summary, base),
        "findings": _findings(summary),
        "study": study,
    }


def finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and bool(np.isfinite(x))
