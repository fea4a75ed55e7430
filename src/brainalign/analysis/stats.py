"""Small, pure statistics helpers: confidence intervals, paired tests, corrections, effect sizes.

Everything here takes plain arrays and returns plain dicts of floats (NaN where undefined, written as
null in JSON), so that study.json and report.json can hold the results as they are.

- ``mean_ci``: mean and Student-t interval over independent values (seeds).
- ``mcnemar``: exact McNemar test (and its mid-p variant) on paired per-example outcomes.
- ``paired_bootstrap``: difference of two accuracies on the same examples, with a percentile interval
  from resampling the examples (jointly for both arms).
- ``holm``, ``benjamini_hochberg``, ``adjust_pvalues``: multiple-comparison corrections.
- ``cohens_h``: effect size of a difference between two proportions.
- ``correlation``: Pearson and Spearman r, R^2, with percentile bootstrap intervals over the pairs.
- ``high_eps_gain``: the gain over the "high-epsilon" range of a strength grid (Guo et al. 2024).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from brainalign.errors import ConfigError, DataError

_NAN = float("nan")


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean and Student-t confidence interval over independent values (e.g. seeds).

    With one value the interval is undefined (NaN bounds, written as null in JSON).
    """
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": 1}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def nanmean(values, axis=None):
    """Mean ignoring NaN; NaN (without a warning) where nothing is finite."""
    x = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmean(x, axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def _paired_flags(base, other) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(base).astype(bool)
    b = np.asarray(other).astype(bool)
    if a.shape != b.shape:
        raise DataError(f"paired outcomes must cover the same examples; got shapes {a.shape} and {b.shape}")
    return a.reshape(-1), b.reshape(-1)


def mcnemar_p(n_base_only: int, n_other_only: int) -> tuple[float, float]:
    """Exact and mid-p two-sided McNemar p-values from the two discordant counts (see ``mcnemar``)."""
    n_disc = n_base_only + n_other_only
    if n_disc == 0:
        return 1.0, 1.0
    k = min(n_base_only, n_other_only)
    p_exact = min(1.0, 2.0 * float(stats.binom.cdf(k, n_disc, 0.5)))
    p_mid = 1.0 if n_base_only == n_other_only else p_exact - float(stats.binom.pmf(k, n_disc, 0.5))
    return p_exact, p_mid


def mcnemar(base, other) -> dict[str, float]:
    """Exact McNemar test of paired binary outcomes (1 = correct) of two models on the same examples.

    Only discordant pairs carry information: b = base right and other wrong, c = other right and base
    wrong. Under H0 (both models equally accurate) c ~ Binomial(b + c, 1/2), so with k = min(b, c)

        p_exact = min(1, 2 P(X <= k)),      p_midp = p_exact - P(X = k)   (when b != c; 1 when b == c)

    The mid-p version (Fagerland, Lydersen & Laake 2013, BMC Med Res Methodol 13:91) is less
    conservative and keeps the nominal level closely in their simulations.

    Args:
        base, other: (n,) boolean or 0/1 outcomes per example, in the same example order.
    Returns:
        n (pairs), n_base_only (b), n_other_only (c), p_exact, p_midp (1 when there is no discordant pair).
    """
    a, b = _paired_flags(base, other)
    n_base_only = int((a & ~b).sum())
    n_other_only = int((~a & b).sum())
    p_exact, p_mid = mcnemar_p(n_base_only, n_other_only)
    return {"n": int(a.size), "n_base_only": n_base_only, "n_other_only": n_other_only,
            "p_exact": p_exact, "p_midp": p_mid}


def pooled_mcnemar(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """McNemar over several paired sets (e.g. one per seed), pooling their discordant counts.

    Under H0 every discordant pair is a fair coin whichever set it comes from, so b and c add up.
    """
    counts = [mcnemar(a, b) for a, b in pairs]
    if not counts:
        raise DataError("pooled_mcnemar needs at least one paired set")
    b = sum(c["n_base_only"] for c in counts)
    c = sum(c["n_other_only"] for c in counts)
    p_exact, p_mid = mcnemar_p(b, c)
    return {"n": sum(x["n"] for x in counts), "n_base_only": b, "n_other_only": c, "p_exact": p_exact,
            "p_midp": p_mid}


def paired_bootstrap(base, other, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Difference of mean outcomes (other - base) on the same examples, with a paired bootstrap interval.

    Examples are resampled with replacement, the same draw for both arms, so the interval reflects which
    test examples happened to be drawn and nothing else (not the training seed). ``base`` and ``other``
    may be (n,) or (k, n): k paired repetitions (e.g. seeds) over the same n examples, resampled jointly
    by example; the statistic is then the mean over all k x n differences.

    Returns:
        diff, low, high (percentile interval), n (examples), n_boot, p_boot (two-sided bootstrap p-value
        for diff = 0: twice the smaller share of resampled differences on either side of 0, capped at 1).
    """
    a = np.asarray(base, dtype=float)
    b = np.asarray(other, dtype=float)
    if a.shape != b.shape:
        raise DataError(f"paired outcomes must cover the same examples; got shapes {a.shape} and {b.shape}")
    if a.ndim not in (1, 2) or a.shape[-1] == 0:
        raise DataError(f"paired_bootstrap needs (n,) or (k, n) outcomes with n > 0; got shape {a.shape}")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
    d = (b - a).reshape(-1, a.shape[-1]).mean(0)  # (n,) per-example difference, averaged over repetitions
    n = d.size
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        boots[start:start + m] = d[rng.integers(0, n, size=(m, n))].mean(1)
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    p = min(1.0, 2 * min(float((boots <= 0).mean()), float((boots >= 0).mean())))
    return {"diff": float(d.mean()), "low": float(low), "high": float(high), "n": int(n), "n_boot": int(n_boot),
            "p_boot": p}


def _finite_order(p) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=float).reshape(-1)
    if np.any((p < 0) | (p > 1)):
        raise DataError(f"p-values must lie in [0, 1]; got {p[(p < 0) | (p > 1)][:3].tolist()}")
    idx = np.flatnonzero(np.isfinite(p))
    return p, idx[np.argsort(p[idx], kind="stable")]


def holm(pvalues) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; NaN entries stay NaN and do not count in the family.

    With the m finite p-values sorted, p_(1) <= ... <= p_(m):
    adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). Controls the family-wise error rate.
    """
    p, order = _finite_order(pvalues)
    out = np.full(p.shape, np.nan)
    m = order.size
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted p-values (q-values); NaN entries stay NaN.

    adj_(i) = min_{j >= i} min(1, m p_(j) / j). Controls the false discovery rate for independent or
    positively dependent tests.
    """
    p, order = _finite_order(pvalues)
    out = np.full(p.shape, np.nan)
    m = order.size
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, m * p[i] / (rank + 1))
        out[i] = min(1.0, running)
    return out


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg, "none": lambda p: np.asarray(p, dtype=float).copy()}


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """Adjusted p-values by ``method``: "holm" (family-wise error), "bh" (false discovery rate) or "none"."""
    if method not in CORRECTIONS:
        raise ConfigError(f"unknown correction {method!r}; valid: {', '.join(CORRECTIONS)}")
    return CORRECTIONS[method](pvalues)


def cohens_h(p_other: float, p_base: float) -> float:
    """Cohen's h = 2 asin(sqrt(p_other)) - 2 asin(sqrt(p_base)): 0.2 small, 0.5 medium, 0.8 large."""
    if not (0 <= p_other <= 1 and 0 <= p_base <= 1):
        return _NAN
    return 2 * math.asin(math.sqrt(p_other)) - 2 * math.asin(math.sqrt(p_base))


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r per row of (B, n) arrays; NaN where either row is constant."""
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    den = np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc * yc).sum(-1) / np.where(den > 0, den, 1), np.nan)


def _ranks(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, axis=-1)


def _interval(boots: np.ndarray, level: float) -> tuple[float, float]:
    boots = boots[np.isfinite(boots)]
    if boots.size < 10:
        return _NAN, _NAN
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return float(low), float(high)


def correlation(x, y, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Pearson and Spearman correlation of paired values, R^2, and percentile bootstrap intervals.

    Pairs with a non-finite value are dropped (``n`` counts the rest). Intervals come from resampling
    the pairs with replacement (``n_boot`` draws; draws in which either side is constant are skipped).
    R^2 is Pearson r squared (the variance in y explained by a line in x); its interval is the
    percentile interval of the bootstrapped r^2, not the square of r's bounds.

    Returns:
        {"n", "pearson": {"r", "low", "high", "p"}, "spearman": {...}, "r2": {"value", "low", "high"}};
        values are NaN with fewer than 3 pairs or a constant side.
    """
    xa = np.asarray(x, dtype=float).reshape(-1)
    ya = np.asarray(y, dtype=float).reshape(-1)
    if xa.shape != ya.shape:
        raise DataError(f"correlation needs paired values; got {xa.size} and {ya.size}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    empty = {"r": _NAN, "low": _NAN, "high": _NAN, "p": _NAN}
    out = {"n": n, "pearson": dict(empty), "spearman": dict(empty), "r2": {"value": _NAN, "low": _NAN, "high": _NAN}}
    if n < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return out
    pr = stats.pearsonr(xa, ya)
    sr = stats.spearmanr(xa, ya)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    bx, by = xa[idx], ya[idx]
    boot_p = _pearson_rows(bx, by)
    boot_s = _pearson_rows(_ranks(bx), _ranks(by))
    out["pearson"] = {"r": float(pr.statistic), **dict(zip(("low", "high"), _interval(boot_p, level), strict=True)),
                      "p": float(pr.pvalue)}
    out["spearman"] = {"r": float(sr.statistic), **dict(zip(("low", "high"), _interval(boot_s, level), strict=True)),
                       "p": float(sr.pvalue)}
    low, high = _interval(boot_p**2, level)
    out["r2"] = {"value": float(pr.statistic) ** 2, "low": low, "high": high}
    return out


def high_eps_gain(eps: Sequence[float], accuracy: Sequence[float], base_eps: Sequence[float],
                  base_accuracy: Sequence[float]) -> dict:
    """Gain = mean over the high-epsilon range of (accuracy - baseline accuracy), as Guo et al. (2024).

    The range is ``brainalign.robustness.high_strengths`` of the strengths both grids share: the upper half
    of the non-zero strengths (8 strengths [0 .. 0.3] -> the top 4; [0, 0.1] -> [0.1]).

    Returns:
        {"gain", "eps" (the strengths averaged over), "accuracy", "baseline_accuracy" (their means there)}.
    """
    acc = {float(e): float(a) for e, a in zip(eps, accuracy, strict=True) if a is not None}
    base = {float(e): float(a) for e, a in zip(base_eps, base_accuracy, strict=True) if a is not None}
    from brainalign.robustness.metrics import high_strengths

    common = sorted(set(acc) & set(base))
    if not any(e > 0 for e in common):
        return {"gain": _NAN, "eps": [], "accuracy": _NAN, "baseline_accuracy": _NAN}
    high = high_strengths(common)
    a = float(np.mean([acc[e] for e in high]))
    b = float(np.mean([base[e] for e in high]))
    return {"gain": a - b, "eps": high, "accuracy": a, "baseline_accuracy": b}
