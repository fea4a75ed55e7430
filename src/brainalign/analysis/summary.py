"""The summary of an experiment: per condition, clean and headline robust accuracy, gains, failed seeds.

``summarize(experiment_dir)`` reads only run folders (result.json, flags.safetensors) and returns the
content of summary.json; ``summary_table(summary)`` renders it as summary.md. The headline robust accuracy
is ``brainalign.headline``'s (one definition for every surface); PGD at the same eps stands beside it.

Failed seeds (one definition, used by the summary and the report): a seed whose clean accuracy is NaN or
below ``ACCEPT_RATIO`` (0.9) x its same-seed baseline's clean accuracy fails Attias et al.'s acceptance
rule. Condition means are taken over the accepted seeds; the failed ones are counted and named beside them,
and the means over every trained seed are kept in summary.json (``all_seeds``), so nothing is averaged in
silently. A run whose clean accuracy is not above chance (one-sided binomial test, p >= 0.01) is flagged
"did not learn".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from brainalign.analysis.comparisons import structure_specific_gains
from brainalign.analysis.runs import Run, by_condition, load_runs, role
from brainalign.analysis.stats import mean_ci
from brainalign.claims import claims_markdown, claims_table
from brainalign.errors import BrainAlignError
from brainalign.headline import HEADLINE_ATTACKS, describe, headline_accuracy, pgd_accuracy, pgd_key
from brainalign.io import read_json

ACCEPT_RATIO = 0.9  # Attias et al. 2024: clean accuracy >= 0.9 x the baseline's
# A headline check stored for an experiment's configs by an earlier run (``brainalign demo --check``), or its
# citation by a run that did not check (``brainalign.demo.cite_headline_check``).
STORED_CHECK = "headline_check.json"
CHANCE_ALPHA = 0.01  # "did not learn": clean accuracy not above chance at this level


def _num_classes(run: Run) -> int | None:
    if run.result.get("num_classes"):
        return int(run.result["num_classes"])
    from brainalign.registry import DATASETS

    try:
        return DATASETS.info(str(run.result.get("data"))).num_classes
    except Exception:  # a data set this installation does not know, or none named
        return None


def did_not_learn(run: Run) -> bool:
    """Whether the run's clean accuracy is not above chance (1 / classes) by a one-sided binomial test."""
    return not_above_chance(run.result.get("clean_accuracy"), run.result.get("n_test"), _num_classes(run))


def not_above_chance(clean: float | None, n: int | None, classes: int | None) -> bool:
    """Whether a clean accuracy on ``n`` test images is not above chance (1 / classes): one-sided binomial
    test at ``CHANCE_ALPHA``; NaN or missing counts as not above chance."""
    if clean is None or not math.isfinite(float(clean)):
        return True
    if not n or not classes:
        return False
    k = round(float(clean) * int(n))
    return bool(stats.binomtest(k, int(n), 1.0 / classes, alternative="greater").pvalue >= CHANCE_ALPHA)


def seed_status(run: Run, baseline: Run | None) -> dict[str, Any]:
    """{"seed", "failed", "reason", "did_not_learn"} of one run against its same-seed baseline run."""
    clean = run.result.get("clean_accuracy")
    clean = float("nan") if clean is None else float(clean)
    reason = None
    if not math.isfinite(clean):
        reason = "clean accuracy is NaN"
    elif baseline is not None and baseline is not run:
        base_clean = float(baseline.result.get("clean_accuracy", float("nan")))
        if math.isfinite(base_clean) and clean < ACCEPT_RATIO * base_clean:
            reason = f"clean {clean:.3f} < {ACCEPT_RATIO} x baseline {base_clean:.3f}"
    return {"seed": run.seed, "failed": reason is not None, "reason": reason, "did_not_learn": did_not_learn(run)}


def seed_statuses(group: list[Run], baselines: dict[int, Run]) -> list[dict[str, Any]]:
    """``seed_status`` of every run of a condition (``baselines``: the baseline's runs by seed)."""
    return [seed_status(r, baselines.get(r.seed)) for r in group]


