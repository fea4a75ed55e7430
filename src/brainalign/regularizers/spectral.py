"""Spectral (1/n^alpha) regularizer. Nassar, Sokol, Chung, Harris & Park (NeurIPS 2020), "On 1/n neural
representation and robustness" (josuenassar/power_law).

    R = (1 / N_l) sum_{n > tau, l_n > 0} [ (l_n / g_n - 1)^2 + ReLU(l_n / g_n - 1) ]
    g_n = l_tau (tau + 1)^alpha / (n + 1)^alpha           (anchor l_tau without gradient; n counted from 0)
    l = sort_desc(diag(V' Cov_batch V))

V: eigenvectors of the layer's covariance over the full training set, computed once per epoch in float64
(``on_epoch_start``, model in eval mode); Cov_batch: the (unbiased) covariance of the classification batch's
features. Only positive eigenvalues are penalised; N_l is the layer's width. alpha = 1 is the paper's 1/n
spectrum; any alpha > 0 may be set (the 1/n^alpha follow-up). The batch must be larger than the layer
(B > N_l), otherwise Cov_batch is rank-deficient: runs whose batch is too small are refused before training,
and a smaller trailing batch of an epoch is skipped (term 0).

Paper vs code: the paper's penalty is the same as ``eigen_val_regulate``; the code divides by the width
(x.shape[1]), which we follow. Conv layers are flattened (C x H x W), as the code does for its CNN.

Ours vs both: the code penalises every eigenvalue > 0. The rounding noise of dead ReLU units (1e-17 .. 1e-27,
whose sign depends on the CPU kernel) then adds ~1/N_l each, most of the term on a small ReLU layer, and the
term cannot fall. Here eigenvalues below ``RELATIVE_TOLERANCE`` (1e-6) x the largest count as zero, in training
and wherever the penalty is measured.

The anchor: the paper holds l_tau constant (no_grad, our default). R then depends on the layer's scale: when
the tail lies above 1/n (a fresh ReLU layer's flat spectrum), shrinking the whole layer lowers every ratio,
so the gradient shrinks the layer, the next anchor is smaller, and a small-initialised ReLU layer can collapse
(on digits, small_cnn width 8, weight 0.1: largest eigenvalue 0.007 after 4 epochs, accuracy at chance).
``anchor_gradient: true`` lets the gradient through l_tau, which makes R scale-invariant (no collapse).
Defaults: tau = 10, alpha = 1, the penultimate layer; the paper's strength b in {1, 2, 5} is the run's weight.
"""

from __future__ import annotations

import torch
from torch import nn

from brainalign.errors import ConfigError
from brainalign.registry import REGULARIZERS
from brainalign.regularizers.base import RegularizationSet, Regularizer, RegularizerInfo, feature_shapes, flat


def batch_spectrum(x: torch.Tensor, eigvecs: torch.Tensor) -> torch.Tensor:
    """diag(V' Cov(x) V), sorted in decreasing order: (D,) from features (B, D) and eigenvectors (D, D)."""
    xc = x - x.mean(0, keepdim=True)
    proj = xc @ eigvecs.to(x.dtype)  # (B, D)
    return torch.sort((proj * proj).sum(0) / (x.shape[0] - 1), descending=True).values


#: Eigenvalues below this fraction of the largest count as zero: rounding noise of dead ReLU units
#: (1e-17 .. 1e-27 in float64, ~1e-14 relative in float32) is not part of the spectrum.
RELATIVE_TOLERANCE = 1e-6


def spectral_penalty(eigs: torch.Tensor, tau: int = 10, alpha: float = 1.0, eps: float = 1e-12,
                     anchor_gradient: bool = False, rtol: float = RELATIVE_TOLERANCE) -> torch.Tensor:
    """Nassar et al.'s penalty of a decreasing spectrum (D,) against l_tau (tau+1)^alpha / (n+1)^alpha.

    Zero when every eigenvalue after tau follows the power law exactly; finite on a zero spectrum.
    The anchor l_tau is detached (the paper's no_grad) unless ``anchor_gradient``. Only eigenvalues above
    ``rtol`` x the largest are penalised (the paper: every eigenvalue > 0, so each rounding-noise value of a
    dead unit adds ~1/D and the term cannot fall); an anchor at or below that tolerance gives 0.
    """
    d = eigs.shape[0]
    if d <= tau + 1:
        raise ConfigError(f"the spectral penalty needs more than tau + 1 = {tau + 1} dimensions, got {d}")
    floor = (rtol * eigs.detach().max()).clamp_min(eps)
    anchor = eigs[tau] if anchor_gradient else eigs[tau].detach()
    n = torch.arange(tau + 1, d, device=eigs.device, dtype=eigs.dtype)
    g = anchor.clamp_min(eps) * ((tau + 1) / (n + 1)) ** alpha  # (D - tau - 1,)
    ratio = eigs[tau + 1:] / g - 1
    terms = ratio ** 2 + torch.relu(ratio)
    keep = (eigs[tau + 1:] > floor) & (anchor > floor)
    return torch.where(keep, terms, torch.zeros_like(terms)).sum() / d


