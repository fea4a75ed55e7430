"""Neural predictivity: cross-validated ridge regression from model features to neural responses.

For each outer fold, on the training stimuli only:

    B(alpha) = argmin_B ||Yc - Xc B||^2 + alpha ||B||^2        (intercept unpenalised, X and Y centred)

with one penalty per target chosen from a grid by the closed-form leave-one-out error

    LOO_t(alpha) = mean_i [ (y_it - yhat_it(alpha)) / (1 - h_i(alpha)) ]^2,
    h_i(alpha) = sum_k U_ik^2 s_k^2 / (s_k^2 + alpha) + 1/n                       (hat-matrix diagonal)

where Xc = U diag(s) V' is the centred training features' thin SVD (the 1/n term is the unpenalised
intercept). This is the criterion of scikit-learn's ``RidgeCV(alpha_per_target=True)`` with its default
``cv=None`` (there called "GCV", but it is exact leave-one-out, not Golub's generalised CV), so both pick
the same penalties and make the same predictions. Held-out predictions of all K folds are concatenated and
scored per target with Pearson r over all N stimuli (Brain-Score's ``CrossRegressedCorrelation`` instead
averages the r of each split), then divided by a noise ceiling when one is given.

One eigendecomposition per fold (of Xc'Xc when D <= n, of XcXc' when D > n) serves every penalty and every
target; an optional PCA of the features (fit on the training fold) is the same decomposition truncated to
its leading components, so it costs nothing extra.

Import names from this module with ``from brainalign.alignment.predictivity import ...``: the package
exports the function ``predictivity``, which shadows the module as an attribute of ``brainalign.alignment``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from brainalign.errors import ConfigError, DataError

#: Default penalty grid, in units of the mean non-zero eigenvalue of Xc'Xc on the training fold.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in 10.0 ** np.arange(-3, 5))

# Components whose squared singular value is below this fraction of the largest are dropped: they are
# numerical zeros (the eigendecomposition of a Gram matrix resolves eigenvalues only to ~1e-16 x the
# largest), and any penalty above ~1e-6 x the largest eigenvalue shrinks them by 1e4 or more anyway.
_EIG_RTOL = 1e-10

# Targets whose in-sample fit explains more than 1 - 1/(1 + 10^2) of their variance (||U'y|| > 10 ||y - UU'y||)
# get their unfittable part computed in full precision before the single-precision penalty loop.
_RHO_MAX = 10.0

# Largest temporary (bytes) the penalty-selection loop allocates; targets are processed in chunks.
_CHUNK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class RidgeFit:
    """Output of :func:`ridge_loo_fit_predict` for one train/test split.

    Attributes:
        predictions: (n_test, T) held-out predictions, each target with its own penalty.
        alpha_index: (T,) index into ``alphas`` of the penalty chosen per target.
        alphas: (n_alphas,) the penalties tried, in absolute units (after any relative scaling).
        loo_mse: (n_alphas, T) mean squared leave-one-out error per penalty and target; computed in
            ``loo_dtype`` except for the near-best penalties that were refined in full precision.
        n_components: number of feature components the regression used.
        n_refined: targets whose penalty choice was a near tie in single precision and was recomputed in
            full precision.
    """

    predictions: torch.Tensor
    alpha_index: torch.Tensor
    alphas: torch.Tensor
    loo_mse: torch.Tensor
    n_components: int
    n_refined: int


def _spectrum(xc: torch.Tensor, n_components: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Thin SVD of centred features via the smaller Gram matrix.

    Returns (U (n, k), s2 (k,) squared singular values in decreasing order, V (D, k), mean_eig), where
    mean_eig is the mean non-zero eigenvalue before any PCA truncation (the unit of relative penalties).
    """
    n, d = xc.shape
    if d <= n:
        s2, v = torch.linalg.eigh(xc.T @ xc)  # (D,), (D, D) ascending
    else:
        s2, v = torch.linalg.eigh(xc @ xc.T)  # (n,), (n, n) ascending; v holds U here
    s2, v = s2.flip(0), v.flip(1)
    keep = s2 > _EIG_RTOL * s2[0].clamp_min(torch.finfo(s2.dtype).tiny)
    s2, v = s2[keep], v[:, keep]
    mean_eig = float(s2.mean()) if s2.numel() else 0.0
    if n_components is not None:
        s2, v = s2[:n_components], v[:, :n_components]
    s = s2.sqrt()
    if d <= n:
        return (xc @ v) / s, s2, v, mean_eig
    return v, s2, (xc.T @ v) / s, mean_eig


