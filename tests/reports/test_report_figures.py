"""The report's figures say only what was measured: attack curves with fewer than 3 measured strengths are
markers without a line; scalp maps go through mne's plot_topomap when mne is installed, else brainalign's own
drawing, and the caption says which."""

from __future__ import annotations

import html
import json

import numpy as np
import pytest
import synthetic_runs as syn
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.image import AxesImage

from brainalign.neural.things_eeg2 import CHANNEL_POSITIONS, CHANNELS
from brainalign.reports import plots, write_report
from brainalign.reports.render import figures

PGD = "pgd_linf[steps=10]"  # 5 strengths: a curve
STRONG = "apgd_ce_linf[steps=100]"  # 0 and the headline eps only, as the demo's headline attacks may be
L2 = "pgd_l2[steps=10]"  # exactly 3 strengths: the least that is a curve
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(tmp_path, monkeypatch):
    """write_report on baseline + neural (2 seeds), keeping every matplotlib figure it draws."""
    for seed, extra in ((0, 30), (1, 20)):
        for name, shift in (("baseline", 0), ("neural", extra)):
            syn.write_run(tmp_path, name, seed, {
                PGD: syn.shifted(shift),
                STRONG: {0.0: 180, 0.1: 120 + shift // 2},
                L2: {0.0: 180, 0.5: 100 + shift, 1.0: 50 + shift}},
                regularizers=syn.neural() if name == "neural" else None)
    kept = {}
    real_png = plots._png

    def keep(fig):
        kept[fig.axes[0].get_title()] = fig
        return real_png(fig)

    monkeypatch.setattr(plots, "_png", keep)
    paths = write_report(tmp_path, n_boot=50)
    return kept, paths


def _condition_lines(fig):
    """Each condition's data line: a plotted curve, or the marker line of an errorbar (labelled on its container)."""
    ax = fig.axes[0]
    labelled = [(line.get_label(), line) for line in ax.get_lines()]
    labelled += [(c.get_label(), c.lines[0]) for c in ax.containers if hasattr(c, "has_xerr")]
    return {label.split(" (")[0]: line for label, line in labelled if label.split(" (")[0] in ("baseline", "neural")}


def test_attacks_measured_at_two_strengths_are_markers_not_a_curve(drawn):
    kept, paths = drawn
    strong = kept[STRONG]
    lines = _condition_lines(strong)
    assert set(lines) == {"baseline", "neural"}
    for line in lines.values():
        assert line.get_linestyle() == "None" and line.get_marker() not in (None, "None", "")
        assert list(line.get_xdata()) == [0.0, 0.1]
    assert not any(isinstance(c, PolyCollection) for c in strong.axes[0].collections)  # no CI band between them
    legend = [t.get_text() for t in strong.axes[0].get_legend().get_texts()]
    assert "baseline (n=2; measured at eps 0, 0.1 only)" in legend
    assert "neural (n=2; measured at eps 0, 0.1 only)" in legend
    assert "high-eps range" in legend  # one strength (0.1): drawn as a line, a zero-width span would not show

    for key in (PGD, L2):  # 5 and 3 measured strengths: curves with their bands
        lines = _condition_lines(kept[key])
        assert all(line.get_linestyle() != "None" and len(line.get_xdata()) >= 3 for line in lines.values())
        assert any(isinstance(c, PolyCollection) for c in kept[key].axes[0].collections)
        assert not any("only" in t.get_text() for t in kept[key].axes[0].get_legend().get_texts())

    page = html.unescape(paths["html"].read_text())
    assert ("drawn as markers with 95% CI bars and no line (nothing was measured between them): baseline, neural "
            "at eps 0, 0.1 only.") in page
    assert page.count("no line (nothing was measured between them)") == 1  # the strong attack's caption only
    assert json.loads(paths["json"].read_text())["figures"][f"curve {STRONG}"] is True


def test_measured_strengths_skip_nan_means():
    curves = {"eps": [0.0, 0.05, 0.1], "conditions": {
        "a": {"mean": [0.9, None, 0.4]}, "b": {"mean": [0.9, 0.7, 0.4]}}}
    assert plots.measured_strengths(curves) == {"a": [0.0, 0.1], "b": [0.0, 0.05, 0.1]}
    assert plots.sparse_conditions(curves) == {"a": [0.0, 0.1]}


def _study(positions: bool = True, masked: tuple[str, ...] = ("P8",), names=CHANNELS, correlation: bool = True):
    """A study.json's parts that the channel map reads: 17 THINGS-EEG2 channels, 4 runs."""
    rng = np.random.default_rng(0)
    pos = {n: CHANNEL_POSITIONS.get(n, (0.0, -0.5, 0.0)) for n in names}
    neuroids = [{"name": n, "region": "r", "x": pos[n][0] if positions else None,
                 "y": pos[n][1] if positions else None} for n in names]
    runs = [{"per_neuroid": [None if n in masked else 0.2 - 0.3 * pos[n][1] + 0.02 * rng.standard_normal()
                             for n in names]} for _ in range(4)]
    corr = {"computed": True, "per_neuroid": {"pearson": [None if n in masked else pos[n][0] for n in names]}}
    return {"computed": True, "recording": {"neuroids": neuroids}, "runs": runs,
            "settings": {"time_window_ms": [70, 170], "layer": "conv3"}, "time_course": {"time_ms": []},
            "correlation": corr if correlation else {"computed": False}}


def test_the_channel_map_goes_through_mne_when_installed(monkeypatch):
    mne = pytest.importorskip("mne")
    calls = []
    real = mne.viz.plot_topomap

    def spy(data, pos, **kwargs):
        calls.append((np.asarray(data), pos.ch_names))
        return real(data, pos, **kwargs)

    monkeypatch.setattr(mne.viz, "plot_topomap", spy)
    fig, drawing = plots.channel_map_figure(_study())
    assert drawing.startswith(f"drawn with mne {mne.__version__} (mne.viz.plot_topomap")
    assert "positions: the study's positions" in drawing
    assert len(calls) == 2  # predictivity and its correlation with gain
    for data, names in calls:
        assert "P8" not in names and len(names) == len(data) == 16 and np.isfinite(data).all()  # masked P8 left out
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 2 and all(isinstance(ax.images[0], AxesImage) for ax in maps)  # the interpolated image
    assert all(len(ax.collections) >= 1 for ax in maps)  # its contour lines
    assert "masked (no values): P8" in maps[0].get_title()
    png, again = plots.channel_map(_study())
    assert png.startswith(PNG) and len(png) > 10_000 and again == drawing


def test_mne_places_channels_without_study_positions_from_its_10_20_template():
    pytest.importorskip("mne")
    fig, drawing = plots.channel_map_figure(_study(positions=False))
    assert "positions: mne's 10-20 template" in drawing
    assert sum(bool(ax.images) for ax in fig.axes) == 2
    # A channel that is neither placed by the study nor a 10-20 name: mne cannot place it, nor can the fallback.
    png, why = plots.channel_map(_study(positions=False, names=[*CHANNELS[:-1], "XYZ"]))
    assert png is None and why.startswith("not drawn")


def test_without_mne_the_channel_map_is_brainaligns_own_drawing(monkeypatch):
    monkeypatch.setattr(plots, "_mne", lambda: None)  # as if `import mne` raised ImportError
    fig, drawing = plots.channel_map_figure(_study())
    assert drawing.startswith("drawn as coloured dots on brainalign's own head outline (mne is not installed")
    assert not any(ax.images for ax in fig.axes)
    dots = [c for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
    assert len(dots) == 2 and all(len(d.get_offsets()) == len(CHANNELS) for d in dots)
    png, _ = plots.channel_map(_study())
    assert png.startswith(PNG) and len(png) > 10_000


def test_where_mne_cannot_draw_the_map_the_fallback_does_and_says_why():
    pytest.importorskip("mne")
    study = _study()
    study["recording"]["neuroids"][1].update(x=study["recording"]["neuroids"][0]["x"],
                                             y=study["recording"]["neuroids"][0]["y"])  # P5 on top of P7
    png, drawing = plots.channel_map(study)
    assert png.startswith(PNG)
    assert "own head outline (mne could not draw it: The following electrodes have overlapping positions" in drawing
    png, drawing = plots.channel_map(_study(masked=CHANNELS[:14]))  # 3 channels left: nothing to interpolate
    assert png.startswith(PNG) and "(fewer than 4 channels with values to interpolate" in drawing


def test_the_mne_import_helper_returns_none_on_import_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mne(name, *args, **kwargs):
        if name == "mne" or name.startswith("mne."):
            raise ImportError("No module named 'mne'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mne)
    assert plots._mne() is None


def test_the_report_caption_says_which_drawing_it_used(monkeypatch):
    report = {"conditions": [], "curves": {}, "headline": {"high_eps": [], "curve_attack": None, "attack": None},
              "study": _study(correlation=False)}
    png, caption = figures(report)["channel map"]
    assert png.startswith(PNG)
    mne_installed = plots._mne() is not None
    assert ("drawn with mne" in caption) is mne_installed
    monkeypatch.setattr(plots, "_mne", lambda: None)
    png, caption = figures(report)["channel map"]
    assert png.startswith(PNG) and "brainalign's own head outline (mne is not installed" in caption
