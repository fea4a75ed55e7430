"""Target diagnostics: is a "neural" similarity target more than pixels or decorrelation?

A similarity target T (N x N) can carry little neural structure and still regularize: if T mostly agrees
with pixel similarity, a pixel target does the same job (Attias et al. 2024: r = 0.83 between pixel and
model-predicted neural similarity); if T is mostly zeros off the diagonal (a high threshold, a noisy or
near-white response matrix), it acts like the decorrelation control (identity target). These pure functions
measure both, on a random sample of pairs (nothing is N x N):

- ``pixel_correlation``: Pearson r between T_ij and the pixel similarity of the same pairs;
- ``zero_share``: share of sampled off-diagonal entries that are exactly 0 (after any threshold);
- ``offdiag_rms``: sqrt(mean T_ij^2) over sampled pairs i != j, the distance from the identity target;
- ``effective_rank``: exp(entropy) of the eigenvalue distribution of T restricted to a random subset of
  stimuli (Roy & Vetterli 2007), and its ratio to the subset size (1 = white / identity-like).

``warnings`` (for targets of neural origin) name a target that is mostly pixels (|r| >= 0.8) or mostly
decorrelation (off-diagonal RMS <= 0.1 or zero share >= 0.9). ``compare_targets`` measures how far two
targets are from each other on the same pairs (e.g. the identity control and a pixel target at Th = 0.95
are near-identical).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from brainalign.regularizers._similarity import sample_pairs, threshold_similarity, unit_rows

PIXEL_WARNING_R = 0.8
DECORRELATION_RMS = 0.1
DECORRELATION_ZERO_SHARE = 0.9
_CHUNK = 8192


class PairTarget:
    """A similarity target evaluated pair by pair: ``pairs(i, j) -> (P,)``, ``matrix(idx) -> (m, m)``.

    ``chunk``: pairs evaluated at once (rows targets gather 2 x chunk rows; keep chunk x F moderate).
    """

    def __init__(self, n: int, pairs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 matrix: Callable[[torch.Tensor], torch.Tensor], name: str, chunk: int = _CHUNK):
        self.n, self._pairs, self._matrix, self.name, self.chunk = n, pairs, matrix, name, chunk

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        c = self.chunk
        return torch.cat([self._pairs(i[s:s + c], j[s:s + c]).double() for s in range(0, len(i), c)]
                         or [torch.zeros(0, dtype=torch.float64)])

    def matrix(self, idx: torch.Tensor) -> torch.Tensor:
        return self._matrix(idx)


def rows_target(responses: torch.Tensor, name: str = "responses") -> PairTarget:
    """Cosine similarity of the centred rows of (N, F) responses (as the similarity regularizers use)."""
    rows = unit_rows(responses.reshape(responses.shape[0], -1))  # float32 (N, F); float64 per chunk
    chunk = max(64, min(_CHUNK, 2**22 // max(rows.shape[1], 1)))

    def pairs(i, j):
        return (rows[i].double() * rows[j].double()).sum(-1).clamp(-1, 1)

    def matrix(idx):
        sub = rows[idx].double()
        return (sub @ sub.T).clamp(-1, 1)

    return PairTarget(rows.shape[0], pairs, matrix, name, chunk)


def pixel_rows(images: torch.Tensor) -> torch.Tensor:
    """Channel-averaged, flattened pixels (N, H*W) of (N, C, H, W) images (or (N, P) rows as they are)."""
    x = images.float()
    if x.dim() == 4:
        x = x.mean(1)
    return x.reshape(x.shape[0], -1)


def pixel_target(images: torch.Tensor) -> PairTarget:
    """Cosine similarity of mean-image-subtracted, channel-averaged pixels."""
    return rows_target(pixel_rows(images), "pixels")


def matrix_target(similarity: torch.Tensor, name: str = "matrix") -> PairTarget:
    """An explicit (N, N) similarity matrix (small N only)."""
    s = similarity.double()
    return PairTarget(s.shape[0], lambda i, j: s[i, j], lambda idx: s[idx][:, idx], name)


def identity_target(n: int) -> PairTarget:
    """The decorrelation control's target: 0 off the diagonal, 1 on it."""
    return PairTarget(n, lambda i, j: (i == j).double(), lambda idx: (idx[:, None] == idx[None, :]).double(),
                      "identity")


def thresholded(target: PairTarget, threshold: float) -> PairTarget:
    """Attias et al.'s +1 / -1 / 0 target at threshold Th (diagonal stays 1)."""
    def pairs(i, j):
        return torch.where(i == j, torch.ones(len(i), dtype=torch.float64),
                           threshold_similarity(target.pairs(i, j), threshold))

    def matrix(idx):
        m = threshold_similarity(target.matrix(idx), threshold)
        return m.fill_diagonal_(1.0)

    return PairTarget(target.n, pairs, matrix, f"{target.name}>{threshold:g}", target.chunk)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float | None:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return None if denom < 1e-12 else float((a * b).sum()) / denom


