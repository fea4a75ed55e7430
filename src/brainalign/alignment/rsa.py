"""Representational similarity analysis (Kriegeskorte et al. 2008) through rsatoolbox.

An RDM holds, for every pair of stimuli, the dissimilarity of their response patterns:

    correlation  d_ij = 1 - Pearson(x_i, x_j)                 (default)
    euclidean    d_ij = ||x_i - x_j||_2
    sqeuclidean  d_ij = ||x_i - x_j||_2^2 / D                  (rsatoolbox's native "euclidean")

Two RDMs are compared on their upper triangles (the diagonal and the mirror half carry no information):

    spearman  Spearman rank correlation (rsatoolbox: fast; ties get average ranks)
    tau-a     Kendall's tau-a: (concordant - discordant) / (m (m - 1) / 2), no tie correction; the
              recommended choice when a model predicts tied dissimilarities (Nili et al. 2014)
    cosine    cosine similarity of the raw dissimilarity vectors
    pearson   Pearson correlation

The computations are rsatoolbox's (``rsatoolbox.rdm.calc_rdm``, ``rsatoolbox.rdm.compare``); the functions
here only convert numpy arrays to and from its ``Dataset`` and ``RDMs`` objects and check shapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from brainalign.errors import ConfigError, DataError

if TYPE_CHECKING:
    import rsatoolbox

# rsatoolbox takes seconds to import (it pulls in matplotlib, pandas...), so it is imported on first use.

RDM_METHODS = ("correlation", "euclidean", "sqeuclidean")
# our name -> rsatoolbox.rdm.compare method
COMPARE_METHODS = {"spearman": "spearman", "tau-a": "tau-a", "cosine": "cosine", "pearson": "corr"}


def _patterns(responses) -> np.ndarray:
    x = np.asarray(responses, dtype=np.float64)
    if x.ndim < 2:
        raise DataError(f"responses must be (stimulus, feature, ...); got shape {x.shape}")
    x = x.reshape(x.shape[0], -1)
    if x.shape[0] < 2:
        raise DataError(f"an RDM needs at least 2 stimuli; got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise DataError(f"responses contain {int((~np.isfinite(x)).sum())} non-finite values")
    return x


def calc_rdm(responses, method: str = "correlation") -> rsatoolbox.rdm.RDMs:
    """The RDM of (stimulus, feature) responses as an rsatoolbox ``RDMs`` object (one RDM).

    Args:
        responses: (N, D) patterns, one row per stimulus; trailing axes beyond the first are flattened.
        method: one of :data:`RDM_METHODS` (see the module docstring).
    """
    import rsatoolbox

    if method not in RDM_METHODS:
        raise ConfigError(f"unknown RDM method {method!r}; valid: {', '.join(RDM_METHODS)}")
    x = _patterns(responses)
    if method == "correlation":
        flat = np.flatnonzero(np.ptp(x, axis=1) == 0)
        if flat.size:
            raise DataError(f"correlation distance is undefined for constant patterns (stimulus {flat[0]} "
                            f"and {flat.size - 1} more); use method='euclidean'")
    rdms = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(x), method="correlation" if method == "correlation"
                                   else "euclidean")
    if method == "euclidean":  # rsatoolbox gives ||x_i - x_j||^2 / D
        d = np.sqrt(np.clip(rdms.get_vectors() * x.shape[1], 0, None))
        rdms = rsatoolbox.rdm.RDMs(d, dissimilarity_measure="euclidean")
    return rdms


def rdm(responses, method: str = "correlation") -> np.ndarray:
    """(N, N) representational dissimilarity matrix of (N, D) responses; zero diagonal, symmetric.

    Args:
        responses: (N, D) patterns, one row per stimulus.
        method: ``"correlation"`` (1 - Pearson r, default), ``"euclidean"`` or ``"sqeuclidean"``.
    """
    return calc_rdm(responses, method).get_matrices()[0]


def _as_rdms(a, name: str) -> rsatoolbox.rdm.RDMs:
    import rsatoolbox

    if isinstance(a, rsatoolbox.rdm.RDMs):
        if a.n_rdm != 1:
            raise DataError(f"{name} holds {a.n_rdm} RDMs; compare one at a time")
        return a
    m = np.asarray(a, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise DataError(f"{name} must be a square (N, N) RDM or an rsatoolbox RDMs; got shape {m.shape}")
    scale = max(float(np.nanmax(np.abs(m))), 1.0)
    if not np.allclose(m, m.T, rtol=0, atol=1e-8 * scale, equal_nan=True):
        raise DataError(f"{name} is not symmetric")
    if np.abs(np.diag(m)).max() > 1e-8 * scale:
        raise DataError(f"{name} has a non-zero diagonal; a dissimilarity of a stimulus to itself is 0")
    return rsatoolbox.rdm.RDMs(m[None])


def compare_rdms(a, b, method: str = "spearman") -> float:
    """Similarity of two RDMs over their upper triangles.

    Args:
        a, b: (N, N) RDMs as numpy arrays (e.g. from :func:`rdm`) or single-RDM rsatoolbox ``RDMs``, over
            the same N stimuli in the same order. NaN entries are allowed where both have them.
        method: ``"spearman"`` (default), ``"tau-a"``, ``"cosine"`` or ``"pearson"``.
    Returns:
        The similarity as a float.
    """
    if method not in COMPARE_METHODS:
        raise ConfigError(f"unknown RDM comparison {method!r}; valid: {', '.join(COMPARE_METHODS)}")
    import rsatoolbox

    ra, rb = _as_rdms(a, "first RDM"), _as_rdms(b, "second RDM")
    if ra.n_cond != rb.n_cond:
        raise DataError(f"RDMs cover different numbers of stimuli: {ra.n_cond} vs {rb.n_cond}")
    try:
        return float(rsatoolbox.rdm.compare(ra, rb, method=COMPARE_METHODS[method])[0, 0])
    except ValueError as exc:  # rsatoolbox: NaN at different positions
        raise DataError(f"cannot compare the RDMs: {exc}") from None
