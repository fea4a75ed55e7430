"""Pair-similarity machinery shared by neural_similarity, pixel_similarity, pixel_continuous and decorrelation.

The model's similarity of two stimuli i, j is Li et al.'s layer mixture

    S_ij = sum_l softmax(gamma)_l cos(f_l(x_i) - mu_l, f_l(x_j) - mu_l)

(gamma trainable, initialised at 0 = uniform weights; mu_l a running per-channel mean of the layer, beta 0.9,
as in elieattias1/pixel-reg ``models.py``), and the loss is the mean over the sampled pairs of

    (arctanh S_ij - arctanh T_ij)^2.

Targets T_ij come from a target matrix (N, F), one row per stimulus, centred across stimuli and
unit-normalised, so that T_ij = <t_i, t_j> is computed on the fly for the sampled pairs only: memory
O(N F), never N x N (NSD has 73,000 stimuli).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brainalign.errors import ConfigError
from brainalign.regularizers.base import RegularizationSet, Regularizer, check_choice, feature_shapes, flat

#: Inside the logarithms of arctanh, as in the authors' code (``utils.ATanh``): keeps arctanh(+-1) finite
#: (|arctanh(1)| ~ 6.1), which a thresholded target of +-1 needs.
ATANH_EPS = 1e-5


def atanh_eps(x: torch.Tensor, eps: float = ATANH_EPS) -> torch.Tensor:
    """arctanh(x) = 1/2 [log(1 + x) - log(1 - x)], with eps inside the logs so that +-1 stays finite."""
    return 0.5 * (torch.log(1 + x + eps) - torch.log(1 - x + eps))


def similarity_loss(s: torch.Tensor, t: torch.Tensor, loss: str = "arctanh", variant: str = "paper",
                    eps: float = ATANH_EPS) -> torch.Tensor:
    """Mean over pairs of (arctanh s - arctanh t)^2 (``variant="paper"``), 4x that (``"code"``), or (s - t)^2.

    Args:
        s: (P,) model similarities in [-1, 1].
        t: (P,) target similarities in [-1, 1].
        loss: ``arctanh`` (Li et al. 2019; Attias et al. 2024) or ``mse`` (the authors' ``--arctanh False``).
        variant: ``paper``: arctanh as defined, 1/2 log((1+x)/(1-x)); ``code``: the authors' ``ATanhSquare``,
            which omits the 1/2 and so is 4x the paper's term.
    """
    if loss == "mse":
        return ((s - t) ** 2).mean()
    d = atanh_eps(s.clamp(-1, 1), eps) - atanh_eps(t.clamp(-1, 1), eps)
    scale = 4.0 if variant == "code" else 1.0
    return scale * (d ** 2).mean()


class _HalvesCosine(torch.autograd.Function):
    """For each layer l: c = f_l - mu_l (mu_l a per-channel constant or None), a = c[:k], b = c[k:2k] (flattened),

        s_pl = <a_p, b_p> / sqrt((|a_p|^2 + eps)(|b_p|^2 + eps)),  returned as (k, L),

    with the gradient written out (ds/da = b / sqrt(na nb) - s a / na, symmetric in b; dc/df = 1):
    autograd of the same formula makes about twice as many passes over the wide features and one graph
    node per elementary op, which on a small CNN is a measurable part of a training step. Checked against
    autograd by gradcheck (tests/regularizers).
    """

    @staticmethod
    def forward(ctx, means, eps: float, *fs: torch.Tensor) -> torch.Tensor:
        k = fs[0].shape[0] // 2
        out, saved = [], []
        for f, mu in zip(fs, means, strict=True):
            c = f if mu is None else f - (mu.view(-1, *(1,) * (f.dim() - 2)) if f.dim() > 2 else mu)
            c = c.reshape(c.shape[0], -1)
            a, b = c[:k], c[k:2 * k]
            dot = (a * b).sum(-1)
            na = (a * a).sum(-1) + eps
            nb = (b * b).sum(-1) + eps
            r = torch.rsqrt(na * nb)
            out.append(dot * r)
            saved += [c, na, nb, r, out[-1]]
        ctx.save_for_backward(*saved)
        ctx.k, ctx.shapes = k, [f.shape for f in fs]
        return torch.stack(out, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        k, saved = ctx.k, ctx.saved_tensors
        grads = []
        for l, shape in enumerate(ctx.shapes):
            c, na, nb, r, s = saved[5 * l: 5 * l + 5]
            a, b = c[:k], c[k:2 * k]
            g = grad[:, l]
            gr = (g * r).unsqueeze(-1)
            gs = g * s
            out = torch.zeros_like(c) if c.shape[0] > 2 * k else torch.empty_like(c)
            torch.mul(b, gr, out=out[:k]).addcmul_((gs / na).unsqueeze(-1), a, value=-1)
            torch.mul(a, gr, out=out[k:2 * k]).addcmul_((gs / nb).unsqueeze(-1), b, value=-1)
            grads.append(out.view(shape))
        return (None, None, *grads)


def cosine_halves(f: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosine similarity of the pairs (f_p, f_{p+k}), k = B // 2, of (B, D) rows -> (k,); zero rows give 0."""
    return _HalvesCosine.apply([None], eps, f)[:, 0]


def cosine_pairs(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise cosine similarity of (P, D) and (P, D) -> (P,); a zero row has similarity 0, smoothly.

    <a, b> / sqrt((|a|^2 + eps)(|b|^2 + eps)) is differentiable everywhere, also at constant (zero) features.
    """
    return cosine_halves(torch.cat([a, b]), eps)


def cosine_gram(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """All-pairs cosine similarity of the rows of (B, D) -> (B, B), same smoothing as :func:`cosine_pairs`."""
    g = x @ x.T  # (B, B)
    sq = torch.diagonal(g) + eps
    return g / torch.sqrt(sq[:, None] * sq[None, :])


def threshold_similarity(s: torch.Tensor, threshold: float) -> torch.Tensor:
    """Attias et al.'s target: +1 where s > Th, -1 where s < -Th, 0 otherwise."""
    return torch.where(s > threshold, torch.ones_like(s), torch.where(s < -threshold, -torch.ones_like(s),
                                                                      torch.zeros_like(s)))


def unit_rows(targets: torch.Tensor) -> torch.Tensor:
    """Centre each column across stimuli, then scale each row to unit length: <row_i, row_j> = cosine sim.

    float32 (N, F) out; the column means are accumulated in float64 without a float64 copy of the targets.
    A row that is zero after centring (up to 1e-6 of the largest) stays zero: its similarity to every stimulus is 0.
    """
    mean = torch.sum(targets, 0, dtype=torch.float64) / targets.shape[0]
    x = targets.float() - mean.float()
    norms = x.norm(dim=1, keepdim=True)
    tiny = norms <= 1e-6 * float(norms.max().clamp_min(1e-30))  # rounding noise, not a direction
    return torch.where(tiny, torch.zeros_like(x), x / norms.clamp_min(1e-30))


def pair_targets(rows: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Target similarities <rows_i, rows_j> of the sampled pairs, (P,)."""
    return (rows[i] * rows[j]).sum(-1).clamp(-1.0, 1.0)


def sample_pairs(n: int, k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """k pairs (i, j), i != j, each drawn uniformly from all N(N-1)/2 unordered pairs (with replacement)."""
    i = torch.randint(0, n, (k,), generator=generator)
    j = torch.randint(0, n - 1, (k,), generator=generator)
    j = j + (j >= i).long()  # skip the diagonal: j uniform over the other n - 1 stimuli
    return i, j


class PairSimilarityRegularizer(Regularizer):
    """Base of the similarity regularizers; subclasses say how target similarities are made.

    Args:
        layers: layers whose similarities are mixed (default: all stages before the penultimate).
        loss: ``arctanh`` (default, the papers') or ``mse``.
        variant: ``paper`` (default) or ``code`` (4x, the authors' implementation).
        beta: decay of the running per-channel feature mean used for centring (0.9 in the code).
        centering: ``running`` (default, the authors' code) or ``batch`` (the batch's own mean).
        pairing: ``pairs`` (default, the papers: batch_size/2 disjoint pairs per step, 2 images each) or
            ``batch`` (every pair inside a batch of batch_size stimuli: more pairs for the same images).
        batch_size: stimuli per step (default: the run's ``train.reg_batch_size``; 32 = the papers' 16 pairs).
        learn_layer_weights: train gamma (Li et al.) or keep the layers uniformly weighted.
    """

    default_layers = "stages"
    needs_rows = True  # whether targets come from a target matrix

    def __init__(self, layers=None, loss: str = "arctanh", variant: str = "paper", beta: float = 0.9,
                 centering: str = "running", pairing: str = "pairs", batch_size: int | None = None,
                 learn_layer_weights: bool = True, eps: float = ATANH_EPS):
        super().__init__()
        check_choice("loss", loss, ("arctanh", "mse"))
        check_choice("variant", variant, ("paper", "code"))
        check_choice("centering", centering, ("running", "batch"))
        check_choice("pairing", pairing, ("pairs", "batch"))
        if not 0 <= beta < 1:
            raise ConfigError(f"beta must be in [0, 1), got {beta}")
        self.layers = tuple(layers) if layers else ()
        self.loss, self.variant, self.beta, self.eps = loss, variant, float(beta), float(eps)
        self.centering, self.pairing = centering, pairing
        self.learn_layer_weights = bool(learn_layer_weights)
        if batch_size is not None:
            self.batch_size = int(batch_size)
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be >= 2 (one pair), got {self.batch_size}")
        self.rows: torch.Tensor | None = None

    # -- targets -------------------------------------------------------------------------------------
    def transform_target(self, t: torch.Tensor) -> torch.Tensor:
        """Target similarity from the cosine similarity of the target rows (identity by default)."""
        return t

    def target_pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        if i.device != self.rows.device:
            i, j = i.to(self.rows.device), j.to(self.rows.device)
        return self.transform_target(pair_targets(self.rows, i, j))

    # -- lifecycle -----------------------------------------------------------------------------------
    def setup(self, model: nn.Module, reg_set: RegularizationSet | None, probe: torch.Tensor | None = None) -> None:
        if reg_set is None or len(reg_set) < 2:
            raise ConfigError(f"{type(self).__name__} needs a regularization set of at least 2 stimuli")
        super().setup(model, reg_set)
        if self.needs_rows:
            if reg_set.targets is None:
                raise ConfigError(f"{type(self).__name__} needs target representations in its regularization set")
            self.rows = unit_rows(flat(reg_set.targets))
        shapes = feature_shapes(model, reg_set.images, self.layers)
        self.channels = {name: shapes[name][0] for name in self.layers}
        self._init_state()

    def _init_state(self) -> None:
        for name, c in self.channels.items():
            self.register_buffer(f"mean_{name}", torch.zeros(c))
        logits = torch.zeros(len(self.layers))
        if self.learn_layer_weights:
            self.layer_logits = nn.Parameter(logits)
        else:
            self.register_buffer("layer_logits", logits)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if n < 2:
            raise ConfigError("the regularization set needs at least 2 stimuli")
        if self.pairing == "pairs":
            i, j = sample_pairs(n, max(1, self.batch_size // 2), generator)
            return torch.cat([i, j])
        return torch.randperm(n, generator=generator)[: min(self.batch_size, n)]

    # -- the term ------------------------------------------------------------------------------------
    def _mean(self, name: str, f: torch.Tensor) -> torch.Tensor:
        """The layer's running per-channel mean, updated first in training (as in the authors' code)."""
        mean = self._buffers[f"mean_{name}"]
        if self.training:
            with torch.no_grad():  # beta m + (1 - beta) batch mean, over both images of every pair
                batch_mean = f.detach().mean((0, *range(2, f.dim())))
                mean.lerp_(batch_mean if batch_mean.dtype == mean.dtype else batch_mean.to(mean.dtype),
                           1 - self.beta)
        return mean if mean.dtype == f.dtype else mean.to(f.dtype)

    def _centre(self, name: str, f: torch.Tensor) -> torch.Tensor:
        if self.centering == "batch":
            return f - f.mean((0, *range(2, f.dim())), keepdim=True)
        mean = self._mean(name, f)
        return f - (mean.view(-1, *(1,) * (f.dim() - 2)) if f.dim() > 2 else mean)

    def model_similarity(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """S for the sampled pairs, (P,): pairs mode -> B/2 pairs; batch mode -> B(B-1)/2 pairs."""
        if self.pairing == "pairs":  # pair p = (p, p + B/2); centring and cosines of all layers in one node
            feats = [features[name] for name in self.layers]
            if self.centering == "batch":
                sims = _HalvesCosine.apply([None] * len(feats), 1e-8, *[self._centre(n, features[n])
                                                                        for n in self.layers])
            else:
                means = [self._mean(name, f) for name, f in zip(self.layers, feats, strict=True)]
                sims = _HalvesCosine.apply(means, 1e-8, *feats)  # (k, L)
        else:
            cols = []
            for name in self.layers:
                f = flat(self._centre(name, features[name]))  # (B, D)
                iu = torch.triu_indices(f.shape[0], f.shape[0], 1, device=f.device)
                cols.append(cosine_gram(f)[iu[0], iu[1]])
            sims = torch.stack(cols, 1)
        mix = F.softmax(self.layer_logits, 0)
        return sims @ (mix if mix.dtype == sims.dtype else mix.to(sims.dtype))

    def pair_index(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pairing == "pairs":
            k = index.shape[0] // 2
            return index[:k], index[k:2 * k]
        iu = torch.triu_indices(index.shape[0], index.shape[0], 1, device=index.device)
        return index[iu[0]], index[iu[1]]

    def forward(self, features: dict[str, torch.Tensor], index: torch.Tensor | None) -> torch.Tensor:
        if index is None:
            raise ConfigError(f"{type(self).__name__} needs the indices of its regularization stimuli")
        s = self.model_similarity(features)
        i, j = self.pair_index(index)
        with torch.no_grad():
            t = self.target_pairs(i, j)
            if t.dtype != s.dtype or t.device != s.device:
                t = t.to(device=s.device, dtype=s.dtype)
        return similarity_loss(s, t, self.loss, self.variant, self.eps)
