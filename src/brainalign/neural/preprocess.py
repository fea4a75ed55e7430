"""Preprocessing steps: each takes a ``NeuralRecording`` and returns a new one, logging the step in
``attrs['preprocessing']``. Channel / ROI and time-window selection are methods of the recording
(``select_neuroids``, ``select_time``); splits are ``rec.split(name)`` after ``make_splits``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from brainalign.errors import ConfigError
from brainalign.neural.recording import NeuralRecording


def _drop_truth(rec: NeuralRecording) -> dict:
    return {k: v for k, v in rec.attrs.items() if k != "ground_truth"}


def average_repetitions(rec: NeuralRecording) -> NeuralRecording:
    """Mean over repetitions (NaN-aware): one repetition per stimulus."""
    return rec.derive("average_repetitions", attrs=_drop_truth(rec), responses=rec.average()[:, None],
                      sessions=None)


def window_average(rec: NeuralRecording, start_ms: float, end_ms: float) -> NeuralRecording:
    """Mean over time points in [start_ms, end_ms): one time bin (e.g. 70-170 ms for IT rates)."""
    win = rec.select_time(start_ms, end_ms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        resp = np.nanmean(win.responses, axis=3, keepdims=True)
    attrs = {k: v for k, v in _drop_truth(rec).items() if k != "time_bin_end_ms"}
    attrs["time_bin_end_ms"] = np.array([float(end_ms)])
    return rec.derive(f"window_average({start_ms}, {end_ms})", attrs=attrs, responses=resp,
                      time_ms=np.array([float(start_ms)]))


def zscore_sessions(rec: NeuralRecording) -> NeuralRecording:
    """Z-score each neuroid and time bin over the trials of each session (NSD's standard); one session if
    the recording has no session information."""
    x = rec.responses.astype(np.float64)
    sessions = rec.sessions if rec.sessions is not None else np.zeros(x.shape[:2], dtype=np.int64)
    out = np.full(x.shape, np.nan, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for s in np.unique(sessions[sessions >= 0]):
            idx = sessions == s
            trials = x[idx]  # (trials, N, T)
            sd = np.nanstd(trials, axis=0)
            out[idx] = (trials - np.nanmean(trials, axis=0)) / np.where(sd > 0, sd, np.nan)
    return rec.derive("zscore_sessions", attrs=_drop_truth(rec), responses=out)


def pca(rec: NeuralRecording, n_components: int, fit_split: str | None = None) -> NeuralRecording:
    """Project neuroids onto their first ``n_components`` principal components.

    Fitted on the repetition-averaged responses (stimulus x time samples) of the ``fit_split`` stimuli
    (default all; pass "train" to keep test stimuli out of the fit), centred with the fit mean, and
    applied to every trial. New neuroids are ``pc-000`` ... of kind "component".
    """
    if not 1 <= n_components <= rec.n_neuroids:
        raise ConfigError(f"n_components must be in 1..{rec.n_neuroids}, got {n_components}")
    fit = rec.split(fit_split) if fit_split is not None else rec
    avg = fit.average().transpose(0, 2, 1).reshape(-1, rec.n_neuroids).astype(np.float64)  # (S*T, N)
    avg = avg[np.isfinite(avg).all(axis=1)]
    if avg.shape[0] < 2:
        raise ConfigError("pca needs at least two complete (stimulus, time) samples")
    mean = avg.mean(axis=0)
    _, sv, vt = np.linalg.svd(avg - mean, full_matrices=False)
    comps = vt[:n_components]  # (K, N)
    resp = np.einsum("srnt,kn->srkt", rec.responses.astype(np.float64) - mean[None, None, :, None], comps)
    ratio = (sv ** 2 / (sv ** 2).sum())[:n_components]
    meta = pd.DataFrame({"id": [f"pc-{k:03d}" for k in range(n_components)], "kind": "component",
                         "region": "pca", "explained_variance_ratio": ratio})
    attrs = _drop_truth(rec)
    attrs["pca_components"] = comps
    attrs["pca_mean"] = mean
    return rec.derive(f"pca({n_components}, fit_split={fit_split})", attrs=attrs,
                      responses=resp.astype(np.float32), neuroid_meta=meta)


def make_splits(rec: NeuralRecording, test_fraction: float = 0.2, seed: int = 0, by: str = "stimulus",
                validation_fraction: float = 0.0) -> NeuralRecording:
    """Assign ``split`` = train / validation / test at random under ``seed``.

    ``by="label"`` puts whole labels (concepts) in one split, to test generalisation to new categories.
    """
    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1 - test_fraction:
        raise ConfigError("need 0 < test_fraction < 1 and 0 <= validation_fraction < 1 - test_fraction")
    if by not in ("stimulus", "label"):
        raise ConfigError(f"by must be 'stimulus' or 'label', got {by!r}")
    rng = np.random.default_rng(seed)
    units = rec.stimulus_ids if by == "stimulus" else np.unique(rec.labels)
    order = rng.permutation(len(units))
    n_test = max(1, int(round(test_fraction * len(units))))
    n_val = int(round(validation_fraction * len(units)))
    split_of = {}
    for rank, i in enumerate(order):
        split_of[units[i]] = "test" if rank < n_test else ("validation" if rank < n_test + n_val else "train")
    keys = rec.stimulus_ids if by == "stimulus" else rec.labels
    meta = rec.stimulus_meta.copy()
    meta["split"] = [split_of[k] for k in keys]
    return rec.derive(f"make_splits(test={test_fraction}, by={by}, seed={seed})", stimulus_meta=meta)
