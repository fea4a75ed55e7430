"""Render a collected report as one self-contained HTML page (figures as base64 PNG) and as Markdown.

The page comes from Jinja2 templates shipped in ``brainalign/templates/`` (``report.html.j2``, with
its tables and figures from ``macros.html.j2``), autoescaped; the tables' rows are built here once and
shared with the Markdown. It opens with the findings in words (``brainalign.analysis.summary.statements``)
and shows each condition's colour (the one its curves use, ``plots.styles``) beside its name.

The HTML carries a small inline script that records, once the page has loaded, whether every figure
decoded (``<body data-images-ok="true">``, ``data-images-broken``) and any script error
(``data-errors``); a browser test reads these attributes from the rendered DOM.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from brainalign.reports import plots

CHECK_SCRIPT = """
(function () {
  var errors = [];
  function record() { document.documentElement.setAttribute('data-errors', JSON.stringify(errors)); }
  window.addEventListener('error', function (e) { errors.push(String(e.message || e.type)); record(); }, true);
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(document.images);
    var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                     .map(function (i) { return i.alt; });
    var b = document.body;
    b.setAttribute('data-images', String(imgs.length));
    b.setAttribute('data-images-broken', JSON.stringify(broken));
    b.setAttribute('data-images-ok', broken.length === 0 ? 'true' : 'false');
    b.setAttribute('data-errors', JSON.stringify(errors));
    if (broken.length) {
      var w = document.getElementById('render-warning');
      w.textContent = broken.length + ' figure(s) did not render: ' + broken.join(', ');
      w.hidden = false;
    }
  });
})();
"""

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.banner { background: #fff3cd; border: 2px solid #e0a800; padding: 0.8em 1em; border-radius: 6px; font-weight: 600; }
.warning { background: #f8d7da; border: 1px solid #d9534f; padding: 0.6em 1em; border-radius: 6px; }
.badge { display: inline-block; padding: 0.05em 0.5em; border-radius: 0.8em; font-size: 0.8em; font-weight: 600; }
.badge.unreliable { background: #d9534f; color: white; } .badge.passed { background: #5cb85c; color: white; }
.badge.notcomputed, .not-computed { color: #777; font-style: italic; }
.badge.role-defence { background: #fde2e2; color: #a00; } .badge.role-baseline { background: #eee; }
.badge.role-control { background: #e8e8e8; color: #555; } .badge.role-regularizer { background: #dbeafe; }
.badge.role-other { background: #f5ebe0; }
tr.defence td { background: #fff5f5; } figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px; margin-right: 0.4em;
          vertical-align: -0.1em; border: 1px solid #0003; }
ul.findings li { margin: 0.2em 0; }
"""


# ---- formatting --------------------------------------------------------------------------------------