def _loo_mse(u: torch.Tensor, b: torch.Tensor, base: torch.Tensor, coef: torch.Tensor, weight: torch.Tensor,
             dtype: torch.dtype) -> torch.Tensor:
    """Weighted sums of squared residuals  out[a, t] = sum_i weight[i, a] (base + U diag(coef[a]) b)[i, t]^2.

    With weight = 1 / (n (1 - h_i(alpha))^2) this is the mean squared leave-one-out error. The residual
    y - yhat(alpha) is written either as  y - U diag(f) U'y  (base = y, coef = -f, f = s^2/(s^2 + alpha)) or
    as  (I - UU')y + U diag(g) U'y  (base = (I - UU')y, coef = g = 1 - f); the second form is never a small
    difference of large numbers, so it stays accurate in float32 when the fit nearly interpolates.

    Args:
        u: (n, k); b: (k, T) = U'y; base: (n, T); coef: (n_alphas, k); weight: (n, n_alphas).
        dtype: precision of the O(n k T) products, the only expensive step.
    Returns:
        (n_alphas, T) in the precision of ``base``.
    """
    n, t = base.shape
    out = torch.empty(coef.shape[0], t, dtype=base.dtype, device=base.device)
    if t == 0:
        return out
    u_, coef_, w_ = u.to(dtype), coef.to(dtype), weight.to(dtype)
    chunk = max(1, min(t, _CHUNK_BYTES // (dtype.itemsize * max(n, 1))))
    buffer = torch.empty(n * chunk, dtype=dtype, device=base.device)  # reused: no page faults per penalty
    for t0 in range(0, t, chunk):
        t1 = min(t, t0 + chunk)
        b_, base_ = b[:, t0:t1].to(dtype), base[:, t0:t1].to(dtype)
        resid = buffer[: n * (t1 - t0)].view(n, t1 - t0)
        for i in range(coef.shape[0]):
            torch.addmm(base_, u_, coef_[i, :, None] * b_, out=resid)  # (n, chunk) residual
            out[i, t0:t1] = (w_[:, i] @ resid.square_()).to(out.dtype)
    return out


def ridge_loo_fit_predict(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                          alphas: Sequence[float] | torch.Tensor, *, relative_alphas: bool = False,
                          n_components: int | None = None, loo_dtype: torch.dtype = torch.float32,
                          tie_rtol: float = 1e-4) -> RidgeFit:
    """Ridge regression with a per-target penalty chosen by efficient leave-one-out; predict ``x_test``.

    Equivalent to ``sklearn.linear_model.RidgeCV(alphas, alpha_per_target=True).fit(x_train, y_train)
    .predict(x_test)`` (optionally after ``PCA(n_components)``), computed from one eigendecomposition.

    Args:
        x_train: (n, D) features; y_train: (n, T) finite targets; x_test: (m, D). All on one device, one
            floating dtype (float64 recommended); the results come back in that dtype.
        alphas: penalty grid.
        relative_alphas: if True, multiply ``alphas`` by the mean non-zero eigenvalue of Xc'Xc, which makes
            the grid independent of the features' scale.
        n_components: keep only the leading principal components of the training features (PCA).
        loo_dtype: precision of the leave-one-out products (float32 halves their cost). Every penalty whose
            single-precision LOO error is within ``tie_rtol`` (relative) of the target's best is recomputed
            in the input precision, so the choice is the full-precision one. The single-precision errors
            of these sums measured ~1e-6 relative (at most 6e-6 at n = 14,886, k = 1,000), well inside the
            default tolerance; with it, a few percent of the targets of noisy (EEG-like) data are refined.
        tie_rtol: see ``loo_dtype``.

    Returns:
        :class:`RidgeFit`.
    Shape:
        predictions (m, T); alpha_index (T,).
    """
    n = x_train.shape[0]
    dtype = x_train.dtype
    x_mean = x_train.mean(0)
    xc = x_train - x_mean  # (n, D)
    y_mean = y_train.mean(0)
    yc = y_train - y_mean  # (n, T)
    u, s2, v, mean_eig = _spectrum(xc, n_components)
    del xc  # (n, D): the spectrum holds what the fit needs
    if s2.numel() == 0:
        raise DataError("features are constant over the training stimuli; ridge regression has nothing to fit")
    grid = torch.as_tensor(alphas, dtype=dtype, device=x_train.device).reshape(-1)
    if relative_alphas:
        grid = grid * mean_eig

    b = u.T @ yc  # (k, T)
    g = grid[:, None] / (s2 + grid[:, None])  # (n_alphas, k) 1 - shrinkage factor
    u2 = u.square()
    # 1 - h_i = (1 - 1/n - sum_k U_ik^2) + sum_k U_ik^2 g_k: no cancellation when the fit nearly interpolates.
    denom = (1.0 - 1.0 / n - u2.sum(1, keepdim=True)).clamp_min(0) + u2 @ g.T  # (n, n_alphas)
    weight = 1.0 / (n * denom.square())  # inf where h_i = 1: that penalty cannot be validated
    del u2, denom

    # Targets that the features fit almost perfectly lose their residual to cancellation in y - U f U'y;
    # for them (and in full precision, everywhere) use the cancellation-free form.
    b2 = b.square().sum(0)
    fitted = b2 > _RHO_MAX**2 * (yc.square().sum(0) - b2).clamp_min(0)
    if loo_dtype == dtype:
        fitted[:] = False
    loo = torch.empty(grid.numel(), yc.shape[1], dtype=dtype, device=yc.device)
    plain = ~fitted
    if plain.all():  # no (n, T) copy of the targets (the usual case with noisy responses)
        loo[:] = _loo_mse(u, b, yc, g - 1.0, weight, loo_dtype)
    else:
        loo[:, plain] = _loo_mse(u, b[:, plain], yc[:, plain], g - 1.0, weight, loo_dtype)
    if fitted.any():
        loo[:, fitted] = _loo_mse(u, b[:, fitted], yc[:, fitted] - u @ b[:, fitted], g, weight, loo_dtype)
    loo = torch.nan_to_num(loo, nan=math.inf)

    n_refined = 0
    if grid.numel() > 1 and loo_dtype != dtype:
        best = loo.min(0).values
        cand = loo <= best + tie_rtol * best.abs()  # (n_alphas, T) penalties that might be the best
        near = cand.sum(0) > 1
        n_refined = int(near.sum())
        if n_refined:
            cols = near.nonzero().squeeze(1)
            outside = yc[:, cols] - u @ b[:, cols]  # (n, n_near)
            for i in range(grid.numel()):
                sel = cand[i, cols].nonzero().squeeze(1)
                if sel.numel():
                    loo[i, cols[sel]] = _loo_mse(u, b[:, cols[sel]], outside[:, sel], g[i:i + 1],
                                                 weight[:, i:i + 1], dtype)[0]
            loo = torch.nan_to_num(loo, nan=math.inf)
    best_index = loo.argmin(0)  # (T,) first minimum on ties, as RidgeCV's strict ">" update

    coef = s2.sqrt()[:, None] / (s2[:, None] + grid[best_index][None, :])  # (k, T) s / (s^2 + alpha_t)
    predictions = y_mean + ((x_test - x_mean) @ v) @ (coef * b)  # (m, T)
    return RidgeFit(predictions, best_index, grid, loo, int(s2.numel()), n_refined)


@dataclass(frozen=True)
class PredictivityResult:
    """Cross-validated predictivity per target, with summaries over neuroids, time bins and regions.

    Targets are the flattened trailing axes of the response array, in C order: with responses
    (stimulus, neuroid, time), target j is neuroid j // n_time, time bin j % n_time.

    Attributes:
        r: (T,) Pearson r between held-out predictions (concatenated over folds) and responses; NaN where
            masked.
        r_normalized: (T,) r / ceiling, or None when no ceiling was given; NaN where masked or where the
            ceiling is not positive (counted in ``n_bad_ceiling``). Not clipped: values above 1 mean the
            ceiling estimate is below the model's accuracy for that target.
        alpha_per_fold: (n_folds, T) penalty chosen per fold and target, in absolute units; NaN where masked.
        alpha_grid: (n_folds, n_alphas) absolute penalties tried in each fold.
        masked: (T,) True for targets left out of the fit: any NaN response, or constant responses
            (Pearson r undefined).
        n_masked_nan, n_masked_constant: how many targets were masked for each reason.
        n_bad_ceiling: unmasked targets whose ceiling is <= 0 or NaN (their normalised r is NaN).
        target_shape: shape of the trailing response axes, e.g. (n_neuroid, n_time).
        n_stimuli, n_features, n_folds: data and split sizes.
        n_components: (n_folds,) feature components used per fold.
        n_refined: penalty choices recomputed in double precision (near ties), summed over folds.
        predictions: (n_stimuli, T) held-out predictions when requested, else None.
    """

    r: np.ndarray
    r_normalized: np.ndarray | None
    alpha_per_fold: np.ndarray
    alpha_grid: np.ndarray
    masked: np.ndarray
    n_masked_nan: int
    n_masked_constant: int
    n_bad_ceiling: int
    target_shape: tuple[int, ...]
    n_stimuli: int
    n_features: int
    n_folds: int
    n_components: np.ndarray
    n_refined: int = 0
    predictions: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_masked(self) -> int:
        """Targets excluded from the fit (NaN or constant responses)."""
        return self.n_masked_nan + self.n_masked_constant

    @property
    def alpha(self) -> np.ndarray:
        """(T,) geometric mean over folds of the chosen penalty; NaN where masked."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.exp(np.log(self.alpha_per_fold).mean(0))

    @property
    def alpha_at_edge(self) -> float:
        """Fraction of (fold, target) choices at the smallest or largest penalty: a grid too narrow if large."""
        chosen = ~np.isnan(self.alpha_per_fold)
        if not chosen.any():
            return math.nan
        lo = self.alpha_grid.min(1, keepdims=True)
        hi = self.alpha_grid.max(1, keepdims=True)
        edge = np.isclose(self.alpha_per_fold, lo) | np.isclose(self.alpha_per_fold, hi)
        return float(edge[chosen].mean())

    def _values(self, normalized: bool) -> np.ndarray:
        if not normalized:
            return self.r
        if self.r_normalized is None:
            raise ConfigError("normalized=True needs a ceiling; predictivity(..., ceiling=...) was not given one")
        return self.r_normalized

    def _grid(self, shape: Sequence[int] | None, normalized: bool) -> np.ndarray:
        shape = tuple(self.target_shape if shape is None else shape)
        values = self._values(normalized)
        if math.prod(shape) != values.size:
            raise ConfigError(f"shape {shape} has {math.prod(shape)} targets; the result has {values.size}")
        if len(shape) == 1:
            shape = (shape[0], 1)
        if len(shape) != 2:
            raise ConfigError(f"shape must be (n_neuroid, n_time) or (n_neuroid,); got {shape}")
        return values.reshape(shape)

    def per_time(self, shape: Sequence[int] | None = None, *, normalized: bool = False) -> np.ndarray:
        """(n_time,) mean over neuroids per time bin, ignoring NaN; ``shape`` = (n_neuroid, n_time)."""
        return _nanmean(self._grid(shape, normalized), axis=0)

    def per_neuroid(self, shape: Sequence[int] | None = None, *, normalized: bool = False) -> np.ndarray:
        """(n_neuroid,) mean over time bins per neuroid, ignoring NaN; ``shape`` = (n_neuroid, n_time)."""
        return _nanmean(self._grid(shape, normalized), axis=1)

    def per_region(self, regions: Sequence[str], shape: Sequence[int] | None = None, *,
                   normalized: bool = False) -> dict[str, float]:
        """Mean over the neuroids of each region and all their time bins, ignoring NaN.

        Args:
            regions: one label per neuroid (length n_neuroid), e.g. ``["V4", "IT", "IT", ...]``.
        """
        per = self._grid(shape, normalized)
        labels = np.asarray(regions)
        if labels.shape != (per.shape[0],):
            raise ConfigError(f"regions needs one label per neuroid ({per.shape[0]}); got {labels.shape}")
        return {str(g): float(_nanmean(per[labels == g].ravel(), axis=0)) for g in dict.fromkeys(labels.tolist())}

    def summary(self) -> dict[str, float | int]:
        """Scalars for a result file: mean and median r (and normalised r), counts, penalty diagnostics."""
        out: dict[str, float | int] = {
            "r_mean": float(_nanmean(self.r, axis=0)),
            "r_median": float(np.nanmedian(self.r)) if np.isfinite(self.r).any() else math.nan,
            "n_targets": int(self.r.size),
            "n_masked": self.n_masked,
            "n_masked_nan": self.n_masked_nan,
            "n_masked_constant": self.n_masked_constant,
            "n_stimuli": self.n_stimuli,
            "n_features": self.n_features,
            "n_folds": self.n_folds,
            "alpha_at_edge": self.alpha_at_edge,
        }
        if self.r_normalized is not None:
            finite = np.isfinite(self.r_normalized)
            out["r_normalized_mean"] = float(_nanmean(self.r_normalized, axis=0))
            out["r_normalized_median"] = float(np.median(self.r_normalized[finite])) if finite.any() else math.nan
            out["n_bad_ceiling"] = self.n_bad_ceiling
        return out


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; NaN (without a warning) where a slice has no finite value."""
    ok = ~np.isnan(a)
    count = ok.sum(axis)
    total = np.where(ok, a, 0.0).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _as_numpy(a, name: str, keep_float: bool = False) -> np.ndarray:
    """``a`` as a float64 array; with ``keep_float``, a float16/32 array stays as it is (no copy)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    try:
        if keep_float and isinstance(a, np.ndarray) and a.dtype in (np.float16, np.float32):
            return a
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a numeric array; {exc}") from None


def _check_ids(feature_ids, target_ids, n: int) -> None:
    for name, ids in (("feature_ids", feature_ids), ("target_ids", target_ids)):
        if ids is not None and len(ids) != n:
            raise DataError(f"{name} has {len(ids)} entries but there are {n} stimuli")
    if feature_ids is None or target_ids is None:
        return
    a, b = np.asarray(feature_ids).astype(str), np.asarray(target_ids).astype(str)
    bad = np.flatnonzero(a != b)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"stimulus ids of features and targets differ at {bad.size} positions (first: row {i}, "
                        f"feature id {a[i]!r} vs target id {b[i]!r}); put both in the same stimulus order")


def fold_labels(n: int, n_folds: int, folds, seed: int) -> np.ndarray:
    """(n,) fold label in 0..K-1 per stimulus: the cross-validation split of :func:`predictivity`.

    Anything that scores on "the same folds as predictivity" (the neural predictors of
    ``brainalign.regularizers``) calls this, so one seed means one split everywhere.

    Args:
        n: number of stimuli.
        n_folds: K, used when ``folds`` is None: a permutation by ``np.random.default_rng(seed)`` cut into K
            near-equal parts (``np.array_split``).
        folds: one label per stimulus (any values), relabelled 0..K-1 in sorted order; or None.
        seed: seed of the random split.

    Raises:
        ConfigError: bad ``n_folds`` or ``folds`` (wrong shape, a single label).
        DataError: too few stimuli (every test fold needs one, every training set at least 3).
    """
    if folds is not None:
        labels = np.asarray(folds)
        if labels.shape != (n,):
            raise ConfigError(f"folds needs one fold label per stimulus ({n}); got shape {labels.shape}")
        _, labels = np.unique(labels, return_inverse=True)
        k = int(labels.max()) + 1
        if k < 2:
            raise ConfigError("folds has a single fold label; cross-validation needs at least 2")
        smallest_train = n - int(np.bincount(labels).max())
        if smallest_train < 3:
            raise DataError(f"folds leaves only {smallest_train} training stimuli in some fold; at least 3 needed")
        return labels
    if not isinstance(n_folds, int) or n_folds < 2:
        raise ConfigError(f"n_folds must be an integer >= 2; got {n_folds!r}")
    if n < n_folds or n - math.ceil(n / n_folds) < 3:
        raise DataError(f"{n} stimuli are too few for {n_folds}-fold cross-validation "
                        f"(every test fold needs a stimulus and every training set at least 3)")
    labels = np.empty(n, dtype=np.int64)
    for k, part in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), n_folds)):
        labels[part] = k
    return labels


def predictivity(features, targets, *, alphas: Sequence[float] | None = None, relative_alphas: bool = True,
                 n_folds: int = 5, folds: Sequence[int] | np.ndarray | None = None,
                 n_components: int | None = None, ceiling=None, feature_ids: Sequence | None = None,
                 target_ids: Sequence | None = None, seed: int = 0, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64, loo_dtype: torch.dtype = torch.float32,
                 return_predictions: bool = False, target_block: int | None = None) -> PredictivityResult:
    """Cross-validated ridge predictivity of neural responses from model features.

    r_t = Pearson(yhat_{.t}, y_{.t}) over all stimuli, yhat from the outer fold that held each stimulus out;
    r_normalized_t = r_t / ceiling_t.

    Args:
        features: (N, D) model features, one row per stimulus (numpy or torch).
        targets: (N, *target_shape) responses, e.g. trial-averaged (stimulus, neuroid, time). Targets with
            any NaN are masked (r = NaN) and counted, as are constant targets; never dropped silently.
        alphas: penalty grid; default :data:`DEFAULT_ALPHAS` (1e-3 .. 1e4, 8 values).
        relative_alphas: grid in units of the mean non-zero eigenvalue of the centred training features'
            Xc'Xc (scale-free; default) rather than absolute penalties.
        n_folds: outer K-fold splits (shuffled with ``seed``), ignored when ``folds`` is given.
        folds: optional (N,) fold label per stimulus, e.g. to keep all images of a concept in one fold.
        n_components: PCA of the features to this many components, fit on each training fold.
        ceiling: optional (T,) or target_shape noise ceiling in correlation units (e.g. the split-half
            noise ceiling of THINGS-EEG2 or Brain-Score's Spearman-Brown corrected consistency).
        feature_ids, target_ids: optional stimulus ids of the rows; when both are given they must match
            exactly, in order.
        seed: shuffling seed of the outer folds.
        device, dtype: where and in what precision to compute (float64 on CPU by default; a GPU works).
        loo_dtype: precision of the penalty-selection products (see :func:`ridge_loo_fit_predict`).
        return_predictions: keep the (N, T) held-out predictions in the result.
        target_block: fit at most this many targets at a time (same folds; every target has its own penalty,
            so the result is the same) to bound memory: NSD's 73,000 x 10^4 voxels, or 10^5 targets, need
            several times the (N, T) response array otherwise. The targets are held as given (float32 stays
            float32: 2.9 GB at 73,000 x 10^4) and each block is converted to ``dtype`` on its own, so the
            working set beyond the targets grows with N x ``target_block``, not with T.

    Returns:
        :class:`PredictivityResult`.
    Raises:
        DataError: mismatched sizes or ids, non-finite features, too few stimuli for the folds.
        ConfigError: invalid folds, penalties, PCA size or ceiling shape.
    """
    x = _as_numpy(features, "features")
    y = _as_numpy(targets, "targets", keep_float=True)  # float32 responses are not copied (blocks convert)
    if x.ndim != 2:
        raise DataError(f"features must be 2-D (stimulus, feature); got shape {x.shape}")
    if y.ndim < 2:
        raise DataError(f"targets must be (stimulus, ...) with at least one target axis; got shape {y.shape}")
    n = x.shape[0]
    if y.shape[0] != n:
        raise DataError(f"features have {n} stimuli but targets have {y.shape[0]}; rows must be the same stimuli")
    _check_ids(feature_ids, target_ids, n)
    if not np.isfinite(x).all():
        raise DataError(f"features contain {int((~np.isfinite(x)).sum())} non-finite values")
    target_shape = tuple(int(s) for s in y.shape[1:])
    y = y.reshape(n, -1)
    n_inf = sum(int(np.isinf(y[i:i + 4096]).sum()) for i in range(0, n, 4096))  # no (N, T) temporary
    if n_inf:
        raise DataError(f"targets contain {n_inf} infinite values (NaN marks missing data)")
    grid = np.asarray(DEFAULT_ALPHAS if alphas is None else alphas, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ConfigError(f"alphas must be a non-empty list of positive finite penalties; got {grid.tolist()}")
    if n_components is not None and (not isinstance(n_components, int) or n_components < 1):
        raise ConfigError(f"n_components must be a positive integer or None; got {n_components!r}")
    labels = fold_labels(n, n_folds, folds, seed)
    k_folds = int(labels.max()) + 1
    if target_block is not None:
        if not isinstance(target_block, int) or target_block < 1:
            raise ConfigError(f"target_block must be a positive integer or None; got {target_block!r}")
        if y.shape[1] > target_block:
            return _blocked(x, y, target_shape, target_block, labels, ceiling,
                            dict(alphas=alphas, relative_alphas=relative_alphas, n_components=n_components,
                                 device=device, dtype=dtype, loo_dtype=loo_dtype,
                                 return_predictions=return_predictions))

    n_targets = y.shape[1]
    nan_cols = np.isnan(y).any(0)
    const_cols = ~nan_cols & (np.ptp(y, axis=0) == 0)  # NaN columns compare False
    masked = nan_cols | const_cols
    if masked.any():
        warnings.warn(f"predictivity: {int(nan_cols.sum())} targets with NaN and {int(const_cols.sum())} "
                      f"constant targets are masked (r = NaN) out of {n_targets}", stacklevel=2)
    cols = np.flatnonzero(~masked)

    norm_ceiling = None
    if ceiling is not None:
        c = _as_numpy(ceiling, "ceiling").reshape(-1)
        if c.size != n_targets:
            raise ConfigError(f"ceiling has {c.size} values; targets have {n_targets} ({target_shape})")
        norm_ceiling = c

    dev = torch.device(device)
    xt = torch.as_tensor(x, dtype=dtype, device=dev)
    yt = torch.as_tensor(y if cols.size == n_targets else y[:, cols], dtype=dtype, device=dev)  # one copy
    pred = torch.empty_like(yt)
    alpha_per_fold = np.full((k_folds, n_targets), np.nan)
    alpha_grid = np.empty((k_folds, grid.size))
    n_comp = np.zeros(k_folds, dtype=np.int64)
    n_refined = 0
    for k in range(k_folds):
        test = torch.as_tensor(np.flatnonzero(labels == k), device=dev)
        train = torch.as_tensor(np.flatnonzero(labels != k), device=dev)
        fit = ridge_loo_fit_predict(xt[train], yt[train], xt[test], grid, relative_alphas=relative_alphas,
                                    n_components=n_components, loo_dtype=loo_dtype)
        pred[test] = fit.predictions
        alpha_grid[k] = fit.alphas.cpu().numpy()
        alpha_per_fold[k, cols] = alpha_grid[k][fit.alpha_index.cpu().numpy()]
        n_comp[k] = fit.n_components
        n_refined += fit.n_refined

    r = np.full(n_targets, np.nan)
    r[cols] = pearson_columns(pred, yt).cpu().numpy()
    r_norm, n_bad = None, 0
    if norm_ceiling is not None:
        good = np.isfinite(norm_ceiling) & (norm_ceiling > 0)
        n_bad = int((~good & ~masked).sum())
        r_norm = np.full(n_targets, np.nan)
        r_norm[good] = r[good] / norm_ceiling[good]
    predictions = None
    if return_predictions:
        predictions = np.full((n, n_targets), np.nan)
        predictions[:, cols] = pred.cpu().numpy()
    return PredictivityResult(r=r, r_normalized=r_norm, alpha_per_fold=alpha_per_fold, alpha_grid=alpha_grid,
                              masked=masked, n_masked_nan=int(nan_cols.sum()),
                              n_masked_constant=int(const_cols.sum()), n_bad_ceiling=n_bad,
                              target_shape=target_shape, n_stimuli=n, n_features=x.shape[1], n_folds=k_folds,
                              n_components=n_comp, n_refined=n_refined, predictions=predictions)


def _blocked(x: np.ndarray, y: np.ndarray, target_shape: tuple[int, ...], block: int, labels: np.ndarray,
             ceiling, kwargs: dict) -> PredictivityResult:
    """:func:`predictivity` over blocks of target columns with the same folds, joined into one result."""
    c = None if ceiling is None else _as_numpy(ceiling, "ceiling").reshape(-1)
    if c is not None and c.size != y.shape[1]:
        raise ConfigError(f"ceiling has {c.size} values; targets have {y.shape[1]} ({target_shape})")
    parts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # masked targets are reported once, below
        for start in range(0, y.shape[1], block):
            sl = slice(start, start + block)
            parts.append(predictivity(x, y[:, sl], folds=labels,
                                      ceiling=None if c is None else c[sl], **kwargs))
    n_nan, n_const = sum(p.n_masked_nan for p in parts), sum(p.n_masked_constant for p in parts)
    if n_nan or n_const:
        warnings.warn(f"predictivity: {n_nan} targets with NaN and {n_const} constant targets are masked (r = NaN) "
                      f"out of {y.shape[1]}", stacklevel=3)
    first = parts[0]
    return PredictivityResult(
        r=np.concatenate([p.r for p in parts]),
        r_normalized=None if c is None else np.concatenate([p.r_normalized for p in parts]),
        alpha_per_fold=np.concatenate([p.alpha_per_fold for p in parts], axis=1), alpha_grid=first.alpha_grid,
        masked=np.concatenate([p.masked for p in parts]), n_masked_nan=n_nan, n_masked_constant=n_const,
        n_bad_ceiling=sum(p.n_bad_ceiling for p in parts), target_shape=target_shape, n_stimuli=first.n_stimuli,
        n_features=first.n_features, n_folds=first.n_folds, n_components=first.n_components,
        n_refined=sum(p.n_refined for p in parts),
        predictions=None if first.predictions is None else np.concatenate([p.predictions for p in parts], axis=1))


def pearson_columns(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(T,) Pearson r between matching columns of a and b (n, T); NaN where either column is constant.

    The score of :func:`predictivity` (held-out predictions against responses, per target), in torch so it
    runs on the fit's device and dtype; the neural predictors of ``brainalign.regularizers`` score with it too.
    """
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / torch.sqrt(a.square().sum(0) * b.square().sum(0))