@REGULARIZERS.register(
    "spectral",
    description="Nassar et al. 2020: penalise deviations of the layer's eigenspectrum from 1/n^alpha",
    info=RegularizerInfo(target="none", stream="classification",
                         reference="Nassar et al. NeurIPS 2020 (josuenassar/power_law)",
                         default_layers="penultimate", kind="spectrum"))
class Spectral(Regularizer):
    """The eigenspectrum penalty on the classification batch's features.

    Args:
        layers: layers penalised, summed (default: the penultimate layer).
        alpha: power-law exponent (1 = the paper's 1/n).
        tau: eigenvalues 0..tau are free; tau is the anchor (paper: 10).
        eig_images: training images used for the per-epoch eigenvectors (default: all, as the paper).
        eig_batch: images per forward pass while computing them.
        anchor_gradient: let the gradient flow through the anchor l_tau too (the paper detaches it; see the
            module docstring for what the detached anchor does to a ReLU layer).
    """

    stream = "classification"
    default_layers = "penultimate"

    def __init__(self, layers=None, alpha: float = 1.0, tau: int = 10, eig_images: int | None = None,
                 eig_batch: int = 512, anchor_gradient: bool = False):
        super().__init__()
        if alpha <= 0:
            raise ConfigError(f"alpha must be > 0, got {alpha}")
        if tau < 0:
            raise ConfigError(f"tau must be >= 0, got {tau}")
        if eig_images is not None and eig_images < 2:
            raise ConfigError(f"eig_images must be >= 2, got {eig_images}")
        self.layers = tuple(layers) if layers else ()
        self.alpha, self.tau = float(alpha), int(tau)
        self.eig_images, self.eig_batch = eig_images, int(eig_batch)
        self.anchor_gradient = bool(anchor_gradient)
        self.widths: dict[str, int] = {}
        self.ready = False

    def setup(self, model: nn.Module, reg_set: RegularizationSet | None, probe: torch.Tensor | None = None) -> None:
        """``probe``: a few images of the classification data (the features' shapes are read from them)."""
        super().setup(model, reg_set)
        if probe is None:
            raise ConfigError("spectral needs probe images of the classification data to size its layers")
        shapes = feature_shapes(model, probe, self.layers)
        for name in self.layers:
            width = int(torch.tensor(shapes[name]).prod())
            if width <= self.tau + 1:
                raise ConfigError(f"spectral: layer {name!r} has {width} units; tau={self.tau} needs more than "
                                  f"{self.tau + 1}")
            self.widths[name] = width
            self.register_buffer(f"eigvecs_{name}", torch.zeros(width, width))

    def check_run(self, config, data) -> None:
        batch = min(config.train.batch_size, len(data.train))
        for name, width in self.widths.items():
            if batch <= width:
                raise ConfigError(f"spectral: train.batch_size={config.train.batch_size} must exceed the width "
                                  f"of layer {name!r} ({width} units) so that the batch covariance has full "
                                  f"rank; raise the batch size, narrow the model or choose another layer")

    @torch.no_grad()
    def on_epoch_start(self, model: nn.Module, train_images: torch.Tensor, epoch: int) -> None:
        """Eigenvectors of each layer's covariance over the training images (float64, model in eval mode)."""
        images = train_images if self.eig_images is None else train_images[: self.eig_images]
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        sums = {name: torch.zeros(w, dtype=torch.float64) for name, w in self.widths.items()}
        outer = {name: torch.zeros(w, w, dtype=torch.float64) for name, w in self.widths.items()}
        try:
            for start in range(0, len(images), self.eig_batch):
                feats = model.features(images[start:start + self.eig_batch].to(device), self.layers)
                for name in self.layers:
                    x = flat(feats[name]).double().cpu()
                    sums[name] += x.sum(0)
                    outer[name] += x.T @ x
        finally:
            model.train(was_training)
        n = len(images)
        for name in self.layers:
            mean = sums[name] / n
            cov = (outer[name] - n * torch.outer(mean, mean)) / max(n - 1, 1)
            _, vecs = torch.linalg.eigh((cov + cov.T) / 2)
            getattr(self, f"eigvecs_{name}").copy_(vecs.float())
        self.ready = True

    def forward(self, features: dict[str, torch.Tensor], index: torch.Tensor | None = None) -> torch.Tensor:
        if not self.ready:
            raise RuntimeError("spectral: eigenvectors not computed; on_epoch_start must run first")
        total = None
        for name in self.layers:
            x = flat(features[name])
            if x.shape[0] <= self.widths[name]:
                term = torch.zeros((), dtype=x.dtype, device=x.device)  # rank-deficient batch: skipped
            else:
                eigs = batch_spectrum(x, getattr(self, f"eigvecs_{name}").to(x.device))
                term = spectral_penalty(eigs, self.tau, self.alpha, anchor_gradient=self.anchor_gradient)
            total = term if total is None else total + term
        return total
