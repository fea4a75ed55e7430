"""Comparisons between conditions of an experiment, read from run folders only.

- ``run_gain``: a run's robustness gain over the baseline, averaged over the high-epsilon range (Guo et al.
  2024): against the baseline run of the same seed when there is one, else against the mean baseline curve.
- ``paired_tests``: every condition against the baseline at each high strength, on the same test images:
  McNemar (exact and mid-p, discordant pairs pooled over seeds), paired-bootstrap interval of the accuracy
  difference over test images, interval over seeds, Cohen's h; p-values corrected over the whole table
  (Holm by default, Benjamini-Hochberg on request).
- ``structure_specific_gains``: a data-driven regularizer minus its matched controls (neural target minus
  decorrelation, neural minus pixel_continuous, any minus its shuffled/random-target version): what the
  *structure* of the target adds beyond a generic similarity penalty.
- ``strong_attack_check``: flags a gain that shrinks by more than half from PGD to a stronger attack
  (AutoAttack / APGD), the usual sign of gradient masking rather than robustness.

Pairing: runs of two conditions are paired by seed where both have it; otherwise (e.g. one baseline seed)
each run is paired with the other condition's lowest-seed run, which still pairs the *examples* (every
run attacks the same test images) but not the initialisation; the output says which.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brainalign.analysis.runs import (
    PGD_ATTACKS,
    Run,
    by_condition,
    find_baseline,
    headline_attack,
    load_runs,
    role,
)
from brainalign.analysis.stats import (
    adjust_pvalues,
    cohens_h,
    high_eps_gain,
    mean_ci,
    nanmean,
    paired_bootstrap,
    pooled_mcnemar,
)
from brainalign.errors import ConfigError, DataError

_NAN = float("nan")
STRONG_ATTACKS = ("autoattack", "apgd")


def baseline_curve(baselines: Sequence[Run], key: str, seed: int | None = None) -> tuple[list[float], list[float], str]:
    """The baseline's (eps, accuracy) for ``key``: the same seed's run if there is one, else the mean over
    baseline runs at the strengths they all share. The third item says which."""
    curves = [(b, b.curve(key)) for b in baselines]
    curves = [(b, c) for b, c in curves if c is not None]
    if not curves:
        return [], [], "no baseline run attacked with this attack"
    same = [c for b, c in curves if seed is not None and b.seed == seed]
    if same:
        return same[0][0], same[0][1], f"seed {seed}"
    shared = sorted(set.intersection(*(set(c[0]) for _, c in curves)))
    means = [float(np.mean([c[1][c[0].index(e)] for _, c in curves])) for e in shared]
    return shared, means, f"mean of {len(curves)} baseline runs"


def run_gain(run: Run, baselines: Sequence[Run], key: str) -> dict[str, Any]:
    """Gain of ``run`` over the baseline under attack ``key``, averaged over the high-epsilon range."""
    curve = run.curve(key)
    if curve is None:
        return {"gain": _NAN, "eps": [], "baseline": "run not attacked with this attack"}
    base_eps, base_acc, which = baseline_curve(baselines, key, run.seed)
    if not base_eps:
        return {"gain": _NAN, "eps": [], "baseline": which}
    return {**high_eps_gain(curve[0], curve[1], base_eps, base_acc), "baseline": which}


def _pair_runs(treat: Sequence[Run], control: Sequence[Run]) -> tuple[list[tuple[Run, Run]], str]:
    by_seed = {c.seed: c for c in control}
    if all(t.seed in by_seed for t in treat):
        return [(t, by_seed[t.seed]) for t in treat], "seed"
    first = min(control, key=lambda c: c.seed)
    return [(t, by_seed.get(t.seed, first)) for t in treat], "example only (seeds not all matched)"


def _scores(run: Run, key: str, eps: Sequence[float]) -> np.ndarray | None:
    """(n,) per-example share of the strengths ``eps`` at which the example is still classified correctly."""
    flags = [run.outcomes(key, e) for e in eps]
    if any(f is None for f in flags):
        return None
    return np.mean(np.stack(flags).astype(float), axis=0)


def _curve_mean(run: Run, key: str, eps: Sequence[float]) -> float:
    curve = run.curve(key)
    if curve is None or any(e not in curve[0] for e in eps):
        return _NAN
    return float(np.mean([curve[1][curve[0].index(e)] for e in eps]))


def paired_difference(treat: Sequence[Run], control: Sequence[Run], key: str, eps: Sequence[float], *,
                      n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Accuracy of ``treat`` minus ``control`` under ``key``, averaged over the strengths ``eps``.

    With per-example flags: the difference with a paired-bootstrap interval over test images (seeds kept,
    images resampled jointly) and a Student-t interval over seed pairs; for a single strength also the
    McNemar test (discordant pairs pooled over seed pairs) and Cohen's h. Without flags: the difference of
    accuracies and the interval over seeds only.
    """
    pairs, paired_by = _pair_runs(treat, control)
    eps = [float(e) for e in eps]
    out: dict[str, Any] = {"attack": key, "eps": eps, "paired_by": paired_by,
                           "seeds": [[t.seed, c.seed] for t, c in pairs]}
    scores = [(_scores(t, key, eps), _scores(c, key, eps)) for t, c in pairs]
    if all(a is not None and b is not None for a, b in scores) and scores:
        sizes = {a.size for pair in scores for a in pair}
        if len(sizes) != 1:
            raise DataError(f"{key}: runs were attacked on different numbers of test images ({sorted(sizes)}); "
                            f"paired comparisons need the same images (evaluate with the same n_examples)")
        t_scores = np.stack([a for a, _ in scores])  # (k, n)
        c_scores = np.stack([b for _, b in scores])
        boot = paired_bootstrap(c_scores, t_scores, n_boot=n_boot, level=level, seed=seed)
        per_seed = (t_scores - c_scores).mean(1)
        out.update(accuracy=float(t_scores.mean()), control_accuracy=float(c_scores.mean()), diff=boot["diff"],
                   images={"low": boot["low"], "high": boot["high"], "p_boot": boot["p_boot"]},
                   n_examples=int(t_scores.shape[1]))
    else:
        per_seed = np.array([_curve_mean(t, key, eps) - _curve_mean(c, key, eps) for t, c in pairs])
        acc_t = float(np.mean([_curve_mean(t, key, eps) for t, _ in pairs]))
        acc_c = float(np.mean([_curve_mean(c, key, eps) for _, c in pairs]))
        out.update(accuracy=acc_t, control_accuracy=acc_c, diff=float(nanmean(per_seed)),
                   images={"low": _NAN, "high": _NAN, "p_boot": _NAN, "note": "no per-example flags"},
                   n_examples=None)
    ci = mean_ci(per_seed.tolist(), level)
    out["over_seeds"] = {"low": ci["low"], "high": ci["high"], "n": ci["n"]}
    if len(eps) == 1 and out["n_examples"] is not None:
        tests = pooled_mcnemar([(c.outcomes(key, eps[0]), t.outcomes(key, eps[0])) for t, c in pairs])
        out["mcnemar"] = tests
        out["cohens_h"] = cohens_h(out["accuracy"], out["control_accuracy"])
    return out