def effective_rank(matrix: torch.Tensor) -> float:
    """exp(entropy) of the normalised non-negative eigenvalues of a symmetric matrix."""
    ev = torch.linalg.eigvalsh((matrix + matrix.T).double() / 2).clamp_min(0)
    total = float(ev.sum())
    if total <= 0:
        return 0.0
    p = ev / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def target_diagnostics(target: PairTarget, pixels: torch.Tensor | PairTarget | None = None, *,
                       n_pairs: int = 20_000, rank_stimuli: int = 400, seed: int = 0,
                       neural: bool = True) -> dict:
    """Pixel correlation, zero share, off-diagonal RMS and effective rank of a target, from sampled pairs.

    Args:
        target: the target (``rows_target``, ``thresholded(...)``, ``identity_target``, ...).
        pixels: the stimuli's images (N, C, H, W) or pixel rows, or a ``PairTarget``; None skips the pixel r.
        n_pairs: pairs i != j sampled uniformly.
        rank_stimuli: size of the random stimulus subset whose sub-matrix gives the effective rank.
        neural: whether the target claims a neural origin (then the warnings are filled in).

    Returns:
        A JSON-ready dict: n_stimuli, n_pairs, pixel_correlation (float or None), zero_share, offdiag_rms,
        mean_abs, effective_rank, effective_rank_ratio, mostly_pixels, mostly_decorrelation, warnings.
    """
    n = target.n
    gen = torch.Generator().manual_seed(seed)
    i, j = sample_pairs(n, n_pairs, gen)
    t = target.pairs(i, j).double()
    out: dict = {"n_stimuli": int(n), "n_pairs": int(n_pairs)}
    pix = pixels if isinstance(pixels, PairTarget) or pixels is None else pixel_target(pixels)
    out["pixel_correlation"] = None if pix is None else _pearson(t, pix.pairs(i, j))
    out["zero_share"] = float((t.abs() <= 1e-12).double().mean())
    out["offdiag_rms"] = float(t.pow(2).mean().sqrt())
    out["mean_abs"] = float(t.abs().mean())
    idx = torch.randperm(n, generator=gen)[: min(n, rank_stimuli)]
    erank = effective_rank(target.matrix(idx))
    out["effective_rank"] = erank
    out["effective_rank_ratio"] = erank / len(idx)
    r = out["pixel_correlation"]
    out["mostly_pixels"] = bool(r is not None and abs(r) >= PIXEL_WARNING_R)
    out["mostly_decorrelation"] = bool(out["offdiag_rms"] <= DECORRELATION_RMS
                                       or out["zero_share"] >= DECORRELATION_ZERO_SHARE)
    warnings = []
    if neural and out["mostly_pixels"]:
        warnings.append(f"target is mostly pixels: its similarities correlate r={r:.2f} with pixel similarity; "
                        f"compare against pixel_continuous / pixel_similarity before crediting neural structure")
    if neural and out["mostly_decorrelation"]:
        warnings.append(f"target is mostly decorrelation: off-diagonal RMS {out['offdiag_rms']:.3f}, "
                        f"{100 * out['zero_share']:.0f}% zeros; compare against the decorrelation control")
    out["warnings"] = warnings
    return out


def compare_targets(a: PairTarget, b: PairTarget, *, n_pairs: int = 20_000, seed: int = 0) -> dict:
    """How alike two targets over the same stimuli are, on sampled pairs i != j.

    Returns rms_difference (sqrt mean (a - b)^2), agreement (share of pairs with |a - b| < 0.05),
    correlation (None when either is constant) and near_identical (rms_difference <= 0.1).
    """
    if a.n != b.n:
        raise ValueError(f"targets cover different stimulus counts: {a.n} vs {b.n}")
    i, j = sample_pairs(a.n, n_pairs, torch.Generator().manual_seed(seed))
    va, vb = a.pairs(i, j).double(), b.pairs(i, j).double()
    rms = float((va - vb).pow(2).mean().sqrt())
    return {"rms_difference": rms, "agreement": float(((va - vb).abs() < 0.05).double().mean()),
            "correlation": _pearson(va, vb), "near_identical": bool(rms <= DECORRELATION_RMS)}


def recording_diagnostics(recording, *, n_pairs: int = 20_000, seed: int = 0) -> dict:
    """Diagnostics of a recording's trial-averaged responses used as a similarity target.

    The pixel correlation is against the recording's own images (when it has an image source), so a
    "neural" target that is mostly pixels or mostly decorrelation is flagged before anyone trains on it.
    """
    avg = np.asarray(recording.average(), dtype=np.float32)  # (stimulus, neuroid, time)
    rows = torch.as_tensor(np.nan_to_num(avg.reshape(avg.shape[0], -1)))
    pixels = torch.as_tensor(recording.load_images()) if recording.images is not None else None
    return target_diagnostics(rows_target(rows), pixels, n_pairs=n_pairs, seed=seed)
