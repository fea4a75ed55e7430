"""The report from run folders alone: sections, badges, banner, 'not computed' pieces, self-contained files."""

from __future__ import annotations

import html
import json
import re

import pytest
import synthetic_runs as syn

from brainalign.headline import describe
from brainalign.reports import write_report

KEY = "pgd_linf[steps=10]"
AA = "autoattack_linf"
ZERO_GRAD = "zero_gradients: 12.0% of examples have an exactly zero input gradient (> 1.0%): gradient masking"
TARGET = {"name": "neural_similarity", "control": "none", "simulated": True, "description": "sim_it responses",
          "recording": "sim_it",
          "diagnostics": {"pixel_correlation": 0.86, "zero_share": 0.05, "offdiag_rms": 0.31,
                          "effective_rank_ratio": 0.4, "warnings": ["target is mostly pixels: r=0.86"]}}


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """baseline, a neural regularizer on simulated targets (one seed fails a self-check), its shuffled
    control and adversarial training, attacked with PGD and AutoAttack."""
    root = tmp_path_factory.mktemp("rich") / "exp"
    ok = {"reliable": True, "reasons": [], "checks": {}}
    for seed, extra in ((0, 30), (1, 20)):
        syn.write_run(root, "baseline", seed, {KEY: syn.BASE, AA: syn.BASE}, selfchecks=ok)
        syn.write_run(root, "neural", seed, {KEY: syn.shifted(extra), AA: syn.shifted(extra // 5)},
                      regularizers=syn.neural(), regularization_targets=[TARGET], simulated_data=True,
                      selfchecks=ok if seed == 0 else {"reliable": False, "reasons": [ZERO_GRAD], "checks": {}})
        syn.write_run(root, "neural_shuffled", seed, {KEY: syn.BASE, AA: syn.BASE}, regularizers=syn.neural("shuffled"),
                      selfchecks=ok)
        syn.write_run(root, "adv_training", seed, {KEY: syn.shifted(100), AA: syn.shifted(95)},
                      defences=[{"name": "adversarial_training", "params": {"eps": 0.1}}], selfchecks=ok)
    paths = write_report(root, n_boot=200)
    return root, paths


def test_report_files_and_sections(rich):
    root, paths = rich
    assert set(paths) == {"html", "md", "json"} and all(p.parent == root and p.exists() for p in paths.values())
    page = paths["html"].read_text()
    assert 'id="simulated-banner"' in page and "SIMULATED BRAIN DATA in neural" in page
    assert '<span class="badge unreliable">UNRELIABLE</span>' in page and html.escape("seed 1: " + ZERO_GRAD) in page
    assert '<tr class="defence">' in page  # the defence reference is highlighted
    assert "study: not computed (no study.json" in page
    assert "target is mostly pixels: r=0.86" in page
    assert "SHRINKS BY MORE THAN HALF" in page  # neural keeps 1/5 of its PGD gain under AutoAttack
    assert "structure-specific gain" in page


def test_report_is_self_contained(rich):
    page = rich[1]["html"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert "<link" not in page and "@import" not in page
    images = re.findall(r'<img alt="([^"]*)" src="([^"]{0,30})', page)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for _, src in images)


def test_report_json_and_markdown(rich):
    root, paths = rich
    report = json.loads(paths["json"].read_text())
    roles = {c["name"]: c["role"] for c in report["conditions"]}
    assert roles == {"adv_training": "defence", "baseline": "baseline", "neural": "regularizer",
                     "neural_shuffled": "control"}
    neural = next(c for c in report["conditions"] if c["name"] == "neural")
    assert neural["self_checks"] == "unreliable" and neural["simulated"] is True
    # Curves and paired tests use the strongest attack run (AutoAttack), not PGD: under it the neural gain is small.
    assert neural["curve_gain"]["mean"] == pytest.approx(0.025)
    assert report["headline"]["curve_attack"] == AA and report["headline"]["high_eps"] == [0.3, 0.4]
    assert report["headline"]["attack"] == describe("")["attack"]
    # These runs were not evaluated with the headline attacks (APGD-CE + APGD-T): no headline number, no plane.
    assert neural["robust_accuracy"]["n"] == 0 and neural["robust_accuracy_pgd"]["n"] == 0
    assert report["figures"] == {f"curve {KEY}": True, f"curve {AA}": True, "clean versus robust": False}
    assert report["study"]["computed"] is False and report["strong_attack"]["computed"] is True
    assert len(report["paired_tests"]["rows"]) == 6
    md = paths["md"].read_text()
    assert "**SIMULATED BRAIN DATA**" in md and "**UNRELIABLE** neural" in md
    assert "| condition | role | seeds |" in md and "_study: not computed" in md


def test_missing_pieces_are_not_computed(tmp_path):
    syn.write_run(tmp_path, "baseline", 0, {KEY: syn.BASE})
    syn.write_run(tmp_path, "other", 0, {KEY: syn.shifted(10)})
    page = write_report(tmp_path, n_boot=50)["html"].read_text()
    for text in ("self-checks: not computed", "study: not computed", "target diagnostics: not computed",
                 "structure-specific gains: not computed", "PGD versus AutoAttack/APGD check: not computed"):
        assert text in page
    assert "simulated-banner" not in page and "UNRELIABLE" not in page


def test_runs_without_self_checks_are_counted_and_said(tmp_path):
    # As the demo runs them: seed 0 of each condition checked, seed 1 not.
    ok = {"selfchecks": {"reliable": True, "reasons": [], "checks": {}}}
    for root, checked in ((tmp_path / "seed0", (0,)), (tmp_path / "all", (0, 1))):
        for seed in (0, 1):
            syn.write_run(root, "baseline", seed, {KEY: syn.BASE}, **(ok if seed in checked else {}))
            syn.write_run(root, "other", seed, {KEY: syn.shifted(10)}, **(ok if seed in checked else {}))
    paths = write_report(tmp_path / "seed0", n_boot=50)
    report = json.loads(paths["json"].read_text())
    assert report["self_checks"]["runs_checked"] == 2 and report["self_checks"]["runs"] == 4
    assert all(c["self_checks"] == "passed" for c in report["conditions"])
    note = "2 of 4 runs ran the self-checks"
    assert note in paths["md"].read_text() and note in paths["html"].read_text()
    assert "runs ran the self-checks" not in write_report(tmp_path / "all", n_boot=50)["md"].read_text()


def test_findings_in_words_open_the_page(rich):
    root, paths = rich
    report = json.loads(paths["json"].read_text())
    findings = report["findings"]
    assert findings["computed"] is True
    # No run here was evaluated with the headline attacks: the findings say so instead of "no clear gain".
    assert "neural: gain under the headline attack not computed (the headline attack was not run on its seeds " \
           "and the same-seed baseline's)." in findings["statements"]
    assert not any("CI holds 0" in s for s in findings["statements"])
    page = paths["html"].read_text()
    assert page.index('id="findings"') < page.index('id="summary"') < page.index('id="curves"')
    shown = re.findall(r"<li>(.*?)</li>", page[page.index('id="findings"'):page.index('id="summary"')])
    assert [html.unescape(s) for s in shown] == findings["statements"]
    md = paths["md"].read_text()
    assert md.index("## Findings") < md.index("## Conditions")
    assert all(f"- {s}" in md for s in findings["statements"])


def test_each_condition_has_its_own_colour_and_its_role_a_marker(rich):
    from brainalign.reports.plots import BASELINE_COLOR, PALETTE, ROLE_STYLE, styles

    root, paths = rich
    report = json.loads(paths["json"].read_text())
    page = paths["html"].read_text()
    swatches = re.findall(r'<span class="swatch" data-color="(#[0-9A-Fa-f]{6})"[^>]*></span>([\w-]+)', page)
    style = styles(report["conditions"])
    assert dict((name, color) for color, name in swatches) == {n: s["color"] for n, s in style.items()}
    assert len({color for color, _ in swatches}) == len(report["conditions"]) == 4
    assert style["baseline"]["color"] == BASELINE_COLOR
    assert style["adv_training"]["marker"] == ROLE_STYLE["defence"]["marker"] != style["neural"]["marker"]
    many = [{"name": f"d{i}", "role": "defence"} for i in range(len(PALETTE))] + [{"name": "b", "role": "baseline"}]
    assert len({s["color"] for s in styles(many).values()}) == len(PALETTE) + 1


def test_curves_name_the_attacks_parameter():
    from brainalign.reports.plots import strength_label

    assert strength_label({"norm": "Linf", "parameter": "eps"}) == "eps (Linf, native [0, 1] pixel units)"
    assert strength_label({"norm": "none", "parameter": "sigma"}) == "sigma"
    assert strength_label({"norm": None}) == "eps"


def test_each_simulated_recording_is_explained(rich):
    from brainalign.registry import NEURAL_LOADERS

    root, paths = rich
    report = json.loads(paths["json"].read_text())
    (sim_it,) = report["simulated_recordings"]
    assert sim_it["name"] == "sim_it" and sim_it["used_by"] == ["neural"]
    assert sim_it["description"] == NEURAL_LOADERS.entry("sim_it").description
    assert sim_it["summary"].startswith("Simulated IT-like spike counts")
    page = html.unescape(paths["html"].read_text())
    section = page[page.index('id="simulated-recordings"'):page.index('id="summary"')]
    assert f"<b>sim_it</b> (used by neural): {sim_it['description']}. {sim_it['summary']}." in section
    assert "they carry no brain\nsignal" in section


def test_the_clean_robust_plane_zooms_on_its_points_within_0_1():
    from brainalign.reports.plots import _span

    # 0.88..0.95 padded by 0.05 is 0.83..1.0, under 0.2 wide: widened to 0.2 around 0.915, then clipped at 1
    assert _span([{"mean": 0.9, "low": 0.88, "high": 0.92}, {"mean": 0.95, "low": float("nan")}]) == \
        pytest.approx((0.815 - 0.01, 1.0 + 0.01))
    low, high = _span([{"mean": 0.02, "low": -0.5, "high": 0.3}])  # a t-interval over 2 seeds can leave [0, 1]
    assert low == pytest.approx(-0.01) and high == pytest.approx(0.36)
