"""The study: across the runs of an experiment, does brain-likeness go with robustness?

For every finished run of an experiment folder (regularizers x strengths x seeds) the study measures

1. **neural predictivity** of the run's model on a recording: features of named layers on the
   recording's images (at the run's data resolution and channels), cross-validated ridge to the
   trial-averaged responses (``brainalign.alignment.predictivity``), Pearson r per neuroid x time bin.
   Results are cached per run in ``<run>/alignment.json`` (keyed by recording, layer, settings and a digest
   of the weights); nothing is ever retrained or re-attacked;
2. **robustness gain** over the baseline (``brainalign.analysis.comparisons.run_gain``): accuracy minus the
   same-seed baseline's (else the mean baseline's), averaged over the high-epsilon range, the upper half
   of the non-zero strengths of the grid (``brainalign.robustness.high_strengths``), as Guo et al. (2024)
   average over "high eps";

and then relates them over runs: Pearson and Spearman correlation, R^2 and bootstrap intervals over
runs (Guo et al. report R^2 0.53-0.61 over 720 models); the same correlation per time bin (with its peak
latency; theirs peaks near 100 ms), per channel and per region; the predictivity time course itself with
its peak latency; and every condition side by side with its controls (``structure_specific_gains``).
Baseline runs are left out of the correlations by default (their gain is 0 by construction).

The result is ``study.json`` in the experiment folder (see ``docs/study.md``).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from brainalign import results
from brainalign.analysis.comparisons import run_gain, structure_specific_gains
from brainalign.analysis.runs import Run, attack_keys, by_condition, find_baseline, headline_attack, load_runs, role
from brainalign.analysis.stats import correlation, mean_ci, nanmean
from brainalign.errors import BrainAlignError, ConfigError, DataError
from brainalign.io import read_json, write_json

ALIGNMENT = "alignment.json"
STUDY = "study.json"
SCHEMA_VERSION = 1
_NAN = float("nan")


# ---- the recording --------------------------------------------------------------------------------

def recording_spec(recording) -> dict[str, Any]:
    """{"name", "path", "options"} from a RecordingConfig, a dict with those keys, or a loader name."""
    if isinstance(recording, str):
        return {"name": recording, "path": None, "options": {}}
    if isinstance(recording, dict):
        unknown = set(recording) - {"name", "path", "options"}
        if "name" not in recording or unknown:
            raise ConfigError(f"recording must have 'name' and optionally 'path' and 'options'; "
                              f"got {sorted(recording)}")
        get = recording.get
    else:
        def get(k, default=None):
            return getattr(recording, k, default)
    path = get("path")
    return {"name": str(get("name")), "path": None if path is None else str(path),
            "options": dict(get("options") or {})}


def load_study_recording(recording):
    """(spec, recording) for a RecordingConfig / dict / loader name (loaded here) or a ``NeuralRecording``
    (used as it is); all-NaN neuroids are dropped and listed in ``attrs['masked_neuroids']``."""
    from brainalign.neural import load_recording, mask_nan_neuroids

    if hasattr(recording, "responses") and hasattr(recording, "stimulus_ids"):
        spec = {"name": recording.attrs.get("source") or "recording", "path": None, "options": {}}
        return spec, mask_nan_neuroids(recording)
    spec = recording_spec(recording)
    return spec, mask_nan_neuroids(load_recording(spec["name"], spec["path"], **spec["options"]))


def recording_fingerprint(rec) -> str:
    """A digest of what the study reads from a recording: stimulus ids, neuroid ids, times and responses."""
    h = hashlib.sha1()
    for part in (rec.stimulus_ids.tolist(), rec.neuroid_meta["id"].tolist(), np.asarray(rec.time_ms).tolist()):
        h.update(json.dumps(part).encode())
    h.update(np.ascontiguousarray(rec.responses).view(np.uint8).reshape(-1))
    return h.hexdigest()[:16]


def check_folds(n_stimuli: int, n_folds: int, where: str) -> None:
    """Fail before any feature is extracted when the stimuli cannot fill the cross-validation folds."""
    if not isinstance(n_folds, int) or n_folds < 2:
        raise ConfigError(f"n_folds must be an integer >= 2; got {n_folds!r}")
    if n_stimuli < n_folds or n_stimuli - math.ceil(n_stimuli / n_folds) < 3:
        raise DataError(f"{where}: {n_stimuli} stimuli are too few for {n_folds}-fold cross-validation "
                        f"(every fold needs a test stimulus and every training set at least 3); use fewer folds")


# ---- predictivity of one run ----------------------------------------------------------------------

def predictivity_grid(features: np.ndarray, feature_ids: Sequence[str], recording, *, n_folds: int = 5,
                      seed: int = 0, ceiling: np.ndarray | None = None) -> dict[str, Any]:
    """Cross-validated predictivity of a recording's trial-averaged responses from one layer's features.

    Args:
        features: (N, D) features of the recording's stimuli.
        feature_ids: the N stimulus ids of the feature rows; they must equal ``recording.stimulus_ids``
            in order (a DataError says where they first differ).
        recording: a ``NeuralRecording``.
        ceiling: optional (neuroid, time) noise ceiling; r is then divided by it.
    Returns:
        {"r": (neuroid, time) nested list (NaN where masked), "normalized": bool, "n_masked_nan",
        "n_masked_constant", "n_stimuli", "n_features", "n_folds", "alpha_at_edge"}.
    """
    from brainalign.alignment.predictivity import predictivity

    targets = recording.average()  # (stimulus, neuroid, time)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # masked targets are counted in the result instead
        res = predictivity(features, targets, n_folds=n_folds, seed=seed, ceiling=ceiling,
                           feature_ids=list(feature_ids), target_ids=recording.stimulus_ids.tolist())
    values = res.r if ceiling is None else res.r_normalized
    return {"r": values.reshape(res.target_shape).tolist(), "normalized": ceiling is not None,
            "n_masked_nan": res.n_masked_nan, "n_masked_constant": res.n_masked_constant,
            "n_stimuli": res.n_stimuli, "n_features": res.n_features, "n_folds": res.n_folds,
            "alpha_at_edge": res.alpha_at_edge}


def _weights_digest(run_dir: Path) -> str:
    if not (run_dir / results.WEIGHTS).is_file():
        raise DataError(f"{run_dir}: no {results.WEIGHTS}; the study needs the trained weights of every run")
    h = hashlib.sha256()
    with open(run_dir / results.WEIGHTS, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _cache_key(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_cache(run_dir: Path) -> dict[str, Any]:
    path = run_dir / ALIGNMENT
    if not path.exists():
        return {"schema_version": SCHEMA_VERSION, "entries": {}}
    try:
        data = read_json(path)
    except BrainAlignError:
        return {"schema_version": SCHEMA_VERSION, "entries": {}}  # a corrupt cache is recomputed, not trusted
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        return {"schema_version": SCHEMA_VERSION, "entries": {}}
    return data


class _Models:
    """Trained models of run folders, with the data set of each config loaded once."""

    def __init__(self):
        self._data: dict[str, Any] = {}

    def describe(self, run_dir: Path):
        """(config, data splits, layer names) of a run, without building its model."""
        from brainalign.config import parse_config, read_yaml
        from brainalign.data import load_data
        from brainalign.registry import MODELS

        config = parse_config(read_yaml(run_dir / results.CONFIG))
        key = json.dumps(config.data.model_dump(mode="json"), sort_keys=True)
        if key not in self._data:
            self._data[key] = load_data(config.data)
        return config, self._data[key], list(MODELS.info(config.model.name).layers)

    def load(self, run_dir: Path):
        from brainalign.io import load_checkpoint
        from brainalign.models import build_model

        config, data, _ = self.describe(run_dir)
        model = build_model(config.model, data.num_classes, data.in_channels, data.image_size, data.mean, data.std)
        tensors, _ = load_checkpoint(run_dir / results.WEIGHTS)
        model.load_state_dict(tensors)
        return model.eval()


def run_alignment(runs: Sequence[Run], recording, spec: dict[str, Any], layers: Sequence[str] | None, *,
                  n_folds: int = 5, seed: int = 0, ceiling: str | None = None, pool: str = "none",
                  max_dim: int | None = None, batch_size: int = 256, progress: bool = True
                  ) -> tuple[list[str], dict[Path, dict[str, dict[str, Any]]]]:
    """Predictivity grids of every run and layer, from each run's alignment.json where cached.

    Returns the layers used and {run path: {layer: predictivity_grid(...)}}.
    """
    from brainalign.alignment import extract_features

    check_folds(recording.n_stimuli, n_folds, f"recording {spec['name']}")
    fingerprint = recording_fingerprint(recording)
    ceiling_values = None  # computed on first use: a fully cached study does not need it
    models = _Models()
    # every layer must exist in every run's model before anything is computed
    loaded = {}
    common: list[str] | None = None
    for run in runs:
        config, data, names = models.describe(run.path)
        if layers:
            missing = [layer for layer in layers if layer not in names]
            if missing:
                raise ConfigError(f"layer {missing[0]!r} is not a layer of run {run.path.name} "
                                  f"({config.model.name}); valid: {', '.join(names)}")
        common = names if common is None else [n for n in common if n in names]
        loaded[run.path] = (data.image_size, data.in_channels, _weights_digest(run.path))
    chosen = list(layers) if layers else list(common or [])
    if not chosen:
        raise ConfigError("the runs' models share no layer name; choose one with --layer")
    images: dict[tuple[int, int], np.ndarray] = {}
    out: dict[Path, dict[str, dict[str, Any]]] = {}
    bar = tqdm(runs, desc="predictivity", disable=None if progress else True, file=sys.stderr, leave=False)
    for run in bar:
        cache = _read_cache(run.path)
        size, channels, digest = loaded[run.path]
        keys = {}
        for layer in chosen:
            settings = {"recording": spec, "fingerprint": fingerprint, "layer": layer, "n_folds": n_folds,
                        "seed": seed, "ceiling": ceiling, "pool": pool, "max_dim": max_dim, "weights": digest}
            keys[layer] = (_cache_key(settings), settings)
        todo = [layer for layer, (k, _) in keys.items() if k not in cache["entries"]]
        if todo:
            model = models.load(run.path)
            if (size, channels) not in images:
                images[(size, channels)] = recording.load_images(size=size, channels=channels)
            feats = extract_features(model, images[(size, channels)], todo, batch_size=batch_size, pool=pool,
                                     max_dim=max_dim, seed=seed)
            if ceiling and ceiling_values is None:
                ceiling_values = recording.noise_ceiling(ceiling)
            for layer in todo:
                grid = predictivity_grid(feats[layer], recording.stimulus_ids.tolist(), recording, n_folds=n_folds,
                                         seed=seed, ceiling=ceiling_values)
                key, settings = keys[layer]
                cache["entries"][key] = {"settings": settings, **grid}
            write_json(run.path / ALIGNMENT, cache)
        out[run.path] = {layer: cache["entries"][keys[layer][0]] for layer in chosen}
    return chosen, out


# ---- summaries of predictivity grids ----------------------------------------------------------------

def _time_mask(time_ms: np.ndarray, window: Sequence[float] | None) -> np.ndarray:
    if window is None:
        return np.ones(time_ms.shape, dtype=bool)
    start, end = window
    mask = (time_ms >= start) & (time_ms < end)
    if not mask.any():
        raise ConfigError(f"time window [{start}, {end}) ms holds no time bin; the recording spans "
                          f"{time_ms[0]:g}..{time_ms[-1]:g} ms")
    return mask


def summarize_grid(grid: dict[str, Any], time_ms: np.ndarray, regions: Sequence[str],
                   window: Sequence[float] | None = None) -> dict[str, Any]:
    """Scalar predictivity (mean r over neuroids and the time bins of ``window``), time course, per neuroid
    and per region, of one cached predictivity grid."""
    r = np.asarray(grid["r"], dtype=float)  # (neuroid, time)
    mask = _time_mask(time_ms, window)
    per_region = {}
    labels = np.asarray(regions)
    for g in dict.fromkeys(labels.tolist()):
        per_region[str(g)] = float(nanmean(r[labels == g][:, mask]))
    return {"predictivity": float(nanmean(r[:, mask])), "per_time": nanmean(r, axis=0).tolist(),
            "per_neuroid": nanmean(r[:, mask], axis=1).tolist(), "per_region": per_region,
            "n_masked_targets": int(grid["n_masked_nan"]) + int(grid["n_masked_constant"])}


def peak_latency(time_ms: Sequence[float], values: Sequence[float]) -> dict[str, float]:
    """Time of the largest value, and a sub-bin estimate from a parabola through it and its neighbours."""
    t = np.asarray(time_ms, dtype=float)
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).any():
        return {"peak_ms": _NAN, "refined_ms": _NAN, "value": _NAN}
    i = int(np.nanargmax(v))
    refined = t[i]
    if 0 < i < len(v) - 1 and np.isfinite(v[i - 1:i + 2]).all():
        a, b, c = v[i - 1], v[i], v[i + 1]
        den = a - 2 * b + c
        if den < 0:
            refined = t[i] + 0.5 * (a - c) / den * (t[i + 1] - t[i - 1]) / 2
    return {"peak_ms": float(t[i]), "refined_ms": float(refined), "value": float(v[i])}


def _pearson_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each column of x (runs, K) with y (runs,); NaN where undefined."""
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    out = np.full(x.shape[1], np.nan)
    if len(y) < 3 or np.ptp(y) == 0:
        return out
    for j in range(x.shape[1]):
        col = x[:, j]
        ok = np.isfinite(col)
        if ok.sum() >= 3 and np.ptp(col[ok]) > 0:
            out[j] = float(np.corrcoef(col[ok], y[ok])[0, 1])
    return out


