"""The HTML report of tiny trained runs plus a study, opened in headless Chromium: every figure decodes,
no script error occurs, the findings open the page, every condition has its own colour on screen, and a
screenshot is kept (its path printed; under pytest's tmp dir, which keeps the last runs). Skipped only where
/usr/bin/chromium is absent (`make test` installs Debian's chromium package)."""

from __future__ import annotations

import html
import importlib.util
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tiny_runs
from PIL import Image

from brainalign.reports import write_report
from brainalign.study import run_study

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--disable-extensions", "--mute-audio"]
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")


def chromium(profile: Path, *args: str) -> str:
    out = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def rendered_dom(page: Path, profile: Path) -> str:
    """The DOM after the page's load handler ran, as Chromium rendered it."""
    return chromium(profile, "--virtual-time-budget=10000", "--dump-dom", page.as_uri())


def body_attributes(page: Path, profile: Path) -> dict[str, str]:
    """The <body> attributes after the page's load handler ran (the DOM as Chromium rendered it)."""
    dom = rendered_dom(page, profile)
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    attrs = {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', body.group(1))}
    head = re.search(r"<html([^>]*)>", dom)
    attrs.update({f"html:{k}": html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', head.group(1))})
    return attrs


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    experiment = tiny_runs.tiny_experiment(tmp_path_factory.getbasetemp())
    times = [float(t) for t in np.arange(-50.0, 300.0, 10.0)]
    run_study(experiment, {"name": "sim_eeg", "options": {"n_stimuli": 400, "times_ms": times}}, layers=["conv3"],
              n_boot=200, progress=False)
    return write_report(experiment, n_boot=200)


def test_report_renders_in_chromium(report, tmp_path):
    figures = json.loads(report["json"].read_text())["figures"]
    # The tiny runs ran PGD only, not the headline attack, so the clean-versus-robust plane (headline accuracy)
    # has no points and is not drawn (the report says so); every figure that is drawn must render.
    expected = {"curve " + tiny_runs.ATTACK, "gain versus predictivity", "predictivity time course", "channel map"}
    assert {name for name, drawn in figures.items() if drawn} == expected
    assert figures["clean versus robust"] is False
    page = html.unescape(report["html"].read_text())  # the channel map's caption says how it was drawn
    assert ("drawn with mne" in page) is (importlib.util.find_spec("mne") is not None)
    assert ("drawn with mne" in page) is not ("brainalign's own head outline" in page)
    attrs = body_attributes(report["html"], tmp_path / "profile")
    assert attrs["data-images"] == str(len(expected))
    assert attrs["data-images-ok"] == "true", attrs["data-images-broken"]
    assert json.loads(attrs["data-errors"]) == []
    assert "html:data-errors" not in attrs  # no error event fired at any time
    shot = tmp_path / "report.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,3000", report["html"].as_uri())
    print(f"report screenshot: {shot}")
    with Image.open(shot) as image:
        assert image.size == (1200, 3000)
        assert len(set(image.convert("L").resize((60, 150)).getdata())) > 20  # not a blank page


def test_the_page_opens_with_the_findings_and_gives_each_condition_its_own_colour(report, tmp_path):
    saved = json.loads(report["json"].read_text())
    dom = rendered_dom(report["html"], tmp_path / "profile")
    findings = dom[dom.index('id="findings"'):dom.index('id="summary"')]
    statements = [html.unescape(s) for s in re.findall(r"<li>(.*?)</li>", findings)]
    assert statements and statements == saved["findings"]["statements"]
    assert dom.index('id="findings"') < dom.index('id="summary"')
    swatches = re.findall(r'<span class="swatch" data-color="(#[0-9A-Fa-f]{6})"[^>]*></span>([\w-]+)', dom)
    names = [c["name"] for c in saved["conditions"]]
    assert sorted(name for _, name in swatches) == sorted(names) == sorted(tiny_runs.CONDITIONS)
    colors = {color.lower() for color, _ in swatches}
    assert len(colors) == len(names)  # a distinct colour per condition
    shot = tmp_path / "conditions.png"
    chromium(tmp_path / "profile", "--force-color-profile=srgb", f"--screenshot={shot}", "--window-size=1200,3000",
             report["html"].as_uri())
    print(f"report screenshot: {shot}")
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=int).reshape(-1, 3)
    for color in colors:  # each colour is on screen (its swatch, its curve), not only in the markup
        rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - rgb).max(axis=1) <= 4).sum() >= 20, color


def test_browser_check_catches_broken_figures_and_script_errors(report, tmp_path):
    page = report["html"].read_text()
    broken = re.sub(r"base64,[A-Za-z0-9+/=]{40}", "base64,bm90IGEgcG5n", page, count=1)
    broken = broken.replace("</body>", "<script>undefinedFunction();</script></body>")
    path = tmp_path / "broken.html"
    path.write_text(broken)
    attrs = body_attributes(path, tmp_path / "profile")
    assert attrs["data-images-ok"] == "false"
    assert len(json.loads(attrs["data-images-broken"])) == 1
    assert any("undefinedFunction" in e for e in json.loads(attrs["data-errors"]))