def _none_to_nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def condition_means(group: list[Run], baselines: dict[int, Run], level: float = 0.95) -> dict[str, Any]:
    """Clean, headline and PGD accuracy and the paired gains over the same-seed baseline: mean and CI over
    the runs of ``group`` (the summary and the report pass a condition's accepted seeds)."""
    out = {
        "clean_accuracy": mean_ci([_none_to_nan(r.result.get("clean_accuracy")) for r in group], level),
        "robust_accuracy": mean_ci([_none_to_nan(headline_accuracy(r)) for r in group], level),
        "robust_accuracy_pgd": mean_ci([_none_to_nan(pgd_accuracy(r)) for r in group], level),
    }
    paired = [(r, baselines[r.seed]) for r in group if r.seed in baselines and baselines[r.seed] is not r]
    if paired:
        out["gain"] = mean_ci([_none_to_nan(headline_accuracy(r)) - _none_to_nan(headline_accuracy(b))
                               for r, b in paired], level)
        out["gain_pgd"] = mean_ci([_none_to_nan(pgd_accuracy(r)) - _none_to_nan(pgd_accuracy(b))
                                   for r, b in paired], level)
    return out


def gradient_balance(group: list[Run]) -> list[dict[str, Any]]:
    """Per regularizer term of a condition: the median over seeds of each run's gradient-ratio statistics
    (``result.json``'s ``gradient_ratios``, see ``brainalign.gradient_ratios``) and the seeds it dominated."""
    terms: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for run in group:
        for key, rec in (run.result.get("gradient_ratios") or {}).items():
            terms.setdefault(key, []).append((run.seed, rec))
    out = []
    for key, recs in terms.items():
        row = {"term": key, "name": recs[0][1].get("name"), "n_seeds": len(recs)}
        for stat in ("median", "median_first_quarter", "max"):
            row[stat] = float(np.median([r[stat] for _, r in recs]))
        row["dominated_in_seeds"] = [seed for seed, r in recs if r.get("dominates")]
        out.append(row)
    return out


def headline_checks(group: list[Run]) -> dict[str, Any] | None:
    """The rest of full AutoAttack (APGD-T on every target, FAB-T, Square) on images that survived the headline
    (``robustness.headline_check``), summed over the condition's runs; None when no run stored the check.
    Checks stored before APGD-T joined them count toward ``broken_by_apgd_t_all`` as not run (``n_runs_apgd_t``)."""
    checks = [r.result["headline_check"] for r in group
              if (r.result.get("headline_check") or {}).get("computed")]
    if not checks:
        return None
    with_apgd = [c for c in checks if "broken_by_apgd_t_all" in c]
    return {"n_runs": len(checks), "n_checked": sum(c["n_checked"] for c in checks),
            "n_runs_apgd_t": len(with_apgd),
            "broken_by_apgd_t_all": sum(c["broken_by_apgd_t_all"] for c in with_apgd),
            "broken_by_fab_t": sum(c["broken_by_fab_t"] for c in checks),
            "broken_by_square": sum(c["broken_by_square"] for c in checks),
            "broken_by_either": sum(c["broken_by_either"] for c in checks)}


