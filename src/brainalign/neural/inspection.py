"""``inspect_recording``: what a recording holds (for ``brainalign data inspect``), and ``format_inspection``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from brainalign.errors import BrainAlignError
from brainalign.neural.loading import detect_loader, load_recording
from brainalign.neural.recording import NeuralRecording
from brainalign.registry import NEURAL_LOADERS

_CEILINGS = (("splithalf", {"bound": "lower"}, "split-half lower (THINGS-EEG2)"),
             ("splithalf", {"bound": "upper"}, "split-half upper (THINGS-EEG2)"),
             ("spearman_brown", {}, "internal consistency (Brain-Score)"),
             ("ncsnr", {}, "NSD noise ceiling, all reps averaged"),
             ("fev", {}, "fraction of explainable variance (Sinz lab)"),
             ("oracle", {}, "jackknife oracle correlation (Sinz lab)"))


def resolve_recording(path_or_name, loader: str | None, options: dict) -> tuple[NeuralRecording, str]:
    """The recording a path, loader name or recording object stands for, and the loader's name."""
    if isinstance(path_or_name, NeuralRecording):
        return path_or_name, loader or ""
    text = str(path_or_name)
    if loader is None and not Path(text).exists() and text in NEURAL_LOADERS:
        return load_recording(text, **options), text
    name = loader or detect_loader(text)
    return load_recording(name, path=text, **options), name


def _stats(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"median": float("nan"), "p10": float("nan"), "p90": float("nan")}
    return {"median": float(np.median(v)), "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90))}


def inspect_recording(path_or_name: str | os.PathLike | NeuralRecording, loader: str | None = None, *,
                      ceilings: bool = True, max_stimuli: int = 2000, n_iter: int = 20, **options) -> dict[str, Any]:
    """Load a recording and summarise it as plain data (JSON-friendly).

    Args:
        path_or_name: a data set path (its loader is detected unless ``loader`` is given), a registered
            loader name (simulations), or a ``NeuralRecording``.
        loader: a ``NEURAL_LOADERS`` name.
        ceilings: compute noise-ceiling summaries (on at most ``max_stimuli`` stimuli, ``n_iter`` splits).
        **options: passed to the loader.

    Returns:
        dict with source, loader, simulated, licence, units, preprocessing, stimuli, repetitions,
        neuroids, kinds, subjects, regions, time_bins, splits, labels, images, nan, noise_ceilings.
        Noise ceilings are medians (and 10th/90th percentiles) over neuroids and time bins; for
        time-resolved data also the time bin where the median over neuroids peaks.
    """
    rec, name = resolve_recording(path_or_name, loader, options)
    counts = rec.rep_counts
    nm = rec.neuroid_meta
    t = rec.time_ms
    summary: dict[str, Any] = {
        "source": rec.attrs.get("source", ""), "loader": name, "simulated": bool(rec.attrs["simulated"]),
        "licence": rec.attrs.get("licence", ""), "units": rec.attrs.get("units", ""),
        "preprocessing": list(rec.attrs.get("preprocessing", [])),
        "stimuli": rec.n_stimuli,
        "repetitions": {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())},
        "neuroids": rec.n_neuroids,
        "kinds": {str(k): int(v) for k, v in nm["kind"].value_counts().items()},
        "subjects": sorted(set(nm["subject"]) - {""}),
        "regions": {str(k): int(v) for k, v in nm["region"].replace("", "(none)").value_counts().items()},
        "time_bins": {"n": rec.n_times, "first_ms": float(t[0]), "last_ms": float(t[-1]),
                      "step_ms": float(np.median(np.diff(t))) if t.size > 1 else None},
        "splits": {str(k): int(v) for k, v in rec.stimulus_meta["split"].value_counts().items()},
        "labels": int(rec.stimulus_meta["label"].replace("", np.nan).nunique()),
        "images": rec.images.describe() if rec.images is not None else None,
        "nan": {"masked_neuroids": len(rec.attrs.get("masked_neuroids", [])),
                "masked_ids": list(rec.attrs.get("masked_neuroids", []))[:10],
                "nan_fraction": float(rec.attrs.get("nan_fraction", 0.0))},
        "noise_ceilings": {},
    }
    if ceilings:
        for method, kw, description in _CEILINGS:
            key = method if not kw else f"{method}_{kw['bound']}"
            try:
                values = rec.noise_ceiling(method, n_iter=n_iter, max_stimuli=max_stimuli, **kw)
            except BrainAlignError as exc:
                summary["noise_ceilings"][key] = {"description": description, "unavailable": str(exc)}
                continue
            entry = {"description": description, **_stats(values)}
            if rec.n_times > 1:
                with np.errstate(all="ignore"):
                    per_time = np.nanmedian(np.where(np.isfinite(values), values, np.nan), axis=0)
                if np.isfinite(per_time).any():
                    k = int(np.nanargmax(per_time))
                    entry["peak_time_ms"] = float(t[k])
                    entry["peak_median"] = float(per_time[k])
            summary["noise_ceilings"][key] = entry
    return summary