def _ok(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def num(x, digits: int = 3, signed: bool = False) -> str:
    if not _ok(x):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def ci(c: dict[str, Any] | None, digits: int = 3, signed: bool = False) -> str:
    """"mean [low, high]" of a mean_ci dict; just the mean with one value; "n/a" with none."""
    if not c or not _ok(c.get("mean")):
        return "n/a"
    if not (_ok(c.get("low")) and _ok(c.get("high"))):
        return num(c["mean"], digits, signed)
    return f"{num(c['mean'], digits, signed)} [{num(c['low'], digits, signed)}, {num(c['high'], digits, signed)}]"


def pval(p) -> str:
    if not _ok(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def esc(x) -> str:
    return html.escape(str(x))


def checks_note(report: dict[str, Any]) -> str:
    """A line saying how many runs ran the self-checks, when not all did ("" otherwise)."""
    sc = report["self_checks"]
    if sc.get("runs_checked", sc.get("runs")) == sc.get("runs"):
        return ""
    return (f"{sc['runs_checked']} of {sc['runs']} runs ran the self-checks (`eval.selfchecks`; the demo checks seed 0 "
            f"of each condition); the others show \"not computed\", and a condition's verdict speaks for its "
            f"checked runs.")


def _run_state(run: dict[str, Any]) -> str:
    return "not computed" if run["reliable"] is None else "passed" if run["reliable"] else "unreliable"


def not_computed(part: dict[str, Any] | None, what: str) -> str | None:
    """The reason a part was not computed, or None when it was."""
    if part is None:
        return f"{what}: not computed"
    if part.get("computed") is False:
        return f"{what}: not computed ({part.get('reason', 'no data')})"
    return None


# ---- shared tables (rows of cells; HTML and Markdown render the same rows) ---------------------------

def headline_sentence(report: dict[str, Any]) -> str:
    """The report's one line on what its numbers are (plain text; the renderers escape or format it)."""
    h = report["headline"]
    curve = h.get("curve_attack")
    return (f"{report['n_runs']} runs; baseline: {report['baseline'] or 'none'}. Headline robust accuracy: "
            f"{h['attack']} at {h['norm']} eps {h['eps']:g} ({h['eps_units']}; {h['eps_source']}); PGD "
            f"({h.get('pgd_attack') or 'not run'}) at the same eps beside it. Failed seeds (clean accuracy NaN or "
            f"< 0.9 x the same-seed baseline's) are listed and left out of the means. Curves, paired tests and "
            f"structure-specific gains use {curve or 'no attack'} averaged over strengths "
            f"{', '.join(f'{e:g}' for e in h.get('high_eps') or []) or 'n/a'} (the high-eps range: upper half of "
            f"the non-zero grid). Intervals are 95% CIs over seeds unless marked otherwise.")


SELF_CHECK_COLUMN = 9


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    curve = report["headline"].get("curve_attack") or "curve attack"
    head = ["condition", "role", "seeds", "failed seeds", "clean accuracy", "robust accuracy (headline)",
            "robust accuracy (PGD)", "gain (headline)", f"gain ({curve}, high eps)", "self-checks"]
    rows = []
    for c in report["conditions"]:
        checks = c["self_checks"] if c["self_checks"] != "unreliable" else "UNRELIABLE"
        failed = "; ".join(f"seed {f['seed']}: {f['reason']}" for f in c.get("failed_seeds", [])) or "none"
        if c.get("did_not_learn"):
            failed += f" (did not learn: seeds {', '.join(map(str, c['did_not_learn']))})"
        rows.append([c["name"], c["role"], str(c["n_seeds"]), failed, ci(c["clean_accuracy"]),
                     ci(c["robust_accuracy"]), ci(c.get("robust_accuracy_pgd")), ci(c["gain"], signed=True),
                     ci(c.get("curve_gain"), signed=True), checks])
    return head, rows


def gradient_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["condition", "term", "median ratio", "median, first quarter", "max", "dominated in seeds"]
    rows = [[c["name"], str(g["name"]), num(g["median"]), num(g["median_first_quarter"]), num(g["max"]),
             ", ".join(map(str, g["dominated_in_seeds"])) or "none"]
            for c in report["conditions"] for g in c.get("gradient_ratios", [])]
    return head, rows


GRADIENT_NOTE = ("Gradient ratio: norm of the weighted term's gradient over cross-entropy's at the model's "
                 "parameters, measured on a few steps per epoch; median over seeds. Above 1 the term outweighs "
                 "the task; near 0 it barely acts.")


def claims_rows(part: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["paper", "published claim", "metric", "size", "nearest measurement here", "verdict", "reason"]
    rows = [[r["paper"], r["claim"], r["metric"], r["size"], r.get("measurement") or "none", r["verdict"],
             r["reason"]] for r in part.get("rows", [])]
    return head, rows


def paired_rows(tests: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["condition", "eps", "accuracy", "baseline", "difference [95% CI images]", "CI over seeds",
            "b / c", "p (exact)", "p (mid-p)", f"p adjusted ({tests.get('correction')})", "Cohen's h"]
    rows = []
    for r in tests.get("rows", []):
        m = r.get("mcnemar") or {}
        interval = (f"[{num(r['images']['low'], signed=True)}, {num(r['images']['high'], signed=True)}]"
                    if "note" not in r["images"] else f"({r['images']['note']})")
        rows.append([r["condition"], f"{r['eps'][0]:g}", num(r["accuracy"]), num(r["control_accuracy"]),
                     f"{num(r['diff'], signed=True)} {interval}",
                     f"[{num(r['over_seeds']['low'], signed=True)}, {num(r['over_seeds']['high'], signed=True)}]",
                     f"{m.get('n_base_only', 'n/a')} / {m.get('n_other_only', 'n/a')}", pval(m.get("p_exact")),
                     pval(m.get("p_midp")), pval(r.get("p_adjusted")), num(r.get("cohens_h"), 2, True)])
    return head, rows


def structure_rows(part: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["regularizer", "control", "kind", "difference (high-eps accuracy)", "95% CI over images",
            "95% CI over seeds", "verdict"]
    rows = []
    for r in part.get("rows", []):
        if "diff" not in r:
            rows.append([r["treatment"], r["control"], r["kind"], "n/a", "n/a", "n/a", r["verdict"]])
            continue
        rows.append([r["treatment"], r["control"], r["kind"], num(r["diff"], signed=True),
                     f"[{num(r['images']['low'], signed=True)}, {num(r['images']['high'], signed=True)}]",
                     f"[{num(r['over_seeds']['low'], signed=True)}, {num(r['over_seeds']['high'], signed=True)}]",
                     r["verdict"]])
    return head, rows


def strong_rows(part: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["condition", f"gain under {part.get('pgd')}", f"gain under {part.get('strong')}", "retained", "flag"]
    rows = [[r["condition"], num(r["gain_pgd"], signed=True), num(r["gain_strong"], signed=True),
             num(r["retained"], 2), "SHRINKS BY MORE THAN HALF" if r["flag"] else "ok"] for r in part.get("rows", [])]
    return head, rows


def region_rows(study: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["region", "predictivity (mean over runs)", "r with gain [95% CI]", "R^2", "n runs"]
    regions = list(dict.fromkeys(n["region"] for n in study["recording"]["neuroids"]))
    corr = study["correlation"].get("per_region") or {}
    rows = []
    for g in regions:
        vals = [r["per_region"].get(g) for r in study["runs"]]
        vals = [v for v in vals if _ok(v)]
        c = corr.get(g)
        rows.append([g, num(sum(vals) / len(vals)) if vals else "n/a",
                     "n/a" if not c else f"{num(c['pearson']['r'], 2)} [{num(c['pearson']['low'], 2)}, "
                                         f"{num(c['pearson']['high'], 2)}]",
                     "n/a" if not c else num(c["r2"]["value"], 2), str(c["n"]) if c else "n/a"])
    return head, rows


def diagnostic_rows(diags: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = ["condition", "regularizer", "control", "simulated", "pixel r", "zero share", "off-diag RMS",
            "effective rank ratio", "warnings"]
    rows = []
    for d in diags:
        g = d.get("diagnostics") or {}
        rows.append([d["condition"], str(d["regularizer"]), str(d["control"]), "yes" if d["simulated"] else "no",
                     num(g.get("pixel_correlation"), 2), num(g.get("zero_share"), 2), num(g.get("offdiag_rms"), 3),
                     num(g.get("effective_rank_ratio"), 2), "; ".join(g.get("warnings") or []) or
                     ("no diagnostics" if not g else "none")])
    return head, rows


# ---- HTML ----------------------------------------------------------------------------------------------

class Html(Markup):
    """A table cell that is already HTML (not escaped again)."""


@functools.cache
def _environment():
    from brainalign.templates import environment

    env = environment().overlay()
    env.tests["numeric_cell"] = _numeric_cell
    env.globals["badge"] = lambda text, cls: _badge(text, cls)
    return env


def _numeric_cell(cell: Any) -> bool:
    """Right-aligned cells: numbers, intervals and "n/a" (not HTML cells)."""
    return (isinstance(cell, str) and not isinstance(cell, Markup)
            and (cell[:1] in tuple("+-0123456789[") or cell in ("n/a", "<0.001")))


def _macros():
    return _environment().get_template("macros.html.j2").module


def _table(head: list[str], rows: list[list[str]], row_classes: Sequence[str] | None = None) -> str:
    return str(_macros().table(head, rows, row_classes))


def _figure(png: bytes | None, name: str, caption: str) -> str:
    return str(_macros().figure_of(name, png, caption))


def _nc(text: str) -> str:
    return f'<p class="not-computed">{esc(text)}</p>'


def _badge(text: str, cls: str) -> Html:
    return Html(f'<span class="badge {cls}">{esc(text)}</span>')


def _state_badge(state: str) -> Html:
    """Badge of a self-check state: "passed", "unreliable"/"UNRELIABLE" or "not computed"."""
    if state.lower() == "unreliable":
        return _badge("UNRELIABLE", "unreliable")
    return _badge(state, "passed" if state == "passed" else "notcomputed")


def figures(report: dict[str, Any]) -> dict[str, tuple[bytes | None, str]]:
    """Every figure of the report: name -> (PNG bytes or None, caption)."""
    style = plots.styles(report["conditions"])
    high = report["headline"]["high_eps"]
    out: dict[str, tuple[bytes | None, str]] = {}
    for key, curves in report["curves"].items():
        marked = high if key == report["headline"]["curve_attack"] else ()
        caption = (f"Accuracy versus strength under {key}: mean over seeds, band = 95% CI over seeds "
                   "(clipped to [0, 1]).")
        sparse = plots.sparse_conditions(curves)
        if sparse:
            groups: dict[str, list[str]] = {}
            for name, at in sparse.items():
                groups.setdefault(", ".join(f"{e:g}" for e in at) or "no strength", []).append(name)
            parameter = curves.get("parameter") or "eps"
            caption += (" Measured at fewer than 3 strengths, so drawn as markers with 95% CI bars and no line "
                        "(nothing was measured between them): "
                        + "; ".join(f"{', '.join(names)} at {parameter} {at} only" for at, names in groups.items())
                        + ".")
        out[f"curve {key}"] = (plots.accuracy_curves(key, curves, style, marked), caption)
    out["clean versus robust"] = (plots.clean_robust_plane(report["conditions"], style, report["headline"]["attack"]),
                                  "Every condition's clean accuracy against its headline robust accuracy (accepted "
                                  "seeds); bars = 95% CI over seeds; defences (robustness references) are starred. "
                                  "Axes zoomed on the points; the grey line is clean = robust.")
    study = report["study"]
    if study.get("computed"):
        out["gain versus predictivity"] = (plots.gain_vs_predictivity(study, style),
                                           "Each run's gain over the baseline against its neural predictivity; "
                                           "hollow markers are runs left out of the fit (baseline, defence and "
                                           "excluded runs; legend: not in fit).")
        out["predictivity time course"] = (plots.time_course(study),
                                           "Top: cross-validated predictivity per time bin (mean and 95% CI over "
                                           "runs). Bottom: correlation over runs of that predictivity with the gain.")
        png, drawing = plots.channel_map(study)
        out["channel map"] = (png, "Per-channel predictivity and its correlation with gain on the scalp, viewed "
                                   f"from above, nose up; {drawing}.")
    return out


def _swatch(color: str) -> Html:
    return Html(f'<span class="swatch" data-color="{esc(color)}" style="background:{esc(color)}"></span>')


def render_html(report: dict[str, Any], figs: dict[str, tuple[bytes | None, str]]) -> str:
    """The report page (``templates/report.html.j2``)."""
    style = plots.styles(report["conditions"])
    head, rows = summary_rows(report)
    for c, row in zip(report["conditions"], rows, strict=True):
        row[0] = Html(_swatch(style[c["name"]]["color"]) + esc(c["name"]))
        row[1] = _badge(c["role"], "role-" + c["role"])
        row[SELF_CHECK_COLUMN] = _state_badge(c["self_checks"])
    sim = report["simulated"]
    study = report["study"]
    structure = report["structure_specific"]
    structure_reason = not_computed(structure, "structure-specific gains")
    if not structure_reason and not structure.get("rows"):
        structure_reason = "structure-specific gains: not computed (no regularizer with matched controls)"
    findings = report.get("findings") or {"computed": False, "reason": "not collected"}
    context = {
        "report": report, "figs": figs, "check_script": Markup(CHECK_SCRIPT), "style": Markup(STYLE),
        "headline": headline_sentence(report), "findings": findings,
        "simulated_where": (sim["conditions"] + (["the study's recording"] if sim["study_recording"] else []))
        if sim["any"] else [],
        "summary_table": (head, rows),
        "summary_classes": ["defence" if c["role"] == "defence" else "" for c in report["conditions"]],
        "unreliable": [c for c in report["conditions"] if c["self_checks"] == "unreliable"],
        "claims_reason": not_computed(report.get("claims"), "claims table"),
        "claims_table": claims_rows(report["claims"]) if report.get("claims", {}).get("rows") is not None
        else ([], []),
        "gradient_table": gradient_rows(report), "gradient_note": GRADIENT_NOTE,
        "curve_figures": [name for name in figs if name.startswith("curve ")],
        "paired_reason": not_computed(report["paired_tests"], "paired tests"),
        "paired_table": paired_rows(report["paired_tests"]),
        "structure_reason": structure_reason, "structure_table": structure_rows(structure),
        "strong_reason": not_computed(report["strong_attack"], "PGD versus AutoAttack/APGD check"),
        "strong_table": strong_rows(report["strong_attack"]),
        "study_reason": not_computed(study, "study"),
        "study_html": Markup(_study_html(study, figs)) if not not_computed(study, "study") else "",
        "check_rows": [[r["run"], _state_badge(_run_state(r)), "; ".join(r["reasons"])] for r in report["runs"]],
        "checks_note": checks_note(report).replace("`", ""),
        "diagnostic_table": diagnostic_rows(report["target_diagnostics"]),
    }
    return _environment().get_template("report.html.j2").render(context)


def _study_html(study: dict[str, Any], figs: dict[str, tuple[bytes | None, str]]) -> str:
    rec, s, corr = study["recording"], study["settings"], study["correlation"]
    out = [f"<p>Recording <b>{esc(rec['name'])}</b> ({esc(rec.get('source', ''))}): {rec['n_stimuli']} stimuli, "
           f"{rec['n_neuroids']} neuroids, {rec['n_times']} time bins. Layer <b>{esc(s['layer'])}</b> "
           f"({esc(s['layer_selection'])}); {s['n_folds']}-fold cross-validated ridge; "
           f"{esc(s['predictivity'])}. Masked: {len(rec['masked_neuroids'])} all-NaN neuroids "
           f"({esc(', '.join(rec['masked_neuroids']) or 'none')}) and {rec['n_masked_targets']} "
           f"neuroid x time targets with missing or constant responses.</p>"]
    out += [f"<p>{esc(line)}</p>" for line in study.get("findings") or []]  # brainalign.study.study_findings
    if corr.get("computed"):
        o = corr["overall"]
        out.append(f"<p>Per run (secondary), over {o['n']} runs (attack {esc(corr['attack'])}): Pearson r = "
                   f"{num(o['pearson']['r'], 2)} [{num(o['pearson']['low'], 2)}, {num(o['pearson']['high'], 2)}], "
                   f"Spearman rho = {num(o['spearman']['r'], 2)} [{num(o['spearman']['low'], 2)}, "
                   f"{num(o['spearman']['high'], 2)}], R<sup>2</sup> = {num(o['r2']['value'], 2)} "
                   f"[{num(o['r2']['low'], 2)}, {num(o['r2']['high'], 2)}] (runs treated as independent).</p>")
    else:
        out.append(_nc(f"correlation with gain: not computed ({corr.get('reason') or '; '.join(study['notes'])})"))
    tc = study["time_course"]
    sim = rec.get("simulated_peak_latency_ms")
    out.append(f"<p>Predictivity peaks at {num(tc['peak_ms'], 0)} ms (parabolic estimate "
               f"{num(tc['refined_ms'], 1)} ms)" + (f"; the simulation's peak latency is {sim:g} ms" if sim else "")
               + (f". Its correlation with gain peaks at {num(corr['per_time']['peak_ms'], 0)} ms."
                  if corr.get("computed") else ".") + "</p>")
    for name in ("gain versus predictivity", "predictivity time course", "channel map"):
        if name in figs and figs[name][0] is not None:
            out.append(_figure(figs[name][0], name, figs[name][1]))
        elif name == "channel map":
            out.append(_nc("channel map: not computed (the recording's neuroids have no scalp positions)"))
    out.append(_table(*region_rows(study)))
    layers = study.get("layers") or {}
    if len(layers) > 1:
        out.append(_table(["layer", "predictivity (mean over runs)"], [[k, num(v)] for k, v in layers.items()]))
    cond = study.get("conditions") or {}
    out.append(_table(["condition", "role", "seeds", "predictivity", "gain"],
                      [[k, v["role"], str(v["n_seeds"]), ci(v["predictivity"]), ci(v["gain"], signed=True)]
                       for k, v in cond.items()]))
    return "".join(out)


# ---- Markdown -----------------------------------------------------------------------------------------

def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["_nothing to show_", ""]
    clean = [[c.replace("|", "\\|") for c in row] for row in rows]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in clean] \
        + [""]


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# brainalign report: {report['experiment']}", ""]
    sim = report["simulated"]
    if sim["any"]:
        where = sim["conditions"] + (["the study's recording"] if sim["study_recording"] else [])
        lines += [f"> **SIMULATED BRAIN DATA** in {', '.join(where)}. No real neural recordings were used there.", ""]
    for r in report.get("simulated_recordings") or []:
        lines += [f"- **{r['name']}** (simulated; used by {', '.join(r['used_by'])}): {r['description']}"
                  + (f". {r['summary']}." if r["summary"] else "."), ""]
    findings = report.get("findings") or {"computed": False, "reason": "not collected"}
    lines += ["## Findings", ""]
    if not findings["computed"]:
        lines += [f"_findings: not computed ({findings.get('reason')})_", ""]
    else:
        lines += [f"- {s}" for s in findings["statements"]] or ["_findings: nothing to state_"]
        lines += [""]
    lines += [headline_sentence(report) + " Figures are in report.html.", "", "## Conditions", ""]
    lines += _md_table(*summary_rows(report))
    for c in report["conditions"]:
        if c["self_checks"] == "unreliable":
            lines += [f"- **UNRELIABLE** {c['name']}: " + "; ".join(c["reasons"])]
    lines += ["", "## The seed papers' claims beside these runs", ""]
    reason = not_computed(report.get("claims"), "claims table")
    lines += [f"_{reason}_", ""] if reason else _md_table(*claims_rows(report["claims"]))
    lines += ["", "## Gradient ratios", ""]
    head, rows = gradient_rows(report)
    lines += ([GRADIENT_NOTE, ""] + _md_table(head, rows)) if rows else \
        ["_gradient ratios: not computed (no run recorded gradient_ratios)_", ""]
    lines += ["", "## Paired tests against the baseline", ""]
    reason = not_computed(report["paired_tests"], "paired tests")
    lines += [f"_{reason}_", ""] if reason else _md_table(*paired_rows(report["paired_tests"]))
    lines += ["## Structure-specific gains", ""]
    part = report["structure_specific"]
    reason = not_computed(part, "structure-specific gains")
    if reason or not part.get("rows"):
        lines += [f"_{reason or 'structure-specific gains: not computed (no regularizer with matched controls)'}_", ""]
    else:
        lines += _md_table(*structure_rows(part))
    reason = not_computed(report["strong_attack"], "PGD versus AutoAttack/APGD check")
    lines += [f"_{reason}_", ""] if reason else _md_table(*strong_rows(report["strong_attack"]))
    lines += ["## Brain alignment and robustness", ""]
    study = report["study"]
    reason = not_computed(study, "study")
    if reason:
        lines += [f"_{reason}_", ""]
    else:
        corr, tc = study["correlation"], study["time_course"]
        lines += [line for f in study.get("findings") or [] for line in (f, "")]  # brainalign.study.study_findings
        if corr.get("computed"):
            o = corr["overall"]
            lines += [f"Per run (secondary), over {o['n']} runs ({corr['attack']}, "
                      f"layer {study['settings']['layer']}): Pearson r = "
                      f"{num(o['pearson']['r'], 2)} [{num(o['pearson']['low'], 2)}, {num(o['pearson']['high'], 2)}], "
                      f"Spearman rho = {num(o['spearman']['r'], 2)}, R^2 = {num(o['r2']['value'], 2)} "
                      f"[{num(o['r2']['low'], 2)}, {num(o['r2']['high'], 2)}].", ""]
        else:
            lines += [f"_correlation with gain: not computed ({corr.get('reason') or '; '.join(study['notes'])})_", ""]
        sim_peak = study["recording"].get("simulated_peak_latency_ms")
        lines += [f"Predictivity peaks at {num(tc['peak_ms'], 0)} ms" +
                  (f" (simulated peak: {sim_peak:g} ms)" if sim_peak else "") + ".", ""]
        lines += _md_table(*region_rows(study))
    lines += ["## Self-checks", ""]
    if not report["self_checks"]["computed"]:
        lines += [f"_self-checks: not computed ({report['self_checks']['reason']})_", ""]
    else:
        note = checks_note(report)
        lines += [note, ""] if note else []
        lines += _md_table(["run", "state", "reasons"],
                           [[r["run"], _run_state(r).replace("unreliable", "UNRELIABLE"), "; ".join(r["reasons"])]
                            for r in report["runs"]])
    lines += ["## Regularization targets", ""]
    if report["target_diagnostics"]:
        lines += _md_table(*diagnostic_rows(report["target_diagnostics"]))
    else:
        lines += ["_target diagnostics: not computed (no run has regularization targets)_", ""]
    return "\n".join(lines) + "\n"
