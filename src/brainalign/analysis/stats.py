"""Statistics over runs, from the kept libraries: scipy.stats and statsmodels do the work; this module only
adapts them to plain arrays in, plain dicts of floats out (NaN where undefined, null in JSON).

From the libraries:

- ``mean_ci``: mean and Student-t interval (``scipy.stats.t.interval``) over independent values (seeds).
- ``mcnemar``: exact McNemar test (``statsmodels.stats.contingency_tables.mcnemar(exact=True)``); the mid-p
  variant, which statsmodels lacks, is its exact p minus the binomial point probability.
- ``paired_bootstrap``: difference of two accuracies on the same examples, BCa interval over the examples
  (``scipy.stats.bootstrap``).
- ``holm``, ``benjamini_hochberg``, ``adjust_pvalues``: ``statsmodels.stats.multitest.multipletests``.
- ``correlation``: Pearson r with its Fisher-z interval (``scipy.stats.pearsonr(...).confidence_interval``),
  Spearman rho with a BCa bootstrap interval over pairs, R^2.
- ``mixed_model``: ``statsmodels`` MixedLM, y ~ x with a random intercept per group (condition).

By hand, because neither library has them:

- ``hierarchical_bootstrap``: resample groups (conditions), then members (seeds) within each resampled group.
- ``partial_correlation``: Pearson r of the residuals of x and y after least squares on the covariates, with
  the t-test on n - 2 - k degrees of freedom (tested against the closed form and statsmodels OLS).
- ``cohens_h``, ``high_eps_gain``: one-line formulas.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

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
        return {"mean": _NAN, "low": _NAN, "high": _NAN, "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "low": _NAN, "high": _NAN, "n": 1}
    if np.ptp(x) == 0:
        return {"mean": mean, "low": mean, "high": mean, "n": n}
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=stats.sem(x))
    return {"mean": mean, "low": float(low), "high": float(high), "n": n}


def nanmean(values, axis=None):
    """Mean ignoring NaN; NaN (without a warning) where nothing is finite."""
    x = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmean(x, axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def _flags(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor (correct_flags), on any device
        x = x.detach().cpu()
    return np.asarray(x).astype(bool)


def _paired_flags(base, other) -> tuple[np.ndarray, np.ndarray]:
    a, b = _flags(base), _flags(other)
    if a.shape != b.shape:
        raise DataError(f"paired outcomes must cover the same examples; got shapes {a.shape} and {b.shape}")
    return a.reshape(-1), b.reshape(-1)


def mcnemar_p(n_base_only: int, n_other_only: int) -> tuple[float, float]:
    """Exact and mid-p two-sided McNemar p-values from the two discordant counts (see ``mcnemar``)."""
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    n_disc = n_base_only + n_other_only
    if n_disc == 0:
        return 1.0, 1.0
    p_exact = min(1.0, float(sm_mcnemar([[0, n_base_only], [n_other_only, 0]], exact=True).pvalue))
    if n_base_only == n_other_only:
        return p_exact, 1.0
    return p_exact, p_exact - float(stats.binom.pmf(min(n_base_only, n_other_only), n_disc, 0.5))


def mcnemar(base, other) -> dict[str, float]:
    """Exact McNemar test of paired binary outcomes (1 = correct) of two models on the same examples.

    Only discordant pairs carry information: b = base right and other wrong, c = other right and base
    wrong. Under H0 c ~ Binomial(b + c, 1/2); ``p_exact`` is statsmodels' exact McNemar p-value,
    ``p_midp = p_exact - P(X = min(b, c))`` (1 when b == c), the mid-p version of Fagerland, Lydersen &
    Laake (2013, BMC Med Res Methodol 13:91), less conservative and close to the nominal level.

    Args:
        base, other: (n,) boolean or 0/1 outcomes per example (arrays or torch tensors, e.g.
            ``brainalign.robustness.correct_flags``), in the same example order.
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


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Callable, *, n_boot: int, level: float, seed: int,
               paired: bool = False):
    """scipy.stats.bootstrap with BCa; (low, high, bootstrap distribution), NaN bounds when degenerate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (constant) resamples: NaN bounds, handled by the caller
        res = stats.bootstrap(data, statistic, n_resamples=n_boot, confidence_level=level, method="BCa",
                              paired=paired, vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high), res.bootstrap_distribution


def paired_bootstrap(base, other, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Difference of mean outcomes (other - base) on the same examples, with a BCa bootstrap interval.

    Examples are resampled with replacement (``scipy.stats.bootstrap`` on the per-example differences, so
    both arms get the same draw); the interval reflects which test examples were drawn, not the training
    seed. ``base`` and ``other`` may be (n,) or (k, n): k paired repetitions (e.g. seeds) over the same n
    examples, resampled jointly by example; the statistic is the mean over all k x n differences.

    Returns:
        diff, low, high (BCa interval), n (examples), n_boot, p_boot (two-sided bootstrap p-value for
        diff = 0: twice the smaller share of resampled differences on either side of 0, capped at 1).
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
    diff = float(d.mean())
    if np.ptp(d) == 0:  # every resample gives the same difference
        return {"diff": diff, "low": diff, "high": diff, "n": int(d.size), "n_boot": int(n_boot),
                "p_boot": 1.0 if diff == 0 else 0.0}
    low, high, boots = _bootstrap((d,), lambda x, axis=-1: x.mean(axis=axis), n_boot=n_boot, level=level,
                                  seed=seed)
    p = min(1.0, 2 * min(float((boots <= 0).mean()), float((boots >= 0).mean())))
    return {"diff": diff, "low": low, "high": high, "n": int(d.size), "n_boot": int(n_boot), "p_boot": p}


_MULTITEST = {"holm": "holm", "bh": "fdr_bh"}


def _adjust(pvalues, method: str) -> np.ndarray:
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float).reshape(-1)
    if np.any((p < 0) | (p > 1)):
        raise DataError(f"p-values must lie in [0, 1]; got {p[(p < 0) | (p > 1)][:3].tolist()}")
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)  # NaN entries stay NaN and do not count in the family
    if ok.any():
        out[ok] = multipletests(p[ok], method=method)[1]
    return out


def holm(pvalues) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (statsmodels ``multipletests``, "holm"); controls the
    family-wise error rate. NaN entries stay NaN and do not count in the family."""
    return _adjust(pvalues, "holm")


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted p-values (statsmodels ``multipletests``, "fdr_bh"); controls the
    false discovery rate for independent or positively dependent tests. NaN entries stay NaN."""
    return _adjust(pvalues, "fdr_bh")


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


def pearson_rows(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson r along ``axis`` of two broadcastable arrays; NaN where either side is constant."""
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    y = np.moveaxis(np.asarray(y, dtype=float), axis, -1)
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    den = np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-300, (xc * yc).sum(-1) / np.where(den > 1e-300, den, 1), np.nan)


