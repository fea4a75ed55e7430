"""The study: across the runs of an experiment, does brain-likeness go with robustness?

For every finished run of an experiment folder (regularizers x strengths x seeds) the study measures

1. **neural predictivity** of the run's model on a recording: features of named layers on the
   recording's images (at the run's data resolution and channels), cross-validated ridge to the
   trial-averaged responses (``brainalign.alignment.predictivity``), Pearson r per neuroid x time bin.
   Results are cached per run in ``<run>/alignment.json`` (keyed by recording, layer, settings and a digest
   of the weights; ``align_run`` fills one run's cache as it finishes, as the demo's workers do); nothing is
   ever retrained or re-attacked;
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
from brainalign.analysis.stats import (
    correlation,
    hierarchical_bootstrap,
    mean_ci,
    mixed_model,
    nanmean,
    partial_correlation,
    pearson_rows,
)
from brainalign.errors import BrainAlignError, ConfigError, DataError
from brainalign.io import read_json, write_json

ALIGNMENT = "alignment.json"
STUDY = "study.json"
SCHEMA_VERSION = 2
# The stated window rule: predictivity is read in 70-170 ms after stimulus onset, the window Majaj et al.
# (2015) average IT over and where THINGS-EEG2 encoding accuracy and Guo et al.'s per-time link peak
# (near 100 ms). Chosen before any run is measured; never pre-stimulus.
DEFAULT_WINDOW_MS = (70.0, 170.0)
CEILING_PEAK_HALF_WIDTH_MS = 50.0
DEFAULT_CEILING = "spearman_brown"
# ceiling methods that return a reliability or a share of variance (their square root bounds r); the
# others ("splithalf", "oracle") are correlations already
CEILING_AS_RELIABILITY = ("spearman_brown", "ncsnr", "fev")
# A run "did not learn" when its clean accuracy is below half the baseline's mean clean accuracy, or below
# chance + LEARN_MARGIN; such runs, and runs that failed a robustness self-check, leave the population.
LEARN_FRACTION_OF_BASELINE = 0.5
LEARN_MARGIN = 0.1
POPULATION_ROLES = ("regularizer", "control", "other")
# The per-run alignment settings that key a run's alignment.json entries: ``run_study``'s defaults and
# ``align_run``'s, defined here once, so that a run aligned as it finishes is found by the study later.
DEFAULT_N_FOLDS = 5
DEFAULT_SEED = 0
DEFAULT_POOL = "none"
DEFAULT_MAX_DIM: int | None = None
DEFAULT_BATCH_SIZE = 256
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
                  n_folds: int = DEFAULT_N_FOLDS, seed: int = DEFAULT_SEED, ceiling: str | None = None,
                  pool: str = DEFAULT_POOL, max_dim: int | None = DEFAULT_MAX_DIM,
                  batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True, fingerprint: str | None = None,
                  models: _Models | None = None) -> tuple[list[str], dict[Path, dict[str, dict[str, Any]]]]:
    """Predictivity grids of every run and layer, from each run's alignment.json where cached.

    ``fingerprint`` (``recording_fingerprint(recording)``) and ``models`` (data sets already loaded) may be
    passed in by a caller that aligns run after run. Returns the layers used and
    {run path: {layer: predictivity_grid(...)}}.
    """
    from brainalign.alignment import extract_features

    check_folds(recording.n_stimuli, n_folds, f"recording {spec['name']}")
    fingerprint = fingerprint or recording_fingerprint(recording)
    ceiling_values = None  # computed on first use: a fully cached study does not need it
    models = models or _Models()
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


# Recordings of align_run, per process (a demo worker aligns run after run): spec -> (spec, recording,
# fingerprint); and the data sets of the runs' configs.
_PROCESS_RECORDINGS: dict[str, tuple[dict[str, Any], Any, str]] = {}
_PROCESS_MODELS = _Models()


def _process_recording(recording) -> tuple[dict[str, Any], Any, str]:
    """(spec, recording, fingerprint), loaded once per process for a spec; a loaded recording as it is."""
    if hasattr(recording, "responses") and hasattr(recording, "stimulus_ids"):
        spec, rec = load_study_recording(recording)
        return spec, rec, recording_fingerprint(rec)
    key = json.dumps(recording_spec(recording), sort_keys=True, default=str)
    if key not in _PROCESS_RECORDINGS:
        spec, rec = load_study_recording(recording)
        _PROCESS_RECORDINGS[key] = (spec, rec, recording_fingerprint(rec))
    return _PROCESS_RECORDINGS[key]


def align_run(run_dir: str | Path, recording, layers: Sequence[str], *, n_folds: int = DEFAULT_N_FOLDS,
              seed: int = DEFAULT_SEED, pool: str = DEFAULT_POOL, max_dim: int | None = DEFAULT_MAX_DIM,
              batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, dict[str, Any]]:
    """Compute and cache one finished run folder's predictivity, as ``run_study`` will look it up.

    The grids are stored in ``<run>/alignment.json`` under the same key (recording, its fingerprint, layer,
    settings, weights digest) that ``run_study`` with the same recording, layers and settings reads, so a
    study over runs aligned this way only aggregates. Meant for the process that just trained the run (the
    demo's workers): the recording is loaded once per process and spec.

    Args:
        run_dir: a finished run folder (result.json and weights).
        recording: as ``run_study``'s (a RecordingConfig, a {"name", "path", "options"} dict, a loader name
            or a loaded ``NeuralRecording``).
        layers: the layers to measure (every one must be a layer of the run's model).
        n_folds, seed, pool, max_dim, batch_size: as ``run_study``'s, with its defaults.
    Returns:
        {layer: predictivity_grid(...) with its "settings"}, the run's cache entries.
    """
    from brainalign.analysis.runs import Run

    run_dir = Path(run_dir)
    spec, rec, fingerprint = _process_recording(recording)
    _, grids = _study_alignment([Run(run_dir, results.read_result(run_dir))], rec, spec, layers, n_folds=n_folds,
                                seed=seed, pool=pool, max_dim=max_dim, batch_size=batch_size, progress=False,
                                fingerprint=fingerprint, models=_PROCESS_MODELS)
    return grids[run_dir]


def _study_alignment(runs: Sequence[Run], rec, spec: dict[str, Any], layers: Sequence[str] | None,
                     **settings: Any) -> tuple[list[str], dict[Path, dict[str, dict[str, Any]]]]:
    """The study's predictivity grids: raw r (no ceiling; the study divides window means by it later)."""
    return run_alignment(runs, rec, spec, layers, ceiling=None, **settings)


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


# ---- population, window, ceiling, gains -----------------------------------------------------------------

def choose_window(time_ms: np.ndarray, window: Sequence[float] | None = None, rule: str = "fixed",
                  ceiling_per_time: Sequence[float] | None = None) -> tuple[list[float] | None, str]:
    """The post-stimulus window a run's scalar predictivity is read in, and the rule that chose it.

    ``window`` given: used as it is (it must start at or after 0 ms). Else by ``rule``: "fixed" is
    ``DEFAULT_WINDOW_MS`` (70-170 ms); "ceiling_peak" is +-50 ms around the post-stimulus bin where the noise
    ceiling (mean over channels) peaks. A recording with one time bin (a response window already, e.g.
    sim_it's 70-170 ms counts) is read in that bin (None: every bin).
    """
    if window is not None:
        start, end = float(window[0]), float(window[1])
        if start < 0 or end <= start:
            raise ConfigError(f"time_window_ms must be post-stimulus with 0 <= start < end; got [{start:g}, {end:g}]")
        _time_mask(time_ms, (start, end))
        return [start, end], "given"
    if rule not in ("fixed", "ceiling_peak"):
        raise ConfigError(f"window_rule must be 'fixed' or 'ceiling_peak'; got {rule!r}")
    if len(time_ms) == 1:
        return None, "the recording's only time bin (already a response window)"
    if rule == "fixed":
        _time_mask(time_ms, DEFAULT_WINDOW_MS)
        return list(DEFAULT_WINDOW_MS), f"fixed in advance: {DEFAULT_WINDOW_MS[0]:g}-{DEFAULT_WINDOW_MS[1]:g} ms"
    if ceiling_per_time is None:
        raise ConfigError("window_rule 'ceiling_peak' needs a noise ceiling; set ceiling (e.g. spearman_brown)")
    c = np.where(time_ms >= 0, np.asarray(ceiling_per_time, dtype=float), np.nan)
    peak = float(time_ms[int(np.nanargmax(c))])
    start = max(0.0, peak - CEILING_PEAK_HALF_WIDTH_MS)
    return [start, peak + CEILING_PEAK_HALF_WIDTH_MS], (f"+-{CEILING_PEAK_HALF_WIDTH_MS:g} ms around the noise "
                                                        f"ceiling's post-stimulus peak ({peak:g} ms)")


def learning_floor(baseline_clean: Sequence[float], num_classes: int | None) -> dict[str, Any]:
    """The clean accuracy below which a run counts as not having learned (see ``LEARN_FRACTION_OF_BASELINE``)."""
    parts, rule = [], []
    base = [float(v) for v in baseline_clean if v is not None and np.isfinite(v)]
    if base:
        parts.append(LEARN_FRACTION_OF_BASELINE * float(np.mean(base)))
        rule.append(f"{LEARN_FRACTION_OF_BASELINE:g} x the baseline's mean clean accuracy")
    if num_classes:
        parts.append(1.0 / num_classes + LEARN_MARGIN)
        rule.append(f"chance (1/{num_classes}) + {LEARN_MARGIN:g}")
    return {"floor": max(parts) if parts else None,
            "rule": "clean accuracy below the larger of " + " and ".join(rule) if rule else "no floor (unknown)"}


EXCLUSION_REASONS = ("did not learn", "failed self-checks", "weight 0 (baseline replicate)")


def exclusion(run: Run, floor: float | None) -> str | None:
    """Why a run leaves the population: it did not learn, failed a robustness self-check, or is regularized
    with weight 0 only (a replicate of the baseline, as a sweep's weight-0 arms are); None to keep it."""
    regs = run.regularizers
    if regs and all(float(r.get("weight", 1.0) or 0.0) == 0.0 for r in regs):
        return "weight 0 (baseline replicate)"
    clean = run.result.get("clean_accuracy")
    if floor is not None and (clean is None or float(clean) < floor):
        return "did not learn"
    if run.result.get("reliable") is False:
        return "failed self-checks"
    return None


def headline_gains(runs: Sequence[Run], baselines: Sequence[Run]) -> dict[Path, float] | None:
    """Gain in the one headline robust accuracy (``brainalign.headline``) over the same-seed baseline (else
    the baselines' mean) for every run; None unless every run and a baseline carry the headline."""
    from brainalign.headline import headline_accuracy

    base = {b.seed: headline_accuracy(b) for b in baselines}
    base = {k: v for k, v in base.items() if v is not None}
    acc = {r.path: headline_accuracy(r) for r in runs}
    if not base or any(v is None for v in acc.values()):
        return None
    mean_base = float(np.mean(list(base.values())))
    return {r.path: acc[r.path] - base.get(r.seed, mean_base) for r in runs}


def _pearson(a: np.ndarray) -> np.ndarray:
    """(..., G, [x, y]) -> Pearson r of x and y over the G groups; NaN with fewer than 3 groups."""
    r = pearson_rows(a[..., 0], a[..., 1])
    return r if a.shape[-2] >= 3 else np.full(r.shape, np.nan)


def _partial(a: np.ndarray) -> np.ndarray:
    """(..., G, [x, y, z]) -> partial r of x and y given z over the G groups (the closed form for one
    covariate, equal to ``partial_correlation``); NaN with 4 groups or fewer."""
    rxy, rxz, ryz = (pearson_rows(a[..., i], a[..., j]) for i, j in ((0, 1), (0, 2), (1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (rxy - rxz * ryz) / np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))
    return r if a.shape[-2] > 4 else np.full(r.shape, np.nan)


def condition_level(rows: Sequence[dict[str, Any]], *, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    """The headline estimate: Pearson r of condition means of predictivity and gain, with a hierarchical
    bootstrap interval (conditions, then seeds within them), the partial r controlling for clean accuracy,
    and a MixedLM of gain on predictivity with condition as group."""
    groups: dict[str, list[list[float]]] = {}
    for row in rows:
        vals = [row["predictivity"], row["gain"], row["clean_accuracy"]]
        if all(v is not None and np.isfinite(v) for v in vals):
            groups.setdefault(row["name"], []).append([float(v) for v in vals])
    arrays = [np.array(v) for v in groups.values()]
    names = list(groups)
    means = np.stack([a.mean(0) for a in arrays]) if arrays else np.empty((0, 3))
    out: dict[str, Any] = {"n_conditions": len(arrays), "n_runs": int(sum(len(a) for a in arrays)),
                           "conditions": names, "statistic": "Pearson r of condition means (predictivity, gain)"}
    boot = hierarchical_bootstrap([a[:, :2] for a in arrays], _pearson, n_boot=n_boot, level=level, seed=seed)
    r = boot["estimate"]
    pr = correlation(means[:, 0], means[:, 1], n_boot=n_boot, level=level, seed=seed) if len(arrays) else None
    out["pearson"] = {"r": r, "low": boot["low"], "high": boot["high"], "n_valid_draws": boot["n_valid"],
                      "p": pr["pearson"]["p"] if pr else _NAN, "interval": "hierarchical bootstrap (percentile)"}
    out["r2"] = {"value": r * r if np.isfinite(r) else _NAN}
    out["computed"] = len(arrays) >= 3 and bool(np.isfinite(r))
    if not out["computed"]:
        out["reason"] = f"{len(arrays)} conditions with a finite gain and predictivity; at least 3 are needed"
    part = partial_correlation(means[:, 0], means[:, 1], means[:, 2], level=level) if len(arrays) else {}
    pboot = hierarchical_bootstrap(arrays, _partial, n_boot=n_boot, level=level, seed=seed)
    out["partial_clean"] = {"r": part.get("r", _NAN), "p": part.get("p", _NAN), "low": pboot["low"],
                            "high": pboot["high"], "n": part.get("n", 0),
                            "controls": "clean accuracy (condition means)",
                            "interval": "hierarchical bootstrap (percentile)"}
    flat = [(row["gain"], row["predictivity"], row["name"]) for row in rows
            if row["gain"] is not None and row["predictivity"] is not None
            and np.isfinite(row["gain"]) and np.isfinite(row["predictivity"])]
    out["mixed_model"] = mixed_model([f[0] for f in flat], [f[1] for f in flat], [f[2] for f in flat]) \
        if flat else {"computed": False, "reason": "no run with a gain and a predictivity"}
    return out


def _spread(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Within-condition sd of predictivity (over seeds) per condition, its mean, and the sd of the condition means."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        if row["predictivity"] is not None and np.isfinite(row["predictivity"]):
            groups.setdefault(row["name"], []).append(float(row["predictivity"]))
    within = {k: float(np.std(v, ddof=1)) if len(v) > 1 else _NAN for k, v in groups.items()}
    means = [float(np.mean(v)) for v in groups.values()]
    finite = [v for v in within.values() if np.isfinite(v)]
    return {"within_sd": within, "mean_within_sd": float(np.mean(finite)) if finite else _NAN,
            "between_sd": float(np.std(means, ddof=1)) if len(means) > 1 else _NAN,
            "what": "sd over seeds within each condition, and sd over the condition means"}


# ---- the study ---------------------------------------------------------------------------------------

def run_study(experiment_dir: str | Path, recording, layers: Sequence[str] | None = None, *,
              baseline: str | None = None, attack: str | None = None, n_folds: int = DEFAULT_N_FOLDS,
              seed: int = DEFAULT_SEED, ceiling: str | None = DEFAULT_CEILING,
              time_window_ms: Sequence[float] | None = None, window_rule: str = "fixed", pool: str = DEFAULT_POOL,
              max_dim: int | None = DEFAULT_MAX_DIM, include_baselines: bool = False, n_boot: int = 2000,
              level: float = 0.95, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True) -> dict[str, Any]:
    """Relate neural predictivity to robustness gain over the finished runs of an experiment folder.

    Args:
        experiment_dir: the folder holding the run folders (``runs/<experiment>``).
        recording: RecordingConfig, {"name", "path", "options"}, a loader name ("sim_eeg") or a loaded
            ``NeuralRecording``.
        layers: layers to measure (default: every layer the runs' models share); with several, the one
            with the highest predictivity averaged over runs is the study's (all are kept in study.json).
        baseline: the baseline condition (default: "baseline", else the only plain condition).
        attack: the attack key of the secondary relations when runs lack the headline attacks (default:
            PGD-Linf with the most steps); gains are computed for every attack.
        n_folds, seed: cross-validation folds and their shuffling seed.
        ceiling: the noise-ceiling method (``NeuralRecording.noise_ceiling``) a run's window predictivity is
            divided by; default "spearman_brown" (split-half, Spearman-Brown corrected); None: raw r only.
        time_window_ms: [start, end) post-stimulus window of a run's scalar predictivity and per-channel
            values; default by ``window_rule`` ("fixed": 70-170 ms; "ceiling_peak": +-50 ms around the
            ceiling's peak). The time course always covers every bin, pre-stimulus ones as the null reference.
        pool, max_dim: feature reduction (see ``brainalign.alignment.extract_features``).
        include_baselines: put baseline runs (gain 0 against themselves) into the per-run correlations.
        n_boot, level: bootstrap draws and interval level.
    Returns:
        The content of ``study.json`` (also written there).
    Raises:
        DataError: no finished runs, too few stimuli for the folds, misaligned stimulus ids, a recording
            without images. ConfigError: unknown layer, option, ceiling, or a pre-stimulus window.
    """
    experiment_dir = Path(experiment_dir)
    runs = load_runs(experiment_dir)
    spec, rec = load_study_recording(recording)
    time_ms = np.asarray(rec.time_ms, dtype=float)
    notes = []
    ceiling = None if ceiling in (None, "none") else ceiling
    ceiling_grid = None
    if ceiling is not None:
        if rec.n_reps < 2:
            notes.append("the recording has one repetition per stimulus: no noise ceiling, raw r only")
            ceiling = None
        else:
            ceiling_grid = np.asarray(rec.noise_ceiling(ceiling), dtype=float)  # (neuroid, time)
            if ceiling in CEILING_AS_RELIABILITY:
                # a reliability (share of variance) bounds r at its square root: the r a noise-free model
                # reaches against the trial-averaged responses
                ceiling_grid = np.sqrt(np.clip(ceiling_grid, 0.0, None))
    ceiling_per_time = nanmean(ceiling_grid, axis=0) if ceiling_grid is not None else None
    window, window_why = choose_window(time_ms, time_window_ms, window_rule, ceiling_per_time)
    mask = _time_mask(time_ms, window)
    window_ceiling = float(nanmean(ceiling_grid[:, mask])) if ceiling_grid is not None else None
    meta = rec.neuroid_meta
    regions = [g or "unlabelled" for g in meta["region"].tolist()]
    chosen, grids = _study_alignment(runs, rec, spec, layers, n_folds=n_folds, seed=seed, pool=pool,
                                     max_dim=max_dim, batch_size=batch_size, progress=progress)

    summaries = {p: {layer: summarize_grid(g, time_ms, regions, window) for layer, g in by_layer.items()}
                 for p, by_layer in grids.items()}

    def normalised(raw: float) -> float:
        return raw / window_ceiling if window_ceiling else _NAN

    layer_means = {layer: float(nanmean([summaries[r.path][layer]["predictivity"] for r in runs]))
                   for layer in chosen}
    finite = {k: v for k, v in layer_means.items() if np.isfinite(v)}
    layer = max(finite, key=finite.get) if finite else chosen[0]

    base = find_baseline(runs, baseline)
    groups = by_condition(runs)
    baselines = groups.get(base, []) if base else []
    keys = attack_keys(runs)
    primary = headline_attack(runs, attack)
    if base is None:
        notes.append("no baseline condition: gains and correlations not computed")
    headline = headline_gains(runs, baselines) if base else None
    data_name = str(runs[0].result.get("data", ""))
    if headline is not None:
        from brainalign.headline import describe
        gain_definition = {"source": "headline", **describe(data_name),
                           "what": "headline robust accuracy minus the same-seed baseline's (brainalign.headline)"}
    else:
        gain_definition = {"source": "attack", "attack": primary,
                           "what": "accuracy minus the same-seed baseline's, averaged over the high-eps range "
                                   "(runs lack the headline attacks)"}

    floor = learning_floor([b.result.get("clean_accuracy") for b in baselines], _num_classes(runs))
    run_rows = []
    for run in runs:
        s = summaries[run.path][layer]
        gains = {k: run_gain(run, baselines, k) if base else {"gain": _NAN, "eps": [], "baseline": "none"}
                 for k in keys}
        gain = headline[run.path] if headline is not None else \
            (gains[primary]["gain"] if base and primary else _NAN)
        raw = s["predictivity"]
        run_rows.append({
            "run": str(run.path.relative_to(experiment_dir)), "name": run.name, "seed": run.seed,
            "role": role(run, base), "clean_accuracy": run.result.get("clean_accuracy"),
            "excluded": exclusion(run, floor["floor"]),
            "predictivity": normalised(raw) if window_ceiling else raw,
            "window_predictivity": {"raw": raw, "ceiling_normalized": normalised(raw)},
            "gain": gain,
            "by_layer": {k: summaries[run.path][k]["predictivity"] for k in chosen},
            "per_time": s["per_time"], "per_neuroid": s["per_neuroid"], "per_region": s["per_region"],
            "n_masked_targets": s["n_masked_targets"], "gains": gains,
        })

    # the population: regularized runs and their controls (and other non-baseline, non-defence arms), minus
    # runs that did not learn or failed self-checks; defences stay apart as labelled points
    for row in run_rows:
        if row["role"] == "baseline":
            row["excluded"] = None  # the baseline is the reference, not a population member
    population = [r for r in run_rows if r["role"] in POPULATION_ROLES and r["excluded"] is None]
    excluded = [r for r in run_rows if r["excluded"] is not None]
    defences = [r for r in run_rows if r["role"] == "defence"]
    pop_info = {
        "roles": list(POPULATION_ROLES), "conditions": list(dict.fromkeys(r["name"] for r in population)),
        "n_runs": len(population), "n_excluded": len(excluded),
        "excluded": [{"run": r["run"], "reason": r["excluded"], "clean_accuracy": r["clean_accuracy"]}
                     for r in excluded],
        "n_excluded_by_reason": {k: sum(r["excluded"] == k for r in excluded) for k in EXCLUSION_REASONS},
        "learning_floor": floor,
        "defences": [{"run": r["run"], "name": r["name"], "predictivity": r["predictivity"], "gain": r["gain"],
                      "clean_accuracy": r["clean_accuracy"], "excluded": r["excluded"]} for r in defences],
        "n_baseline_runs": sum(r["role"] == "baseline" for r in run_rows),
        "rule": "regularized runs, their controls and other non-baseline arms; defences apart (never pooled); "
                "runs that did not learn or failed self-checks excluded and counted",
    }

    # the predictivity time course (population runs, else every run) and its peak
    course_rows = population or run_rows
    per_time = np.array([row["per_time"] for row in course_rows])  # (runs, time)
    band = [mean_ci(per_time[:, j].tolist(), level) for j in range(per_time.shape[1])]
    course_mean = [b["mean"] for b in band]
    post = np.where(time_ms >= 0, np.asarray(course_mean, dtype=float), np.nan)
    pre = np.asarray(course_mean, dtype=float)[time_ms < 0]
    time_course = {"time_ms": time_ms.tolist(), "mean": course_mean, "low": [b["low"] for b in band],
                   "high": [b["high"] for b in band], **peak_latency(time_ms, post),
                   "null": {"bins": int(pre.size), "mean": float(nanmean(pre)) if pre.size else _NAN,
                            "sd": float(np.nanstd(pre, ddof=1)) if pre.size > 1 else _NAN,
                            "what": "cross-validated r in the pre-stimulus bins: the null reference"},
                   "ceiling": None if ceiling_per_time is None else list(map(float, ceiling_per_time)),
                   "runs": "population" if population else "every run"}
    per_neuroid = np.array([row["per_neuroid"] for row in course_rows])
    chan = [mean_ci(per_neuroid[:, j].tolist(), level) for j in range(per_neuroid.shape[1])]
    channels = {"names": meta["name"].tolist(), "regions": regions, "mean": [c["mean"] for c in chan],
                "low": [c["low"] for c in chan], "high": [c["high"] for c in chan],
                "what": "window r per channel, mean and t-interval over runs"}

    # relations: the condition-level estimate first, then per-run figures (secondary: seeds are dependent)
    in_pop = {row["run"] for row in population}
    included = [row for row in run_rows if row["run"] in in_pop or (include_baselines and row["role"] == "baseline")]
    corr: dict[str, Any] = {"attack": primary, "gain": gain_definition["source"], "n_runs": len(included),
                            "computed": False, "level": "per run (secondary; runs treated as independent)"}
    by_attack = {}
    cond_level: dict[str, Any] = {"computed": False, "reason": "no baseline or no robustness results"}
    if base is not None and (headline is not None or primary is not None):
        cond_level = condition_level(population, n_boot=n_boot, level=level, seed=seed)
        gain = np.array([row["gain"] for row in included], dtype=float)
        pred = np.array([row["predictivity"] for row in included], dtype=float)
        overall = correlation(pred, gain, n_boot=n_boot, level=level, seed=seed)
        corr.update(computed=overall["n"] >= 3 and np.isfinite(overall["pearson"]["r"]), overall=overall)
        clean = np.array([row["clean_accuracy"] if row["clean_accuracy"] is not None else _NAN
                          for row in included], dtype=float)
        corr["partial_clean"] = {**partial_correlation(pred, gain, clean, level=level),
                                 "controls": "clean accuracy (runs)"}
        if not corr["computed"]:
            corr["reason"] = (f"{overall['n']} runs with both a gain and a predictivity; at least 3 with "
                              f"non-constant values are needed")
        n = len(included)
        r_time = _pearson_columns(np.array([row["per_time"] for row in included]).reshape(n, -1), gain)
        corr["per_time"] = {"time_ms": time_ms.tolist(), "pearson": r_time.tolist(),
                            **peak_latency(time_ms, np.where(time_ms >= 0, r_time, np.nan))}
        r_neur = _pearson_columns(np.array([row["per_neuroid"] for row in included]).reshape(n, -1), gain)
        corr["per_neuroid"] = {"names": meta["name"].tolist(), "regions": regions, "pearson": r_neur.tolist()}
        corr["per_region"] = {g: correlation([row["per_region"][g] for row in included], gain, n_boot=n_boot,
                                             level=level, seed=seed) for g in dict.fromkeys(regions)}
        for k in keys:
            g_k = np.array([row["gains"][k]["gain"] for row in included], dtype=float)
            by_attack[k] = correlation(pred, g_k, n_boot=n_boot, level=level, seed=seed)
    elif primary is None:
        notes.append("no run has robustness results: gains and correlations not computed")

    spread = _spread(population)
    conditions = {}
    for name in groups:
        rows = [row for row in run_rows if row["name"] == name]
        conditions[name] = {
            "role": rows[0]["role"], "n_seeds": len(rows), "seeds": [row["seed"] for row in rows],
            "in_population": any(row["run"] in in_pop for row in rows),
            "n_excluded": sum(row["excluded"] is not None for row in rows),
            "predictivity": mean_ci([row["predictivity"] for row in rows], level),
            "predictivity_raw": mean_ci([row["window_predictivity"]["raw"] for row in rows], level),
            "predictivity_sd_within": spread["within_sd"].get(name, _NAN),
            "gain": mean_ci([row["gain"] for row in rows], level),
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
            "pool": pool, "max_dim": max_dim, "time_window_ms": window, "window_rule": window_why,
            "baseline": base, "attack": primary, "include_baselines": include_baselines,
            "high_eps": "upper half of the non-zero strengths of each attack's grid", "n_boot": n_boot, "level": level,
            "gain": gain_definition,
            "predictivity": ("window r / window noise ceiling (" + ceiling + ", mean over channels and window bins)"
                             if window_ceiling else "window Pearson r, cross-validated ridge (no ceiling)"),
        },
        "ceiling": {"method": ceiling, "window_mean": window_ceiling, "per_time": time_course["ceiling"],
                    "convention": ("r / sqrt(reliability): the split-half reliability, Spearman-Brown corrected to "
                                   "all repetitions, bounds r at its square root" if ceiling in CEILING_AS_RELIABILITY
                                   else "r / ceiling (the method's correlation bound)")}
        if ceiling else None,
        "population": pop_info,
        "condition_level": cond_level,
        "spread": spread,
        "layers": layer_means,
        "runs": run_rows,
        "time_course": time_course,
        "channels": channels,
        "correlation": corr,
        "by_attack": by_attack,
        "conditions": conditions,
        "structure_specific": structure,
        "notes": notes,
    }
    study["findings"] = study_findings(study)
    write_json(experiment_dir / STUDY, study)
    return read_json(experiment_dir / STUDY)


def _num_classes(runs: Sequence[Run]) -> int | None:
    """Classes of the runs' data set, from the first run's flags-free config (None when unknown)."""
    try:
        config, data, _ = _Models().describe(runs[0].path)
    except (BrainAlignError, OSError):
        return None
    return int(data.num_classes)


def _fmt(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def study_findings(study: dict[str, Any]) -> list[str]:
    """The study's results in words, for the report: population, condition-level estimate, mixed model,
    confound control, per-run r (secondary), window and ceiling, spread."""
    pop, cl, s = study["population"], study["condition_level"], study["settings"]
    corr, spread = study["correlation"], study["spread"]
    defs = {d["name"] for d in pop["defences"]}
    lines = [f"Population: {pop['n_runs']} runs in {len(pop['conditions'])} conditions "
             f"({', '.join(pop['roles'])}); {pop['n_excluded']} excluded "
             f"({pop['n_excluded_by_reason']['did not learn']} did not learn: "
             f"{pop['learning_floor']['rule']}"
             + (f" = {pop['learning_floor']['floor']:.3f}" if pop['learning_floor']['floor'] is not None else "")
             + f"; {pop['n_excluded_by_reason']['failed self-checks']} failed self-checks; "
             f"{pop['n_excluded_by_reason']['weight 0 (baseline replicate)']} weight-0 baseline replicates); "
             f"{len(pop['defences'])} defence runs ({', '.join(sorted(defs)) or 'none'}) shown apart, not pooled."]
    window = s["time_window_ms"]
    wtxt = "every bin" if window is None else f"{window[0]:g}-{window[1]:g} ms"
    lines.append(f"Predictivity: cross-validated ridge at layer {s['layer']}, read in {wtxt} ({s['window_rule']}); "
                 + (f"divided by the window's noise ceiling ({s['ceiling']}, {study['ceiling']['window_mean']:.3f})."
                    if study.get("ceiling") and study["ceiling"]["window_mean"] else "no noise ceiling applied.")
                 + f" Gain: {s['gain']['what']}.")
    if cl.get("computed"):
        p = cl["pearson"]
        lines.append(f"Condition level (headline): r = {_fmt(p['r'])} [{_fmt(p['low'])}, {_fmt(p['high'])}] "
                     f"(hierarchical bootstrap: conditions, then seeds), R^2 = {_fmt(cl['r2']['value'])}, over "
                     f"{cl['n_conditions']} condition means ({cl['n_runs']} runs).")
        mm = cl["mixed_model"]
        if mm.get("computed"):
            lines.append(f"Mixed model (gain ~ predictivity, random intercept per condition): slope "
                         f"{_fmt(mm['slope'], 3)} [{_fmt(mm['low'], 3)}, {_fmt(mm['high'], 3)}], "
                         f"p = {_fmt(mm['p'], 3)}.")
        else:
            lines.append(f"Mixed model: not computed ({mm.get('reason')}).")
        pc = cl["partial_clean"]
        survives = (np.isfinite(pc["r"]) and np.isfinite(pc["low"]) and (pc["low"] > 0 or pc["high"] < 0)
                    and np.sign(pc["r"]) == np.sign(p["r"]))
        base_clear = np.isfinite(p["low"]) and (p["low"] > 0 or p["high"] < 0)
        verdict = ("the relation survives control for clean accuracy" if survives and base_clear else
                   "the relation does not survive control for clean accuracy (its interval holds 0)"
                   if base_clear else "with or without that control the interval holds 0: no relation is shown")
        lines.append(f"Controlling for clean accuracy: partial r = {_fmt(pc['r'])} [{_fmt(pc['low'])}, "
                     f"{_fmt(pc['high'])}]; {verdict}.")
    else:
        lines.append(f"Condition-level estimate: not computed ({cl.get('reason')}).")
    if corr.get("computed"):
        o = corr["overall"]["pearson"]
        lines.append(f"Per run (secondary; seeds of a condition are not independent): r = {_fmt(o['r'])} "
                     f"[{_fmt(o['low'])}, {_fmt(o['high'])}] over {corr['overall']['n']} runs.")
    lines.append(f"Spread of predictivity: within conditions (sd over seeds, mean) "
                 f"{_fmt(spread['mean_within_sd'], 4)}, "
                 f"between condition means {_fmt(spread['between_sd'], 4)}"
                 + ("; seed noise exceeds the differences between conditions."
                    if np.isfinite(spread["mean_within_sd"]) and np.isfinite(spread["between_sd"])
                    and spread["mean_within_sd"] > spread["between_sd"] else "."))
    return lines


def format_study(study: dict[str, Any]) -> str:
    """A few lines summarising a study for the terminal."""
    rec, s, tc = study["recording"], study["settings"], study["time_course"]
    sim = " (SIMULATED)" if rec["simulated"] else ""
    lines = [f"study of {len(study['runs'])} runs on {rec['name']}{sim}, layer {s['layer']}, attack {s['attack']}"]
    peak = f"predictivity peaks at {tc['peak_ms']:g} ms" if tc.get("peak_ms") is not None else "no time course"
    if rec.get("simulated_peak_latency_ms") is not None:
        peak += f" (simulated peak {rec['simulated_peak_latency_ms']:g} ms)"
    lines.append(peak)
    lines += study.get("findings") or []
    return "\n".join(lines)


def _float(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
