"""Noise ceilings: how well any model could predict responses, given trial-to-trial noise.

All functions take responses shaped (stimulus, repetition, ...) (trailing axes: neuroid, time, ...),
NaN where a repetition is missing, and return one value per trailing element.

- ``splithalf``: THINGS-EEG2 (Gifford et al. 2022, ``05_synthetic_data_analyses/correlation.py``).
  Split the repetitions into halves A and B; lower = r(mean B, mean A), upper = r(mean all, mean A),
  Pearson over stimuli, averaged over splits. The authors draw 100 random splits; when there are no
  more distinct splits than ``n_iter`` we use all of them (the exact expectation, no randomness).
- ``internal_consistency``: Brain-Score's ceiling. Pearson between half-averages, Spearman-Brown
  corrected for the halving, r_sb = 2r / (1 + r), mean over ``n_splits`` random splits.
  Brain-Score then reports the median over neuroids; here the per-neuroid values are returned.
- ``ncsnr`` / ``ncsnr_to_ceiling``: NSD (Allen et al. 2022). Z-score each neuroid over all trials,
  sigma_noise = sqrt(mean over stimuli of the across-repetition variance, ddof=1),
  sigma_signal = sqrt(max(0, 1 - sigma_noise^2)), ncsnr = sigma_signal / sigma_noise;
  NC = ncsnr^2 / (ncsnr^2 + 1/n) for responses averaged over n repetitions (NSD reports 100 x NC, in %).
- ``fev``: fraction of explainable variance (Sinz lab, ``neuralpredictors.measures.np_functions``):
  (Var_total - Var_noise) / Var_total, Var_total over all trials (ddof=1), Var_noise the mean
  per-stimulus variance over repetitions (ddof=1).
- ``oracle_correlation``: jackknife oracle (Sinz lab): Pearson, over all trials, between each trial
  and the mean of the other repetitions of its stimulus.
- ``expected_ceiling``: what each of the above should give for a known signal and noise variance
  (used to check the simulations).
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import NamedTuple

import numpy as np

from brainalign.errors import ConfigError, DataError


class SplitHalfCeiling(NamedTuple):
    lower: np.ndarray
    upper: np.ndarray


def _check(responses: np.ndarray, min_reps: int = 2) -> np.ndarray:
    x = np.asarray(responses, dtype=np.float64)
    if x.ndim < 2:
        raise DataError(f"responses must be (stimulus, repetition, ...), got shape {x.shape}")
    if x.shape[1] < min_reps:
        raise DataError(f"noise ceilings need at least {min_reps} repetitions per stimulus; "
                        f"these responses have {x.shape[1]}")
    return x


def _nanmean(x: np.ndarray, axis) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def pearson(a: np.ndarray, b: np.ndarray, axis: int = 0) -> np.ndarray:
    """Pearson r along ``axis`` using only positions where both are finite; NaN where undefined."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(axis=axis)
    a0 = np.where(ok, a, 0.0)
    b0 = np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = a0.sum(axis=axis, keepdims=True) / np.expand_dims(n, axis)
        mb = b0.sum(axis=axis, keepdims=True) / np.expand_dims(n, axis)
        da = np.where(ok, a - ma, 0.0)
        db = np.where(ok, b - mb, 0.0)
        cov = (da * db).sum(axis=axis)
        r = cov / np.sqrt((da * da).sum(axis=axis) * (db * db).sum(axis=axis))
    return np.where(n >= 3, r, np.nan)


