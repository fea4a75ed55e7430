"""The report's figures, drawn with matplotlib's Agg backend into PNG bytes (embedded as base64 in HTML).

Each function takes parts of the collected report (``brainalign.reports.collect``) and returns PNG bytes,
or None when there is nothing to draw. Every condition has its own colour, colour-blind safe (the baseline
black, then Okabe & Ito's palette, then Paul Tol's muted one); its role shows as marker and line style
(``ROLE_STYLE``), so that four defences are four colours with one marker. Legends sit outside the axes,
to the right; figures are drawn about as wide as the page (``WIDTH`` inches at 100 dpi). CI bands of
accuracies are drawn clipped to [0, 1].
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from brainalign.analysis.stats import nanmean

# Marker and line style by role; the colour is the condition's own.
ROLE_STYLE = {
    "baseline": {"marker": "s", "linestyle": "-"},
    "regularizer": {"marker": "o", "linestyle": "-"},
    "control": {"marker": "v", "linestyle": ":"},
    "defence": {"marker": "*", "linestyle": "--"},
    "other": {"marker": "D", "linestyle": "-."},
}
BASELINE_COLOR = "#000000"
# Okabe & Ito (2008) without black and with yellow last (faint on white), then Paul Tol's muted scheme.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
           "#332288", "#882255", "#117733", "#999933", "#AA4499", "#44AA99", "#DDCC77", "#F0E442"]
WIDTH = 11.0  # inches at 100 dpi: about the page's width


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and bool(np.isfinite(x))


def _arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def styles(conditions: Sequence[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """A colour, marker and line style per condition name: the colour the condition's own (the baseline
    black, the others in ``PALETTE`` order, repeating only past its length), marker and line style by role."""
    out, k = {}, 0
    for c in conditions:
        if c["role"] == "baseline":
            color = BASELINE_COLOR
        else:
            color, k = PALETTE[k % len(PALETTE)], k + 1
        out[c["name"]] = {"color": color, **ROLE_STYLE.get(c["role"], ROLE_STYLE["other"])}
    return out


def _legend_outside(ax, title: str | None = None) -> None:
    """The legend to the right of the axes, never on the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=9,
                  title=title, title_fontsize=9, frameon=False)


def strength_label(curves: dict[str, Any]) -> str:
    """The x-axis label of a curve: the attack's parameter by name (eps, sigma, severity, ...), with the norm
    and units for norm-bounded attacks."""
    parameter = curves.get("parameter") or "eps"
    norm = curves.get("norm")
    if norm in ("Linf", "L2"):
        return f"{parameter} ({norm}, native [0, 1] pixel units)"
    return parameter


MIN_CURVE_POINTS = 3  # fewer measured strengths are drawn as markers only: a line between two would be invented


def measured_strengths(curves: dict[str, Any]) -> dict[str, list[float]]:
    """Per condition, the strengths at which the attack was measured (a finite mean over seeds)."""
    eps = np.asarray(curves["eps"], dtype=float)
    return {name: eps[np.isfinite(_arr(c["mean"]))].tolist() for name, c in curves["conditions"].items()}


def sparse_conditions(curves: dict[str, Any]) -> dict[str, list[float]]:
    """The conditions measured at fewer than ``MIN_CURVE_POINTS`` strengths (drawn without a line), with them."""
    return {name: at for name, at in measured_strengths(curves).items() if len(at) < MIN_CURVE_POINTS}