# ---- the study ---------------------------------------------------------------------------------------

def run_study(experiment_dir: str | Path, recording, layers: Sequence[str] | None = None, *,
              baseline: str | None = None, attack: str | None = None, n_folds: int = 5, seed: int = 0,
              ceiling: str | None = None, time_window_ms: Sequence[float] | None = None, pool: str = "none",
              max_dim: int | None = None, include_baselines: bool = False, n_boot: int = 2000,
              level: float = 0.95, batch_size: int = 256, progress: bool = True) -> dict[str, Any]:
    """Relate neural predictivity to robustness gain over the finished runs of an experiment folder.

    Args:
        experiment_dir: the folder holding the run folders (``runs/<experiment>``).
        recording: RecordingConfig, {"name", "path", "options"}, a loader name ("sim_eeg") or a loaded
            ``NeuralRecording``.
        layers: layers to measure (default: every layer the runs' models share); with several, the one
            with the highest predictivity averaged over runs is the study's (all are kept in study.json).
        baseline: the baseline condition (default: "baseline", else the only plain condition).
        attack: the attack key the correlations use (default: PGD-Linf with the most steps); gains are
            computed for every attack.
        n_folds, seed: cross-validation folds and their shuffling seed.
        ceiling: a noise-ceiling method of the recording ("splithalf", ...) to divide r by; default none.
        time_window_ms: [start, end) of the time bins averaged into a run's scalar predictivity and the
            per-channel values (default: all bins). The time course always covers every bin.
        pool, max_dim: feature reduction (see ``brainalign.alignment.extract_features``).
        include_baselines: put baseline runs (gain 0 against themselves) into the correlations.
        n_boot, level: bootstrap draws and interval level of the correlations.
    Returns:
        The content of ``study.json`` (also written there).
    Raises:
        DataError: no finished runs, too few stimuli for the folds, misaligned stimulus ids, a recording
            without images. ConfigError: unknown layer or option.
    """
    experiment_dir = Path(experiment_dir)
    runs = load_runs(experiment_dir)
    spec, rec = load_study_recording(recording)
    time_ms = np.asarray(rec.time_ms, dtype=float)
    _time_mask(time_ms, time_window_ms)
    meta = rec.neuroid_meta
    regions = [g or "unlabelled" for g in meta["region"].tolist()]
    chosen, grids = run_alignment(runs, rec, spec, layers, n_folds=n_folds, seed=seed, ceiling=ceiling, pool=pool,
                                  max_dim=max_dim, batch_size=batch_size, progress=progress)

    summaries = {p: {layer: summarize_grid(g, time_ms, regions, time_window_ms) for layer, g in by_layer.items()}
                 for p, by_layer in grids.items()}
    layer_means = {layer: float(nanmean([summaries[r.path][layer]["predictivity"] for r in runs]))
                   for layer in chosen}
    finite = {k: v for k, v in layer_means.items() if np.isfinite(v)}
    layer = max(finite, key=finite.get) if finite else chosen[0]

    base = find_baseline(runs, baseline)
    groups = by_condition(runs)
    baselines = groups.get(base, []) if base else []
    keys = attack_keys(runs)
    primary = headline_attack(runs, attack)
    notes = []
    if base is None:
        notes.append("no baseline condition: gains and correlations not computed")

    run_rows = []
    for run in runs:
        s = summaries[run.path][layer]
        gains = {k: run_gain(run, baselines, k) if base else {"gain": _NAN, "eps": [], "baseline": "none"}
                 for k in keys}
        run_rows.append({
            "run": str(run.path.relative_to(experiment_dir)), "name": run.name, "seed": run.seed,
            "role": role(run, base), "clean_accuracy": run.result.get("clean_accuracy"),
            "predictivity": s["predictivity"],
            "by_layer": {k: summaries[run.path][k]["predictivity"] for k in chosen},
            "per_time": s["per_time"], "per_neuroid": s["per_neuroid"], "per_region": s["per_region"],
            "n_masked_targets": s["n_masked_targets"], "gains": gains,
        })

    # the predictivity time course (every run) and its peak
    per_time = np.array([row["per_time"] for row in run_rows])  # (runs, time)
    band = [mean_ci(per_time[:, j].tolist(), level) for j in range(per_time.shape[1])]
    course_mean = [b["mean"] for b in band]
    time_course = {"time_ms": time_ms.tolist(), "mean": course_mean, "low": [b["low"] for b in band],
                   "high": [b["high"] for b in band], **peak_latency(time_ms, course_mean)}

    # correlations over runs
    included = [row for row in run_rows if include_baselines or row["role"] != "baseline"]
    corr: dict[str, Any] = {"attack": primary, "n_runs": len(included), "computed": False}
    by_attack = {}
    if base is not None and primary is not None:
        gain = np.array([row["gains"][primary]["gain"] for row in included], dtype=float)
        pred = np.array([row["predictivity"] for row in included], dtype=float)
        overall = correlation(pred, gain, n_boot=n_boot, level=level, seed=seed)
        corr.update(computed=overall["n"] >= 3 and np.isfinite(overall["pearson"]["r"]), overall=overall)
        if not corr["computed"]:
            corr["reason"] = (f"{overall['n']} runs with both a gain and a predictivity; at least 3 with "
                              f"non-constant values are needed")
        r_time = _pearson_columns(np.array([row["per_time"] for row in included]).reshape(len(included), -1), gain)
        corr["per_time"] = {"time_ms": time_ms.tolist(), "pearson": r_time.tolist(),
                            **peak_latency(time_ms, r_time)}
        r_neur = _pearson_columns(np.array([row["per_neuroid"] for row in included]).reshape(len(included), -1),
                                  gain)
        corr["per_neuroid"] = {"names": meta["name"].tolist(), "regions": regions, "pearson": r_neur.tolist()}
        corr["per_region"] = {g: correlation([row["per_region"][g] for row in included], gain, n_boot=n_boot,
                                             level=level, seed=seed) for g in dict.fromkeys(regions)}
        for k in keys:
            g_k = np.array([row["gains"][k]["gain"] for row in included], dtype=float)
            by_attack[k] = correlation(pred, g_k, n_boot=n_boot, level=level, seed=seed)
    elif primary is None:
        notes.append("no run has robustness results: gains and correlations not computed")

    conditions = {}
    for name in groups:
        rows = [row for row in run_rows if row["name"] == name]
        conditions[name] = {
            "role": rows[0]["role"], "n_seeds": len(rows), "seeds": [row["seed"] for row in rows],
            "predictivity": mean_ci([row["predictivity"] for row in rows], level),
            "gain": mean_ci([row["gains"][primary]["gain"] for row in rows], level) if primary else mean_ci([]),
            "clean_accuracy": mean_ci([row["clean_accuracy"] for row in rows if row["clean_accuracy"] is not None],
                                      level),
        }
    try:
        structure = structure_specific_gains(runs, attack=primary, baseline=base, level=level, seed=seed) \
            if primary else {"rows": []}
    except DataError as exc:
        structure = {"rows": [], "reason": str(exc)}

    params = rec.attrs.get("parameters") or {}
    study = {
        "schema_version": SCHEMA_VERSION,
        "experiment": experiment_dir.name,
        "recording": {
            **spec, "source": rec.attrs.get("source", ""), "simulated": bool(rec.attrs.get("simulated")),
            "n_stimuli": rec.n_stimuli, "n_neuroids": rec.n_neuroids, "n_times": rec.n_times,
            "neuroids": [{"name": n, "region": g, "x": _float(x), "y": _float(y)} for n, g, x, y in
                         zip(meta["name"], regions, meta["x"], meta["y"], strict=True)],
            "masked_neuroids": list(rec.attrs.get("masked_neuroids", [])),
            "n_masked_targets": int(max(row["n_masked_targets"] for row in run_rows)),
            "simulated_peak_latency_ms": params.get("peak_latency_ms") if rec.attrs.get("simulated") else None,
        },
        "settings": {
            "layers": chosen, "layer": layer, "layer_selection": "given" if len(chosen) == 1 else
            "highest predictivity averaged over runs", "n_folds": n_folds, "seed": seed, "ceiling": ceiling,
            "pool": pool, "max_dim": max_dim, "time_window_ms": None if time_window_ms is None else
            list(time_window_ms), "baseline": base, "attack": primary, "include_baselines": include_baselines,
            "high_eps": "upper half of the non-zero strengths of each attack's grid", "n_boot": n_boot, "level": level,
            "predictivity": "normalized r (r / noise ceiling)" if ceiling else "Pearson r, cross-validated ridge",
        },
        "layers": layer_means,
        "runs": run_rows,
        "time_course": time_course,
        "correlation": corr,
        "by_attack": by_attack,
        "conditions": conditions,
        "structure_specific": structure,
        "notes": notes,
    }
    write_json(experiment_dir / STUDY, study)
    return read_json(experiment_dir / STUDY)


def format_study(study: dict[str, Any]) -> str:
    """A few lines summarising a study for the terminal."""
    rec, s, corr, tc = study["recording"], study["settings"], study["correlation"], study["time_course"]
    sim = " (SIMULATED)" if rec["simulated"] else ""
    lines = [f"study of {len(study['runs'])} runs on {rec['name']}{sim}, layer {s['layer']}, attack {s['attack']}"]
    peak = f"predictivity peaks at {tc['peak_ms']:g} ms" if tc.get("peak_ms") is not None else "no time course"
    if rec.get("simulated_peak_latency_ms") is not None:
        peak += f" (simulated peak {rec['simulated_peak_latency_ms']:g} ms)"
    lines.append(peak)
    if corr.get("computed"):
        o = corr["overall"]
        lines.append(f"gain vs predictivity over {o['n']} runs: Pearson r = {o['pearson']['r']:.2f}, "
                     f"Spearman rho = {o['spearman']['r']:.2f}, R^2 = {o['r2']['value']:.2f}")
    else:
        lines.append(f"gain vs predictivity: not computed ({corr.get('reason') or '; '.join(study['notes'])})")
    return "\n".join(lines)


def _float(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