def _splits(n_reps: int, n_iter: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Repetition indices of half B (size n_reps // 2) for each split; half A is the rest."""
    half = n_reps // 2
    if math.comb(n_reps, half) <= n_iter:
        return [np.array(c) for c in itertools.combinations(range(n_reps), half)]
    return [rng.permutation(n_reps)[:half] for _ in range(n_iter)]


def splithalf(responses: np.ndarray, n_iter: int = 100, seed: int = 0) -> SplitHalfCeiling:
    """THINGS-EEG2 split-half noise ceiling, lower and upper bound (see the module docstring).

    Shape:
        responses: (S, R, ...) -> lower, upper: (...)
    """
    x = _check(responses)
    rng = np.random.default_rng(seed)
    mean_all = _nanmean(x, 1)
    lower = np.zeros(x.shape[2:])
    upper = np.zeros(x.shape[2:])
    splits = _splits(x.shape[1], n_iter, rng)
    for b_idx in splits:
        a_idx = np.setdiff1d(np.arange(x.shape[1]), b_idx)
        mean_a = _nanmean(x[:, a_idx], 1)
        mean_b = _nanmean(x[:, b_idx], 1)
        lower += pearson(mean_b, mean_a)
        upper += pearson(mean_all, mean_a)
    return SplitHalfCeiling(lower / len(splits), upper / len(splits))


def spearman_brown(r, n: float = 2.0):
    """Spearman-Brown prophecy: reliability of a measure ``n`` times as long, n r / (1 + (n - 1) r)."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return n * r / (1.0 + (n - 1.0) * r)


def internal_consistency(responses: np.ndarray, n_splits: int = 10, seed: int = 0) -> np.ndarray:
    """Brain-Score internal consistency: split-half Pearson, Spearman-Brown corrected (n=2), mean over splits.

    Shape:
        responses: (S, R, ...) -> (...)
    """
    x = _check(responses)
    rng = np.random.default_rng(seed)
    total = np.zeros(x.shape[2:])
    splits = _splits(x.shape[1], n_splits, rng)
    for b_idx in splits:
        a_idx = np.setdiff1d(np.arange(x.shape[1]), b_idx)
        total += spearman_brown(pearson(_nanmean(x[:, a_idx], 1), _nanmean(x[:, b_idx], 1)), 2.0)
    return total / len(splits)


def ncsnr(responses: np.ndarray) -> np.ndarray:
    """NSD noise-ceiling SNR per neuroid (see the module docstring). Stimuli with < 2 repetitions
    contribute to the z-scoring but not to the noise variance.

    Shape:
        responses: (S, R, ...) -> (...)
    """
    x = _check(responses)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        flat = x.reshape(-1, *x.shape[2:])
        z = (x - np.nanmean(flat, axis=0)) / np.nanstd(flat, axis=0)
        per_stim = np.nanvar(z, axis=1, ddof=1)  # NaN where a stimulus has < 2 repetitions
        noise_sd = np.sqrt(np.nanmean(per_stim, axis=0))
        signal_sd = np.sqrt(np.clip(1.0 - noise_sd ** 2, 0.0, None))
        return signal_sd / noise_sd


def ncsnr_to_ceiling(snr, n: float) -> np.ndarray:
    """NSD noise ceiling for responses averaged over ``n`` repetitions, as a fraction (x100 for NSD's %).

    NC = ncsnr^2 / (ncsnr^2 + 1/n)
    """
    s2 = np.asarray(snr, dtype=np.float64) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return s2 / (s2 + 1.0 / n)


def fev(responses: np.ndarray) -> np.ndarray:
    """Fraction of explainable variance, (Var_total - Var_noise) / Var_total (Sinz lab).

    Shape:
        responses: (S, R, ...) -> (...)
    """
    x = _check(responses)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        total = np.nanvar(x.reshape(-1, *x.shape[2:]), axis=0, ddof=1)
        noise = np.nanmean(np.nanvar(x, axis=1, ddof=1), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total - noise) / total


def oracle_correlation(responses: np.ndarray) -> np.ndarray:
    """Jackknife oracle correlation (Sinz lab): r(trial, mean of the other repetitions) over all trials.

    Shape:
        responses: (S, R, ...) -> (...)
    """
    x = _check(responses)
    valid = np.isfinite(x)
    count = valid.sum(axis=1, keepdims=True)
    total = np.where(valid, x, 0.0).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = np.where(valid & (count >= 2), (total - np.where(valid, x, 0.0)) / (count - 1), np.nan)
    flat = x.reshape(-1, *x.shape[2:])
    return pearson(flat, loo.reshape(-1, *x.shape[2:]), axis=0)


def expected_ceiling(signal_var, noise_var, n_reps: int, method: str) -> np.ndarray:
    """What each ceiling estimates for independent noise of variance ``noise_var`` per trial and a
    stimulus-driven signal of variance ``signal_var`` (over the stimulus set), with ``n_reps`` repetitions.

    s = signal_var, v = noise_var, R = n_reps, halves of R // 2 (B) and R - R // 2 (A):
    splithalf_lower r(B, A) = s / sqrt((s + v/|A|)(s + v/|B|)); splithalf_upper r(all, A) = (s + v/R) /
    sqrt((s + v/R)(s + v/|A|)); spearman_brown = SB(lower); ncsnr = s / (s + v/R); fev = s / (s + v);
    oracle = s / sqrt((s + v)(s + v/(R - 1))).
    """
    s = np.asarray(signal_var, dtype=np.float64)
    v = np.asarray(noise_var, dtype=np.float64)
    r_b = n_reps // 2
    r_a = n_reps - r_b
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = s / np.sqrt((s + v / r_a) * (s + v / r_b))
        table = {
            "splithalf_lower": lower,
            "splithalf_upper": (s + v / n_reps) / np.sqrt((s + v / n_reps) * (s + v / r_a)),
            "spearman_brown": spearman_brown(lower, 2.0),
            "ncsnr": s / (s + v / n_reps),
            "fev": s / (s + v),
            "oracle": s / np.sqrt((s + v) * (s + v / (n_reps - 1))),
        }
    if method not in table:
        raise ConfigError(f"unknown ceiling {method!r}; valid: {', '.join(table)}")
    return table[method]