def accuracy_curves(key: str, curves: dict[str, Any], style: dict[str, dict[str, str]],
                    high_eps: Sequence[float] = ()) -> bytes | None:
    """Accuracy versus strength for one attack: mean over seeds per condition with its 95% CI.

    A condition measured at ``MIN_CURVE_POINTS`` strengths or more is a curve with a CI band; one measured
    at fewer (e.g. a strong attack run at 0 and the headline eps only) is markers with CI bars and no line,
    its legend entry naming the strengths: a straight line between two points would show a curve that was
    never measured.
    """
    if not curves["conditions"]:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    eps = np.asarray(curves["eps"], dtype=float)
    parameter = curves.get("parameter") or "eps"
    if len(high_eps) and min(high_eps) < max(high_eps):
        ax.axvspan(min(high_eps), max(high_eps), color="#fff3cd", lw=0, label="high-eps range")
    elif len(high_eps):  # one strength: a span of zero width would not show
        ax.axvline(high_eps[0], color="#e0a800", lw=6, alpha=0.3, zorder=0, label="high-eps range")
    for name, c in curves["conditions"].items():
        s = style.get(name, {"color": "C0", "marker": "o", "linestyle": "-"})
        # An accuracy lies in [0, 1]; a t-interval over 2 seeds can reach far beyond and hide the curves.
        mean, low, high = _arr(c["mean"]), np.clip(_arr(c["low"]), 0, 1), np.clip(_arr(c["high"]), 0, 1)
        measured = np.isfinite(mean)
        if measured.sum() < MIN_CURVE_POINTS:
            at = ", ".join(f"{e:g}" for e in eps[measured])
            ok = measured & np.isfinite(low) & np.isfinite(high)
            yerr = np.array([np.where(ok, mean - low, 0), np.where(ok, high - mean, 0)])[:, measured]
            ax.errorbar(eps[measured], mean[measured], yerr=yerr, color=s["color"], marker=s["marker"],
                        linestyle="none", ms=7, capsize=3,
                        label=f"{name} (n={c['n']}; measured at {parameter} {at} only)")
            continue
        ax.plot(eps, mean, color=s["color"], marker=s["marker"], linestyle=s["linestyle"], ms=7, lw=1.8,
                label=f"{name} (n={c['n']})")
        ok = np.isfinite(low) & np.isfinite(high)
        if ok.any():
            ax.fill_between(eps, np.where(ok, low, mean), np.where(ok, high, mean), color=s["color"], alpha=0.12,
                            lw=0)
    ax.set_xlabel(strength_label(curves))
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(key)
    ax.grid(alpha=0.3)
    _legend_outside(ax, "condition (seeds)")
    return _png(fig)


def _span(cis: Sequence[dict[str, float]], pad: float = 0.05) -> tuple[float, float]:
    """Axis limits around means and finite interval bounds, padded, within [0, 1] (and at least 0.2 wide)."""
    values = [v for c in cis for v in (c.get("mean"), c.get("low"), c.get("high")) if _finite(v)]
    low, high = max(0.0, min(values) - pad), min(1.0, max(values) + pad)
    if high - low < 0.2:
        mid = (low + high) / 2
        low, high = max(0.0, mid - 0.1), min(1.0, mid + 0.1)
    return low - 0.01, high + 0.01


def clean_robust_plane(conditions: Sequence[dict[str, Any]], style: dict[str, dict[str, str]],
                       attack: str | None) -> bytes | None:
    """Clean versus robust accuracy, one point per condition (mean and 95% CI over seeds); defences starred."""
    points = [c for c in conditions if _finite(c["clean_accuracy"].get("mean"))
              and _finite(c["robust_accuracy"].get("mean"))]
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(WIDTH * 0.75, 5.0))
    for c in points:
        s = style[c["name"]]
        x, y = c["clean_accuracy"], c["robust_accuracy"]
        xerr = [[x["mean"] - x["low"]], [x["high"] - x["mean"]]] if _finite(x.get("low")) else None
        yerr = [[y["mean"] - y["low"]], [y["high"] - y["mean"]]] if _finite(y.get("low")) else None
        defence = c["role"] == "defence"
        ax.errorbar(x["mean"], y["mean"], xerr=xerr, yerr=yerr, fmt=s["marker"], color=s["color"],
                    ms=14 if defence else 8, capsize=3, label=f"{c['name']} ({c['role']})")
    ax.plot([0, 1], [0, 1], color="#cccccc", lw=1, zorder=0)
    ax.set_xlim(*_span([c["clean_accuracy"] for c in points]))  # zoomed on the points: they often crowd a corner
    ax.set_ylim(*_span([c["robust_accuracy"] for c in points]))
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel(f"robust accuracy ({attack})" if attack else "robust accuracy")
    ax.set_title("clean versus robust accuracy (defences starred)")
    ax.grid(alpha=0.3)
    _legend_outside(ax, "condition (role)")
    return _png(fig)