def _check_source(conditions: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Where the summary's headline checks come from: these runs, a stored check (how it was made, and for
    which conditions it does not speak: configs changed since, or never checked), or nowhere."""
    checked = {n: c["headline_check"] for n, c in conditions.items() if c["headline_check"]}
    live = sorted(n for n, c in checked.items() if not c.get("stored"))
    out: dict[str, Any] = {"these_runs": live, "stored": sorted(n for n, c in checked.items() if c.get("stored"))}
    if stored.get("cited_from"):
        out["file"] = {"path": stored["cited_from"], "found": stored.get("found", True),
                       **{k: stored.get(k) for k in ("command", "git_commit", "created", "seeds", "sample")}}
        out.update({key: [n for n in stored.get(key, []) if n not in live] for key in ("stale", "missing")})
    return out


def _stored_note(source: dict[str, Any]) -> str:
    """How a summary cites a stored check: the command, commit and date that made it."""
    if not source.get("stored"):
        return ""
    file = source.get("file") or {}
    commit = str(file.get("git_commit") or "unknown commit")[:7]
    seeds = ", ".join(map(str, file.get("seeds") or []))
    note = f"stored: `{file.get('command')}` at {commit} on {file.get('created')}, seed {seeds} of the same configs"
    if source.get("these_runs"):
        note += f"; {', '.join(source['these_runs'])} checked in these runs"
    return f" ({note})"


def _rest(check: dict[str, Any]) -> str:
    """The attacks a stored headline check ran beyond the headline."""
    return "APGD-T on every target, FAB-T and Square" if check.get("n_runs_apgd_t") else "FAB-T and Square"


def _excludes_zero(ci: dict[str, float] | None) -> str | None:
    """"above" / "below" when the CI lies above / below 0; None when it holds 0 or is not finite."""
    if not ci or not all(math.isfinite(ci.get(k, float("nan"))) for k in ("low", "high")):
        return None
    return "above" if ci["low"] > 0 else "below" if ci["high"] < 0 else None


def statements(summary: dict[str, Any]) -> list[str]:
    """What the numbers say, in words: gains over the baseline and beyond the matched controls, failures."""
    out = []
    checks = [c["headline_check"] for c in summary["conditions"].values() if c.get("headline_check")]
    source = summary.get("headline_check_source") or {}
    if checks:
        total = {k: sum(c[k] for c in checks) for k in ("n_runs", "n_checked", "broken_by_either")}
        ran = {"n_runs_apgd_t": sum(c.get("n_runs_apgd_t", 0) for c in checks)}  # any check with APGD-T: named
        out.append(f"Headline check{_stored_note(source)}: {_rest(ran)} broke {total['broken_by_either']} of "
                   f"{total['n_checked']} sampled images that survived the headline attacks, over {total['n_runs']} "
                   f"run(s) in {len(checks)} condition(s)" + (" (named below)." if total["broken_by_either"] else "."))
    file = source.get("file") or {}
    if file and not file["found"]:
        out.append(f"Headline check: none stored ({file['path']} not found); `brainalign demo --check` runs it.")
    for key, why in (("stale", "their configs changed since it was stored"), ("missing", "it never checked them")):
        if file.get("found") and source.get(key):
            out.append(f"Headline check: the stored check does not speak for {', '.join(source[key])} ({why}); "
                       f"`brainalign demo --check` reruns it.")
    for name, c in summary["conditions"].items():
        if c["n_failed"]:
            out.append(f"{name}: {c['n_failed']} of {c['n_seeds']} seeds failed (seeds "
                       f"{', '.join(str(f['seed']) for f in c['failed_seeds'])}); its means are over the other "
                       f"{c['n_seeds'] - c['n_failed']}.")
        if c.get("did_not_learn"):
            out.append(f"{name}: seeds {', '.join(map(str, c['did_not_learn']))} did not learn (clean accuracy "
                       f"not above chance).")
        check = c.get("headline_check")
        if check and check["broken_by_either"]:
            out.append(f"{name}: {_rest(check)} broke {check['broken_by_either']} of {check['n_checked']} sampled "
                       f"images that survived the headline attacks ({check['n_runs']} run(s)"
                       f"{', stored' if check.get('stored') else ''}): the headline "
                       f"overstates its robustness by about that fraction of survivors.")
        for g in c.get("gradient_ratios", []):
            if g["dominated_in_seeds"]:
                out.append(f"{name}: the {g['name']} term's gradient outweighs cross-entropy's for most of training "
                           f"(median ratio {g['median']:.2f}; seeds {', '.join(map(str, g['dominated_in_seeds']))}).")
            elif g["median"] < 0.1:
                out.append(f"{name}: the {g['name']} term's gradient is a small fraction of cross-entropy's "
                           f"(median ratio {g['median']:.2f}); it may barely act.")
        if c["role"] in ("regularizer", "control", "defence", "other") and "gain" in c:
            if c["gain"].get("n", 0) == 0:
                out.append(f"{name}: gain under the headline attack not computed (the headline attack was not run "
                           f"on its seeds and the same-seed baseline's).")
                continue
            side = _excludes_zero(c["gain"])
            word = {"above": "a robustness gain over the baseline (95% CI above 0)",
                    "below": "a robustness loss against the baseline (95% CI below 0)",
                    None: "no clear robustness gain over the baseline (95% CI holds 0)"}[side]
            out.append(f"{name}: {word} under the headline attack.")
    for row in (summary.get("structure_specific_gains") or {}).get("rows", []):
        verdict = row.get("verdict", "")
        if verdict == "structure-specific gain":
            out.append(f"{row['treatment']} gains more than its control {row['control']} (both CIs above 0).")
        elif verdict == "control better":
            out.append(f"{row['treatment']} gains less than its control {row['control']}.")
        else:
            out.append(f"{row['treatment']} gains nothing beyond its control {row['control']} ({verdict}).")
    return out


def summarize(experiment_dir: str | Path, baseline: str = "baseline") -> dict[str, Any]:
    """Per condition: mean and 95% CI over accepted seeds of clean accuracy, the headline robust accuracy
    and PGD's at the same eps, the paired gain over the same-seed baseline under both, failed seeds and
    seeds that did not learn; the baseline's final training loss; structure-specific gains (regularizer
    minus matched control, CIs over images and seeds); and statements in words.

    A headline check stored for these configs by an earlier run (``STORED_CHECK`` in the experiment folder, as
    ``brainalign.demo.cite_headline_check`` writes it) stands in for conditions whose runs did not check; a
    condition's own runs' check wins over it. ``headline_check_source`` says where each check comes from."""
    experiment_dir = Path(experiment_dir)
    runs = load_runs(experiment_dir)
    groups = by_condition(runs)
    base = {r.seed: r for r in groups.get(baseline, [])}
    data = str(runs[0].result.get("data", ""))
    conditions = {}
    for name, group in groups.items():
        status = seed_statuses(group, base)
        accepted = [r for r, s in zip(group, status, strict=True) if not s["failed"]]
        entry = {
            "role": role(group[0], baseline),
            "n_seeds": len(group),
            "seeds": sorted(r.seed for r in group),
            "n_failed": sum(s["failed"] for s in status),
            "failed_seeds": [{"seed": s["seed"], "reason": s["reason"]} for s in status if s["failed"]],
            "did_not_learn": [s["seed"] for s in status if s["did_not_learn"]],
            "seeds_in_means": sorted(r.seed for r in accepted),
            **condition_means(accepted, base),
            "all_seeds": condition_means(group, base),
            "reliable": all(r.result.get("reliable", True) for r in group),
            "selfchecked_seeds": sorted(r.seed for r in group if r.self_checks is not None),
            "unreliable_reasons": sorted({reason for r in group if r.result.get("reliable") is False
                                          for reason in (r.self_checks or {}).get("reasons", [])}),
            "simulated_data": any(r.simulated for r in group),
            "gradient_ratios": gradient_balance(group),
            "headline_check": headline_checks(group),
        }
        if name == baseline:
            losses = [r.result.get("final_train_loss") for r in group]
            entry["final_train_loss"] = mean_ci([_none_to_nan(x) for x in losses])
        if "gain" in entry:
            g_pgd, g_strong = entry["gain_pgd"]["mean"], entry["gain"]["mean"]
            # A PGD gain that mostly disappears under the headline attack points at gradient masking.
            entry["gain_shrinks_under_strong_attack"] = bool(g_pgd > 0 and g_strong < 0.5 * g_pgd)
        conditions[name] = entry
    try:
        # The headline attack's key (the combined APGD-CE + APGD-T, or APGD-T where the two ran apart).
        key = next(k for name in ("apgd_ce_t_linf", "apgd_t_linf") for k, v in runs[0].robustness.items()
                   if v.get("attack") == name)
        structure = structure_specific_gains(runs, attack=key, baseline=baseline if base else None)
    except (BrainAlignError, StopIteration) as exc:
        structure = {"computed": False, "reason": str(exc) or "no headline (APGD) results"}
    pgd = pgd_key(runs[0])
    steps_run = sorted({int((v.get("params") or {}).get("steps", 0) or 0) for r in runs
                        for v in r.robustness.values() if v.get("attack") in HEADLINE_ATTACKS})
    stored = read_json(experiment_dir / STORED_CHECK) if (experiment_dir / STORED_CHECK).exists() else {}
    for name, entry in conditions.items():
        if entry["headline_check"] is None and name in stored.get("conditions", {}):
            entry["headline_check"] = {**stored["conditions"][name], "stored": True}
    summary = {
        "experiment": experiment_dir.name,
        "headline": {**describe(data), "pgd_attack": pgd, "steps_run": steps_run},
        "failed_seed_rule": f"clean accuracy NaN or < {ACCEPT_RATIO} x the same-seed baseline's (Attias et al. "
                            f"2024); means over accepted seeds, failed seeds listed; 'all_seeds' keeps every seed",
        "conditions": conditions,
        "structure_specific_gains": structure,
        "headline_check_source": _check_source(conditions, stored),
    }
    summary["statements"] = statements(summary)
    summary["claims"] = claims_table(runs, summary, baseline)
    return summary


def _fmt(ci: dict[str, float]) -> str:
    if not math.isfinite(ci["mean"]):
        return "n/a"
    if ci["n"] < 2:
        return f"{ci['mean']:.3f}"
    return f"{ci['mean']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def summary_table(summary: dict[str, Any]) -> str:
    """The summary in Markdown (printed by the CLI and written as summary.md)."""
    h = summary["headline"]
    simulated = [n for n, c in summary["conditions"].items() if c["simulated_data"]]
    base = summary["conditions"].get("baseline", {})
    loss = base.get("final_train_loss")
    lines = [
        f"# brainalign summary: {summary['experiment']}",
        "",
        (f"> **SIMULATED brain data** in: {', '.join(simulated)}. No real neural recording was used."
         if simulated else "> No neural data were used."),
        "",
        f"Headline robust accuracy: {h['attack']}, {h['norm']} eps {h['eps']:g} ({h['eps_units']}; {h['eps_source']}); "
        f"PGD ({h['pgd_attack'] or 'not run'}) at the same eps beside it. Gains are over the same-seed baseline. "
        f"Mean [95% CI] over accepted seeds; failed seeds ({summary['failed_seed_rule']}) are named, not averaged in.",
    ]
    if h.get("steps_run") and h["steps_run"] != [h["steps"]]:
        lines += ["", f"> These runs ran the headline attacks with {', '.join(map(str, h['steps_run']))} steps, "
                  f"not the headline's {h['steps']}: a cheaper (weaker or equal) version of it."]
    partly = {name: c["selfchecked_seeds"] for name, c in summary["conditions"].items()
              if len(c.get("selfchecked_seeds", c["seeds"])) < c["n_seeds"]}
    if partly:
        seeds = {", ".join(map(str, v)) or "none" for v in partly.values()}
        everywhere = len(seeds) == 1 and len(partly) == len(summary["conditions"])
        which = (f"seed {seeds.pop()} of every condition" if everywhere else
                 "; ".join(f"{n}: seed {', '.join(map(str, v)) or 'none'}" for n, v in partly.items()))
        lines += ["", f"> Self-checks ran on {which} (`selfchecked_seeds`); UNRELIABLE speaks for the checked "
                      f"seeds."]
    if loss:
        lines += ["", f"Baseline final training loss: {_fmt(loss)}."]
    lines += [
        "",
        "| condition | seeds | failed | clean | robust (headline) | robust (PGD) | gain (headline) | gain (PGD) "
        "| flags |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in summary["conditions"].items():
        flags = []
        if not c["reliable"]:
            flags.append("UNRELIABLE")
        if c.get("gain_shrinks_under_strong_attack"):
            flags.append("gain shrinks > half under the headline attack")
        if c["did_not_learn"]:
            flags.append(f"did not learn: seeds {', '.join(map(str, c['did_not_learn']))}")
        failed = ", ".join(f"seed {f['seed']}" for f in c["failed_seeds"]) or "-"
        gain = _fmt(c["gain"]) if "gain" in c else "-"
        gain_pgd = _fmt(c["gain_pgd"]) if "gain_pgd" in c else "-"
        lines.append(f"| {name} | {c['n_seeds']} | {c['n_failed']}: {failed} | {_fmt(c['clean_accuracy'])} | "
                     f"{_fmt(c['robust_accuracy'])} | {_fmt(c['robust_accuracy_pgd'])} | {gain} | {gain_pgd} | "
                     f"{'; '.join(flags)} |")
    structure = summary["structure_specific_gains"]
    if structure.get("rows"):
        eps = sorted({e for row in structure["rows"] for e in row.get("eps") or []})
        lines += ["", f"Structure-specific gain (regularizer minus control, under the headline attack at eps "
                  f"{', '.join(f'{e:g}' for e in eps)}; 95% CI over test images / over seeds):", "",
                  "| regularizer | control | difference | CI images | CI seeds | verdict |",
                  "|---|---|---|---|---|---|"]
        for row in structure["rows"]:
            if "diff" not in row:
                continue
            img, seeds = row["images"], row["over_seeds"]
            lines.append(f"| {row['treatment']} | {row['control']} | {row['diff']:+.3f} | "
                         f"[{img['low']:+.3f}, {img['high']:+.3f}] | [{seeds['low']:+.3f}, {seeds['high']:+.3f}] | "
                         f"{row['verdict']} |")
    ratios = [(n, g) for n, c in summary["conditions"].items() for g in c.get("gradient_ratios", [])]
    if ratios:
        lines += ["", "Gradient ratios (norm of the weighted term's gradient / cross-entropy's at the model's "
                  "parameters; median over seeds):", "",
                  "| condition | term | median | median, first quarter | max | dominated (ratio > 1 most epochs) |",
                  "|---|---|---|---|---|---|"]
        for n, g in ratios:
            dom = ", ".join(f"seed {s}" for s in g["dominated_in_seeds"]) or "-"
            lines.append(f"| {n} | {g['name']} | {g['median']:.3f} | {g['median_first_quarter']:.3f} | "
                         f"{g['max']:.3f} | {dom} |")
    if summary.get("statements"):
        lines += ["", "In words:", ""] + [f"- {s}" for s in summary["statements"]]
    if summary.get("claims"):
        lines += ["", "## The seed papers' claims beside these runs", "",
                  "Verdict from the 95% CIs of the headline gain (and of the structure-specific gain where the "
                  "claim is about the brain's structure); see docs/claims.md.", ""] + claims_markdown(summary["claims"])
    return "\n".join(lines) + "\n"