def _r2_interval(low: float, high: float) -> tuple[float, float]:
    """The interval of r^2 implied by an interval [low, high] of r (r -> r^2 is monotone on each side of 0)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return _NAN, _NAN
    if low <= 0 <= high:
        return 0.0, max(low * low, high * high)
    return min(low * low, high * high), max(low * low, high * high)


def correlation(x, y, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Pearson and Spearman correlation of paired values, R^2, and their intervals.

    Pairs with a non-finite value are dropped (``n`` counts the rest). Pearson's interval is
    ``scipy.stats.pearsonr(...).confidence_interval`` (Fisher z); Spearman's is a BCa bootstrap over pairs
    (``scipy.stats.bootstrap``, ``n_boot`` draws). R^2 = r^2, its interval the image of r's interval under
    r -> r^2 (from 0 when r's interval holds 0).

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
    if n > 3:
        ci = pr.confidence_interval(level)
        p_low, p_high = float(ci.low), float(ci.high)
    else:  # Fisher z needs n > 3
        p_low, p_high = _NAN, _NAN

    def rho(a, b, axis=-1):
        return pearson_rows(stats.rankdata(a, axis=axis), stats.rankdata(b, axis=axis), axis=axis)

    s_low, s_high = (_bootstrap((xa, ya), rho, n_boot=n_boot, level=level, seed=seed, paired=True)[:2]
                     if n > 3 else (_NAN, _NAN))
    r = float(pr.statistic)
    out["pearson"] = {"r": r, "low": p_low, "high": p_high, "p": float(pr.pvalue)}
    out["spearman"] = {"r": float(sr.statistic), "low": s_low, "high": s_high, "p": float(sr.pvalue)}
    low, high = _r2_interval(p_low, p_high)
    out["r2"] = {"value": r * r, "low": low, "high": high}
    return out


def hierarchical_bootstrap(groups: Sequence[np.ndarray], statistic: Callable[[np.ndarray], np.ndarray], *,
                           n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Percentile interval of a statistic of group means under a two-level bootstrap.

    Each draw resamples the groups (conditions) with replacement, then, independently for every drawn
    group, its members (seeds) with replacement, and applies ``statistic`` to the drawn groups' member
    means. This carries both sources of variation (between conditions, and seed noise within them) into
    the interval; scipy and statsmodels have no nested bootstrap (Saravanan et al. 2020, "Application of
    the hierarchical bootstrap to multi-level data in neuroscience").

    Args:
        groups: one (members, columns) array per group, e.g. (seeds, [predictivity, gain]).
        statistic: vectorized over leading axes: (..., G, columns) -> (...), e.g. the Pearson r of column 0
            with column 1 over the G groups.
    Returns:
        {"estimate" (statistic of the observed group means), "low", "high", "n_groups", "n_boot",
        "n_valid" (draws where the statistic was finite)}.
    """
    arrays = [np.atleast_2d(np.asarray(g, dtype=float)) for g in groups]
    arrays = [g for g in arrays if g.shape[0] > 0]
    n_groups = len(arrays)
    out = {"estimate": _NAN, "low": _NAN, "high": _NAN, "n_groups": n_groups, "n_boot": int(n_boot), "n_valid": 0}
    if not arrays:
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        out["estimate"] = float(np.asarray(statistic(np.stack([g.mean(0) for g in arrays])[None]))[0])
    if n_groups < 3:
        return out
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_groups, (n_boot, n_groups))  # which group fills each slot of each draw
    means = np.empty((n_boot, n_groups, arrays[0].shape[1]))  # (draws, slots, columns)
    for g, members in enumerate(arrays):
        slots = drawn == g
        k = int(slots.sum())
        if k:  # every slot holding group g resamples its members afresh
            means[slots] = members[rng.integers(0, members.shape[0], (k, members.shape[0]))].mean(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = np.asarray(statistic(means), dtype=float).reshape(n_boot)
    finite = boots[np.isfinite(boots)]
    out["n_valid"] = int(finite.size)
    if finite.size >= max(10, n_boot // 2):
        alpha = (1 - level) / 2
        out["low"], out["high"] = (float(v) for v in np.quantile(finite, [alpha, 1 - alpha]))
    return out


def partial_correlation(x, y, covariates, *, level: float = 0.95) -> dict[str, float]:
    """Pearson correlation of x and y controlling for covariates (e.g. clean accuracy).

    r = Pearson r of the residuals of x and y after ordinary least squares on [1, covariates]; its p-value
    is the t-test with n - 2 - k degrees of freedom and its interval the Fisher z interval with
    n - 3 - k (k covariates). For one covariate z this equals (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)).

    Returns:
        {"r", "low", "high", "p", "n", "k"}; NaN where n <= k + 3 or a side is constant.
    """
    xa = np.asarray(x, dtype=float).reshape(-1)
    ya = np.asarray(y, dtype=float).reshape(-1)
    z = np.asarray(covariates, dtype=float).reshape(xa.size, -1)
    keep = np.isfinite(xa) & np.isfinite(ya) & np.isfinite(z).all(1)
    xa, ya, z = xa[keep], ya[keep], z[keep]
    n, k = int(xa.size), int(z.shape[1])
    out = {"r": _NAN, "low": _NAN, "high": _NAN, "p": _NAN, "n": n, "k": k}
    if n <= k + 3:
        return out
    design = np.column_stack([np.ones(n), z])
    rx = xa - design @ np.linalg.lstsq(design, xa, rcond=None)[0]
    ry = ya - design @ np.linalg.lstsq(design, ya, rcond=None)[0]
    r = float(pearson_rows(rx, ry))
    if not np.isfinite(r):
        return out
    r = float(np.clip(r, -1.0, 1.0))
    dof = n - 2 - k
    t = r * math.sqrt(dof / max(1e-300, 1 - r * r))
    zc = stats.norm.ppf(0.5 + level / 2) / math.sqrt(n - 3 - k)
    fz = math.atanh(min(max(r, -1 + 1e-15), 1 - 1e-15))
    out.update(r=r, p=float(2 * stats.t.sf(abs(t), dof)), low=math.tanh(fz - zc), high=math.tanh(fz + zc))
    return out


def mixed_model(y, x, groups) -> dict[str, object]:
    """Linear mixed model y ~ 1 + x with a random intercept per group (statsmodels MixedLM, REML).

    The slope's test then treats runs of one group (seeds of a condition) as dependent.

    Returns:
        {"computed", "slope", "low", "high", "p", "group_var", "residual_var", "n", "n_groups"} or
        {"computed": False, "reason"} when the model cannot be fitted (fewer than 3 groups, no variation,
        or statsmodels fails to converge).
    """
    import statsmodels.api as sm

    ya = np.asarray(y, dtype=float).reshape(-1)
    xa = np.asarray(x, dtype=float).reshape(-1)
    g = np.asarray(groups).reshape(-1)
    keep = np.isfinite(ya) & np.isfinite(xa)
    ya, xa, g = ya[keep], xa[keep], g[keep]
    n_groups = len(set(g.tolist()))
    base = {"computed": False, "n": int(ya.size), "n_groups": n_groups}
    if n_groups < 3 or ya.size < 4 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return {**base, "reason": f"{ya.size} runs in {n_groups} groups; at least 3 groups with varying values "
                                  f"are needed"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.MixedLM(ya, sm.add_constant(xa, has_constant="add"), groups=g).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as exc:
            return {**base, "reason": f"statsmodels MixedLM failed: {exc}"}
    ci = np.asarray(fit.conf_int())[1]
    converged = bool(getattr(fit, "converged", True))
    out = {**base, "computed": converged and bool(np.isfinite(fit.params[1])), "slope": float(fit.params[1]),
           "low": float(ci[0]), "high": float(ci[1]), "p": float(fit.pvalues[1]),
           "group_var": float(np.asarray(fit.cov_re).reshape(-1)[0]), "residual_var": float(fit.scale),
           "warnings": sorted({str(w.message).split("\n")[0] for w in caught})[:3]}
    if not out["computed"]:
        out["reason"] = "statsmodels MixedLM did not converge"
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