def gain_vs_predictivity(study: dict[str, Any], style: dict[str, dict[str, str]]) -> bytes | None:
    """Robustness gain against neural predictivity, one point per run, with the least-squares line."""
    attack = study["correlation"].get("attack")

    def gain(r):  # the study's gain (the headline's where runs carry it; study.json schema 2), else the attack's
        return r["gain"] if "gain" in r else (r["gains"].get(attack) or {}).get("gain")

    def in_fit(r):  # baselines, defences and excluded runs are drawn hollow, outside the fit (brainalign.study)
        if "excluded" in r:
            return r["excluded"] is None and r["role"] != "defence" and (
                r["role"] != "baseline" or study["settings"].get("include_baselines"))
        return not (r["role"] == "baseline" and not study["settings"].get("include_baselines"))

    rows = [r for r in study["runs"] if attack and _finite(r["predictivity"]) and _finite(gain(r))]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(WIDTH * 0.75, 5.0))
    seen = set()
    for r in rows:
        s = style.get(r["name"], {"color": "C0", "marker": "o"})
        excluded = not in_fit(r)
        ax.scatter(r["predictivity"], gain(r), color=s["color"], marker=s["marker"], s=40,
                   facecolors="none" if excluded else s["color"],
                   label=None if r["name"] in seen else r["name"] + (" (not in fit)" if excluded else ""))
        seen.add(r["name"])
    overall = study["correlation"].get("overall") or {}
    title = "gain versus predictivity"
    if study["correlation"].get("computed"):
        fit = [r for r in rows if in_fit(r)]
        x = np.array([r["predictivity"] for r in fit], dtype=float)
        y = np.array([gain(r) for r in fit], dtype=float)
        if np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 2)
            ax.plot(xs, slope * xs + intercept, color="black", lw=1)
        p, r2 = overall["pearson"], overall["r2"]
        title += (f": per run r = {p['r']:.2f} [{_fmt(p['low'])}, {_fmt(p['high'])}], R$^2$ = {r2['value']:.2f}, "
                  f"n = {overall['n']}")
    ax.axhline(0, color="#cccccc", lw=1, zorder=0)
    ax.set_xlabel(f"neural predictivity ({study['settings']['layer']})")
    source = (study["settings"].get("gain") or {}).get("source")
    ax.set_ylabel("headline gain over baseline" if source == "headline" else f"gain over baseline ({attack}, high eps)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _legend_outside(ax, "condition")
    return _png(fig)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def time_course(study: dict[str, Any]) -> bytes | None:
    """Predictivity per time bin (mean and CI over runs) and, below, its correlation with gain per bin."""
    tc = study["time_course"]
    t = np.asarray(tc["time_ms"], dtype=float)
    if t.size < 2:
        return None
    plt = _plt()
    corr = (study["correlation"].get("per_time") or {}) if study["correlation"].get("computed") else {}
    fig, axes = plt.subplots(2 if corr else 1, 1, figsize=(WIDTH, 6.0 if corr else 3.6), sharex=True, squeeze=False)
    ax = axes[0, 0]
    mean, low, high = _arr(tc["mean"]), _arr(tc["low"]), _arr(tc["high"])
    ax.plot(t, mean, color="#1f77b4", label="mean over runs")
    ok = np.isfinite(low) & np.isfinite(high)
    if ok.any():
        ax.fill_between(t, np.where(ok, low, mean), np.where(ok, high, mean), color="#1f77b4", alpha=0.2, lw=0,
                        label="95% CI over runs")
    if tc.get("peak_ms") is not None:
        ax.axvline(tc["peak_ms"], color="#1f77b4", ls="--", lw=1, label=f"peak {tc['peak_ms']:g} ms")
    sim = (study.get("recording") or {}).get("simulated_peak_latency_ms")
    if sim is not None:
        ax.axvline(sim, color="#d62728", ls=":", lw=1.5, label=f"simulated peak {sim:g} ms")
    ax.axvline(0, color="#999999", lw=0.8)
    ax.set_ylabel("predictivity (r)")
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    if corr:
        ax2 = axes[1, 0]
        ax2.plot(t, _arr(corr["pearson"]), color="#2ca02c")
        if corr.get("peak_ms") is not None:
            ax2.axvline(corr["peak_ms"], color="#2ca02c", ls="--", lw=1, label=f"peak {corr['peak_ms']:g} ms")
            _legend_outside(ax2)
        ax2.axhline(0, color="#999999", lw=0.8)
        ax2.set_ylabel("r(predictivity, gain)")
        ax2.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time from stimulus onset (ms)")
    return _png(fig)


def channel_positions(study: dict[str, Any]) -> list[tuple[str, float, float]] | None:
    """(name, x, y) of every neuroid when all have scalp positions: from the study, else the approximate
    10-10 positions of the THINGS-EEG2 montage (``brainalign.neural.things_eeg2.CHANNEL_POSITIONS``)."""
    out = []
    for n in (study.get("recording") or {}).get("neuroids", []):
        x, y = n.get("x"), n.get("y")
        if x is None or y is None:
            from brainalign.neural.things_eeg2 import CHANNEL_POSITIONS

            if n["name"] not in CHANNEL_POSITIONS:
                return None
            x, y = CHANNEL_POSITIONS[n["name"]][:2]
        out.append((n["name"], float(x), float(y)))
    return out or None


def _channel_values(study: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    """(title, value per neuroid) of each scalp map: mean predictivity over runs, and its r with the gain."""
    per = np.array([_arr(r["per_neuroid"]) for r in study["runs"]])
    n = len((study.get("recording") or {}).get("neuroids", []))
    window = study["settings"].get("time_window_ms")
    span = "all time bins" if not window else f"{window[0]:g}-{window[1]:g} ms"
    mean = nanmean(per, axis=0) if per.size else np.full(n, np.nan)  # NaN for a masked channel
    values = [(f"predictivity (mean r over runs, {span})", mean)]
    corr = study["correlation"].get("per_neuroid") if study["correlation"].get("computed") else None
    if corr:
        values.append(("r(channel predictivity, gain)", _arr(corr["pearson"])))
    return values


def _mne():
    """mne when it is installed (the ``eeg`` extra), else None: the scalp maps then use brainalign's own
    drawing (``_head``). Imported here, only when a channel map is drawn: mne takes about a second to import."""
    try:
        import mne
    except ImportError:
        return None
    return mne


HEAD_RADIUS_M = 0.095  # mne's default head sphere (metres): a study's unit-sphere positions are scaled to it
MIN_TOPOMAP_CHANNELS = 4  # mne interpolates between channels; fewer finite ones are drawn as dots


def _template_1020(mne) -> dict[str, np.ndarray]:
    """Head-frame positions (metres) of mne's 10-20 template (``colin27_1020``; ``standard_1020`` before mne 1.13)."""
    name = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    montage = mne.channels.make_standard_montage(name)
    info = mne.create_info(montage.ch_names, 100.0, "eeg", verbose="error")
    info.set_montage(montage, verbose="error")
    return {ch["ch_name"]: np.asarray(ch["loc"][:3], dtype=float) for ch in info["chs"]}


def _mne_info(study: dict[str, Any], mne):
    """An ``mne.Info`` of the study's channels with a montage: the study's (x, y) where present (a unit
    sphere, x right, y front; z from the sphere), else mne's 10-20 template position of the channel's name.
    Returns (info, where the positions came from), or None when a channel has neither."""
    neuroids = (study.get("recording") or {}).get("neuroids", [])
    pos, sources, template = {}, [], None
    for n in neuroids:
        x, y = n.get("x"), n.get("y")
        if x is not None and y is not None:
            z = float(np.sqrt(max(0.0, 1.0 - x * x - y * y)))
            pos[n["name"]] = HEAD_RADIUS_M * np.array([x, y, z], dtype=float)
            sources.append("the study's positions")
            continue
        template = template if template is not None else _template_1020(mne)
        if n["name"] not in template:
            return None
        pos[n["name"]] = template[n["name"]]
        sources.append("mne's 10-20 template")
    if not pos:
        return None
    info = mne.create_info(list(pos), 100.0, "eeg", verbose="error")
    info.set_montage(mne.channels.make_dig_montage(ch_pos=pos, coord_frame="head"), verbose="error")
    return info, " and ".join(dict.fromkeys(sources))


def channel_map_figure(study: dict[str, Any]):
    """The channel-map figure and a sentence saying how it was drawn, or None when the neuroids have no
    scalp positions. Through ``mne.viz.plot_topomap`` when mne is installed (interpolated only near the
    channels, ``extrapolate="local"``: THINGS-EEG2's 17 channels are all posterior); else brainalign's own
    drawing, coloured dots on a head outline. Channels masked (all-NaN) are left out of mne's
    interpolation and named under the map."""
    values = _channel_values(study)
    mne = _mne()
    made = _mne_info(study, mne) if mne is not None else None
    failed = None
    if made is not None and all(np.isfinite(v).sum() >= MIN_TOPOMAP_CHANNELS for _, v in values):
        info, source = made
        try:
            fig = _mne_channel_map(values, info, mne)
        except (ValueError, RuntimeError) as exc:  # e.g. two channels at one position: the report still draws
            _plt().close("all")
            failed = " ".join(str(exc).split())[:200]
        else:
            return fig, (f"drawn with mne {mne.__version__} (mne.viz.plot_topomap, interpolated near the channels "
                         f"only; positions: {source})")
    pos = channel_positions(study)
    if pos is None:
        return None
    why = "mne is not installed (pip install 'brainalign[eeg]')" if mne is None else (
        "mne could not place every channel" if made is None else f"mne could not draw it: {failed}" if failed else
        f"fewer than {MIN_TOPOMAP_CHANNELS} channels with values to interpolate")
    neuroids = (study.get("recording") or {}).get("neuroids", [])
    placed = all(n.get("x") is not None and n.get("y") is not None for n in neuroids)
    source = "the study's positions" if placed else "the study's positions, else approximate 10-10 positions"
    return _dots_channel_map(values, pos), (f"drawn as coloured dots on brainalign's own head outline ({why}; "
                                            f"positions: {source})")


def _mne_channel_map(values: list[tuple[str, np.ndarray]], info, mne):
    plt = _plt()
    fig, axes = plt.subplots(1, len(values), figsize=(5.2 * len(values), 5.0), squeeze=False)
    names = np.array(info.ch_names)
    for ax, (title, v) in zip(axes[0], values, strict=True):
        finite = np.isfinite(v)
        lim = float(np.nanmax(np.abs(v))) or 1.0
        picked = mne.pick_info(info, np.flatnonzero(finite).tolist(), verbose="error")
        im, _ = mne.viz.plot_topomap(v[finite], picked, axes=ax, show=False, names=names[finite].tolist(),
                                     cmap="RdBu_r", vlim=(-lim, lim), extrapolate="local", contours=6)
        fig.colorbar(im, ax=ax, shrink=0.7)
        masked = names[~finite].tolist()
        ax.set_title(title + (f"\nmasked (no values): {', '.join(masked)}" if masked else ""), fontsize=9)
    return fig


def _dots_channel_map(values: list[tuple[str, np.ndarray]], pos: list[tuple[str, float, float]]):
    plt = _plt()
    fig, axes = plt.subplots(1, len(values), figsize=(5.2 * len(values), 5.0), squeeze=False)
    xs = np.array([p[1] for p in pos])
    ys = np.array([p[2] for p in pos])
    for ax, (title, v) in zip(axes[0], values, strict=True):
        _head(ax)
        finite = np.isfinite(v)
        lim = float(np.nanmax(np.abs(v))) if finite.any() else 1.0
        sc = ax.scatter(xs, ys, c=np.where(finite, v, 0), cmap="RdBu_r", vmin=-lim, vmax=lim, s=150,
                        edgecolors=np.where(finite, "black", "#bbbbbb"), linewidths=0.6)
        for (name, x, y), ok in zip(pos, finite, strict=True):
            ax.annotate(name if ok else f"{name}\n(masked)", (x, y - 0.075), ha="center", va="top", fontsize=6.5,
                        color="black" if ok else "#999999")
        fig.colorbar(sc, ax=ax, shrink=0.7)
        ax.set_title(title, fontsize=9)
    return fig


def _head(ax) -> None:
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), color="black", lw=1.5)
    ax.plot([-0.1, 0, 0.1], [0.995, 1.1, 0.995], color="black", lw=1.5)  # nose
    for side in (-1, 1):
        ax.plot(side * np.array([0.995, 1.05, 1.07, 1.05, 0.995]), [0.12, 0.1, 0.0, -0.1, -0.12], color="black", lw=1.5)
    ax.set_xlim(-1.2, 1.2)
    ax.set_ylim(-1.15, 1.2)
    ax.set_aspect("equal")
    ax.axis("off")


def channel_map(study: dict[str, Any]) -> tuple[bytes | None, str]:
    """Per-channel predictivity (mean over runs) and its correlation with gain on the scalp, as PNG bytes
    (None when the neuroids have no scalp positions), with how it was drawn (``channel_map_figure``)."""
    made = channel_map_figure(study)
    if made is None:
        return None, "not drawn: the recording's neuroids have no scalp positions"
    fig, drawing = made
    return _png(fig), drawing