def _shared_high_eps(runs: Iterable[Run], key: str) -> list[float]:
    grids = [set(c[0]) for c in (r.curve(key) for r in runs) if c is not None]
    if not grids:
        return []
    from brainalign.robustness.metrics import high_strengths

    shared = sorted(set.intersection(*grids))
    return high_strengths(shared) if any(e > 0 for e in shared) else []


def paired_tests(source: str | Path | Iterable[Run], *, baseline: str | None = None,
                 attacks: Sequence[str] | None = None, correction: str = "holm", test: str = "p_exact",
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Each condition against the baseline at every high strength of each attack, on the same test images.

    Args:
        source: an experiment folder or a list of runs.
        baseline: the baseline condition (default: see ``find_baseline``).
        attacks: attack keys to test (default: the headline attack only, to keep the family small).
        correction: "holm" (family-wise error, default), "bh" (false discovery rate) or "none"; applied
            over every row of the table.
        test: the p-value that is corrected: "p_exact" or "p_midp" (McNemar).
    Returns:
        {"baseline", "correction", "test", "family_size", "rows": [...]}, one row per condition x attack x
        strength with the fields of ``paired_difference`` plus ``condition``, ``role`` and ``p_adjusted``.
    """
    if test not in ("p_exact", "p_midp"):
        raise ConfigError(f"test must be 'p_exact' or 'p_midp', got {test!r}")
    runs = load_runs(source)
    base = find_baseline(runs, baseline)
    if base is None:
        raise DataError("no baseline condition: name one (baseline=...) or train a condition named 'baseline'")
    groups = by_condition(runs)
    keys = list(attacks) if attacks else [k for k in [headline_attack(runs)] if k]
    rows = []
    for name, group in groups.items():
        if name == base:
            continue
        for key in keys:
            for e in _shared_high_eps(group + groups[base], key):
                row = paired_difference(group, groups[base], key, [e], n_boot=n_boot, level=level, seed=seed)
                rows.append({"condition": name, "role": role(group[0], base), **row})
    pvals = [r.get("mcnemar", {}).get(test, _NAN) for r in rows]
    adjusted = adjust_pvalues(pvals, correction) if rows else []
    for row, p in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = float(p)
    return {"baseline": base, "correction": correction, "test": test,
            "family_size": int(np.isfinite(np.asarray(pvals, dtype=float)).sum()) if rows else 0, "rows": rows}


def _reg_names(run: Run) -> list[str]:
    return sorted(str(r.get("name")) for r in run.regularizers)


def _target_kind(name: str) -> str:
    from brainalign.registry import REGULARIZERS

    try:
        return str(REGULARIZERS.info(name).target)
    except Exception:  # unknown to this installation
        return "unknown"


def matched_controls(runs: Iterable[Run]) -> list[tuple[str, str, str]]:
    """(treatment, control, kind) condition pairs found from the regularizers in result.json.

    kind "shuffled"/"random": the same regularizers with shuffled/random targets (any data-driven
    regularizer); "decorrelation"/"pixel_continuous": a regularizer with a neural (recording) target
    against a condition whose only regularizer is that control.
    """
    groups = by_condition(runs)
    pairs = []
    for t_name, t_runs in groups.items():
        t = t_runs[0]
        if role(t, None) != "regularizer":
            continue
        names = _reg_names(t)
        neural = any(_target_kind(n) == "recording" for n in names)
        for c_name, c_runs in groups.items():
            c = c_runs[0]
            controls = {str(r.get("control", "none")) for r in c.regularizers}
            if _reg_names(c) == names and controls & {"shuffled", "random"}:
                pairs.append((t_name, c_name, sorted(controls - {"none"})[0]))
            elif neural and _reg_names(c) in (["decorrelation"], ["pixel_continuous"]):
                pairs.append((t_name, c_name, _reg_names(c)[0]))
    return pairs


def _verdict(diff: dict[str, Any]) -> str:
    lows = [diff["images"]["low"], diff["over_seeds"]["low"]]
    highs = [diff["images"]["high"], diff["over_seeds"]["high"]]
    finite = [(lo, hi) for lo, hi in zip(lows, highs, strict=True) if np.isfinite(lo) and np.isfinite(hi)]
    if not finite:
        return "not enough data for an interval"
    if all(lo > 0 for lo, _ in finite):
        return "structure-specific gain"
    if all(hi < 0 for _, hi in finite):
        return "control better"
    return "no clear difference"


def structure_specific_gains(source: str | Path | Iterable[Run],
                             pairs: Sequence[tuple[str, str] | tuple[str, str, str]] | None = None, *,
                             attack: str | None = None, baseline: str | None = None, n_boot: int = 1000,
                             level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Robust accuracy of a data-driven regularizer minus its matched controls, over the high-eps range.

    The difference of gains over the baseline equals the difference of robust accuracies (the baseline
    cancels), so each row is the paired difference treatment - control of per-image accuracy averaged
    over the high-epsilon strengths, with intervals over test images (paired bootstrap) and over seeds.
    A difference whose intervals both exclude 0 is reported as a structure-specific gain.

    Args:
        source: an experiment folder or a list of runs.
        pairs: (treatment, control[, kind]) condition names; default ``matched_controls``.
        attack: attack key (default: the headline attack).
        baseline: baseline condition, for the gains shown beside the difference (optional).
    """
    runs = load_runs(source)
    groups = by_condition(runs)
    key = headline_attack(runs, attack)
    if key is None:
        raise DataError("no run has robustness results; evaluate the runs first (brainalign evaluate)")
    chosen = [tuple(p) if len(p) == 3 else (p[0], p[1], "given") for p in (pairs or matched_controls(runs))]
    base = find_baseline(runs, baseline)
    rows = []
    for t_name, c_name, kind in chosen:
        for name in (t_name, c_name):
            if name not in groups:
                raise DataError(f"condition {name!r} has no finished runs; conditions: {', '.join(groups)}")
        eps = _shared_high_eps(groups[t_name] + groups[c_name], key)
        if not eps:
            rows.append({"treatment": t_name, "control": c_name, "kind": kind, "attack": key,
                         "verdict": "not computed: no shared strengths"})
            continue
        diff = paired_difference(groups[t_name], groups[c_name], key, eps, n_boot=n_boot, level=level, seed=seed)
        row = {"treatment": t_name, "control": c_name, "kind": kind, **diff, "verdict": _verdict(diff)}
        if base is not None:
            for side, name in (("treatment_gain", t_name), ("control_gain", c_name)):
                row[side] = mean_ci([run_gain(r, groups[base], key)["gain"] for r in groups[name]], level)
        rows.append(row)
    return {"attack": key, "baseline": base, "rows": rows}


def _strong_key(runs: Sequence[Run], pgd_key: str) -> str | None:
    entries = {k: v for r in runs for k, v in r.robustness.items()}
    norm = entries.get(pgd_key, {}).get("norm")
    for k, v in entries.items():
        name = str(v.get("attack", k.split("[")[0]))
        if name.startswith(STRONG_ATTACKS) and (norm is None or v.get("norm") == norm):
            return k
    return None


def strong_attack_check(source: str | Path | Iterable[Run], pgd_key: str | None = None,
                        strong_key: str | None = None, *, baseline: str | None = None) -> dict[str, Any]:
    """Flag conditions whose gain under PGD shrinks by more than half under a stronger attack.

    gain_A = mean over seeds of the high-epsilon gain over the baseline under attack A. A condition is
    flagged when gain_PGD > 0 and gain_strong < gain_PGD / 2: most of what PGD credited it with is gone
    under AutoAttack / APGD, which points at gradient masking rather than robustness.

    Args:
        pgd_key: default the headline attack; strong_key: default the first AutoAttack/APGD key of the
            same norm. When no strong attack was run the result says so ("computed": False).
    """
    runs = load_runs(source)
    pgd_key = headline_attack(runs, pgd_key, preferred=PGD_ATTACKS)
    strong_key = strong_key or (_strong_key(runs, pgd_key) if pgd_key else None)
    base = find_baseline(runs, baseline)
    if pgd_key is None or strong_key is None or base is None:
        missing = ("no attack results" if pgd_key is None else "no AutoAttack/APGD results" if strong_key is None
                   else "no baseline condition")
        return {"computed": False, "reason": missing, "pgd": pgd_key, "strong": strong_key, "rows": []}
    groups = by_condition(runs)
    rows = []
    for name, group in groups.items():
        if name == base:
            continue
        g_pgd = float(nanmean([run_gain(r, groups[base], pgd_key)["gain"] for r in group]))
        g_strong = float(nanmean([run_gain(r, groups[base], strong_key)["gain"] for r in group]))
        flag = bool(g_pgd > 0 and np.isfinite(g_strong) and g_strong < 0.5 * g_pgd)
        rows.append({"condition": name, "role": role(group[0], base), "gain_pgd": g_pgd, "gain_strong": g_strong,
                     "retained": g_strong / g_pgd if g_pgd > 0 else _NAN, "flag": flag})
    return {"computed": True, "pgd": pgd_key, "strong": strong_key, "baseline": base, "rows": rows}