def format_inspection(info: dict[str, Any]) -> str:
    """Human-readable text for ``inspect_recording``'s dict."""
    lines = []
    sim = "SIMULATED data" if info.get("simulated") else "recorded data"
    lines.append(f"{info.get('source') or info.get('loader')}  ({sim}; loader {info.get('loader') or '-'})")
    lines.append(f"  licence: {info.get('licence')}   units: {info.get('units')}")
    if info.get("preprocessing"):
        lines.append(f"  preprocessing: {'; '.join(info['preprocessing'])}")
    reps = info["repetitions"]
    lines.append(f"  stimuli: {info['stimuli']}   repetitions: {reps['min']}..{reps['max']} (median {reps['median']:g})"
                 f"   labels: {info['labels']}   splits: "
                 + ", ".join(f"{k} {v}" for k, v in info["splits"].items()))
    kinds = ", ".join(f"{v} {k}s" for k, v in info["kinds"].items())
    lines.append(f"  neuroids: {info['neuroids']} ({kinds})"
                 + (f"   subjects: {', '.join(info['subjects'])}" if info.get("subjects") else ""))
    regions = list(info["regions"].items())
    shown = ", ".join(f"{k} {v}" for k, v in regions[:12])
    if len(regions) > 12:
        shown += f", ... ({len(regions)} regions)"
    lines.append(f"  regions: {shown}")
    tb = info["time_bins"]
    step = f" every {tb['step_ms']:g} ms" if tb.get("step_ms") else ""
    lines.append(f"  time: {tb['n']} bin(s), {tb['first_ms']:g}..{tb['last_ms']:g} ms{step}")
    lines.append(f"  images: {info['images'] or 'none attached'}")
    nan = info["nan"]
    masked = f"{nan['masked_neuroids']} all-NaN neuroid(s) masked" + (
        f" ({', '.join(nan['masked_ids'])}{', ...' if nan['masked_neuroids'] > len(nan['masked_ids']) else ''})"
        if nan["masked_neuroids"] else "")
    lines.append(f"  missing values: {masked}; {100 * nan['nan_fraction']:.2f}% NaN in recorded trials (ignored)")
    if info.get("noise_ceilings"):
        lines.append("  noise ceilings (median [p10, p90] over neuroids x time):")
        for key, entry in info["noise_ceilings"].items():
            if "unavailable" in entry:
                lines.append(f"    {key:<18} n/a: {entry['unavailable']}")
                continue
            peak = (f"; peak median {entry['peak_median']:.3f} at {entry['peak_time_ms']:g} ms"
                    if "peak_time_ms" in entry else "")
            lines.append(f"    {key:<18} {entry['median']:.3f} [{entry['p10']:.3f}, {entry['p90']:.3f}]{peak}"
                         f"   {entry['description']}")
    return "\n".join(lines)
