"""Deep CCA regularizer. Pirlot, Gerum, Efird, Zylberberg & Fyshe (2022), "Improving the accuracy and
robustness of CNNs using a deep CCA neural data regularizer" (arXiv 2209.02582); deep CCA after Andrew,
Arora, Bilmes & Livescu (ICML 2013).

    L = lambda * L_DCCA + (1 - lambda) * CE,    L_DCCA = -corr(H1, H2) = -|| S11^{-1/2} S12 S22^{-1/2} ||_*

H1 = f(layer features), H2 = g(neural responses): two trainable MLPs (paper: 3 x 1024 units, then 10
outputs), over the stimuli of a neural batch. S11, S22 are the (centred) covariances plus ridge r1 I, r2 I;
S12 the cross-covariance; ||.||_* the trace (nuclear) norm, i.e. the sum of all canonical correlations.

We compute the singular values of L1^{-1} S12 L2^{-T} (L1, L2 the Cholesky factors of S11, S22), which
equal those of S11^{-1/2} S12 S22^{-1/2} (S^{-1/2} = U L^{-1} for an orthogonal U), without an
eigendecomposition whose gradient is undefined at repeated eigenvalues (e.g. constant features).

Defaults are the paper's (docs/regularizers.md has the table): the convex weighting
lambda L_DCCA + (1 - lambda) CE with lambda = 0.5 (their best; the run's weight multiplies it and should stay 1;
``weighting="fixed"`` gives CE + w L_DCCA); the model's first block, the V1-like one (CORnet-Z's V1 block;
small_cnn ``conv1``, a ResNet's ``stem``), flattened; the responses projected onto their top 80 principal
components (``pca: 80``; fitted on the regularization set's trial-averaged responses, centred; the paper took
80 PCs per session of 10, we take them over the whole recording; fewer when the recording has fewer stimuli
or columns; ``pca: null`` keeps the raw responses); 3 x 1024 hidden units and 10 canonical dimensions.
Paper details we could not verify: the hidden activation (sigmoid here, as in Andrew et al.) and the ridge
values (1e-3 here).
"""

from __future__ import annotations

import torch
from torch import nn

from brainalign.errors import ConfigError
from brainalign.registry import REGULARIZERS
from brainalign.regularizers.base import (
    RegularizationSet,
    Regularizer,
    RegularizerInfo,
    check_choice,
    feature_shapes,
    flat,
    readout_dim,
    readout_features,
)


def cca_correlation(h1: torch.Tensor, h2: torch.Tensor, r1: float = 1e-3, r2: float = 1e-3) -> torch.Tensor:
    """Sum of the canonical correlations of (B, k1) and (B, k2) with ridge-regularised covariances."""
    m = h1.shape[0]
    h1 = h1 - h1.mean(0, keepdim=True)
    h2 = h2 - h2.mean(0, keepdim=True)
    eye1 = torch.eye(h1.shape[1], dtype=h1.dtype, device=h1.device)
    eye2 = torch.eye(h2.shape[1], dtype=h2.dtype, device=h2.device)
    s11 = h1.T @ h1 / (m - 1) + r1 * eye1
    s22 = h2.T @ h2 / (m - 1) + r2 * eye2
    s12 = h1.T @ h2 / (m - 1)
    l1 = torch.linalg.cholesky(s11)
    l2 = torch.linalg.cholesky(s22)
    a = torch.linalg.solve_triangular(l1, s12, upper=False)  # L1^{-1} S12
    t = torch.linalg.solve_triangular(l2, a.T, upper=False).T  # L1^{-1} S12 L2^{-T}
    return torch.linalg.svdvals(t).sum()


def principal_components(y: torch.Tensor, k: int | None) -> torch.Tensor:
    """Centred (N, F) responses projected onto their top min(k, N - 1, F) principal components; as is if None."""
    if k is None:
        return y
    yc = y.double() - y.double().mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(yc, full_matrices=False)
    return (yc @ vh[: min(k, y.shape[0] - 1, y.shape[1])].T).float()  # (N, k)


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), act()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


@REGULARIZERS.register(
    "dcca",
    description="Pirlot et al. 2022: deep CCA between a layer and neural responses (ridge-regularised)",
    info=RegularizerInfo(target="recording", reference="Pirlot et al. 2022, arXiv 2209.02582",
                         default_layers="first", kind="alignment"))
class DCCA(Regularizer):
    """-(sum of canonical correlations) between MLP projections of a layer and of the neural responses.

    Args:
        layers: layers read, flattened and concatenated (default: the first, V1-like block).
        hidden: hidden widths of both MLPs (paper: 1024, 1024, 1024).
        out_dim: canonical dimensions (paper: 10).
        r1, r2: ridge added to the model-side and neural-side covariances.
        activation: ``sigmoid`` (default), ``relu`` or ``tanh``.
        weighting: ``convex`` (lambda L + (1 - lambda) CE; the paper) or ``fixed`` (CE + w L).
        lam: lambda of the convex weighting (paper best: 0.5).
        pool: average-pool conv layers to pool x pool before flattening (default None: the whole map, as the
            paper's flattened CORnet-Z V1 block; a ResNet stage flattened is 10^4-10^5 wide).
        pca: principal components of the responses fed to the neural MLP (paper: 80; None: raw responses).
        batch_size: stimuli per neural batch (default: the run's ``train.reg_batch_size``); must exceed out_dim.
    """

    default_layers = "first"

    def __init__(self, layers=None, hidden=(1024, 1024, 1024), out_dim: int = 10, r1: float = 1e-3,
                 r2: float = 1e-3, activation: str = "sigmoid", weighting: str = "convex", lam: float = 0.5,
                 pool: int | None = None, pca: int | None = 80, batch_size: int | None = None):
        super().__init__()
        check_choice("activation", activation, ("sigmoid", "relu", "tanh"))
        check_choice("weighting", weighting, ("fixed", "convex"))
        if out_dim < 1:
            raise ConfigError(f"out_dim must be >= 1, got {out_dim}")
        if r1 <= 0 or r2 <= 0:
            raise ConfigError(f"r1 and r2 must be > 0 (the covariances must stay invertible), got {r1}, {r2}")
        if not 0 < lam < 1:
            raise ConfigError(f"lam must be in (0, 1), got {lam}")
        self.layers = tuple(layers) if layers else ()
        self.hidden = tuple(int(h) for h in hidden)
        self.out_dim, self.r1, self.r2 = int(out_dim), float(r1), float(r2)
        self.activation, self.weighting, self.lam = activation, weighting, float(lam)
        if pool is not None and int(pool) < 1:
            raise ConfigError(f"pool must be >= 1 or null, got {pool}")
        self.pool = None if pool is None else int(pool)
        if pca is not None and int(pca) < 1:
            raise ConfigError(f"pca must be >= 1 or null, got {pca}")
        self.pca = None if pca is None else int(pca)
        if batch_size is not None:
            self.batch_size = int(batch_size)
        if self.batch_size <= self.out_dim:
            raise ConfigError(f"dcca batch_size ({self.batch_size}) must exceed out_dim ({self.out_dim}): the "
                              f"batch covariance of {self.out_dim} canonical dimensions needs more stimuli")
        self.targets: torch.Tensor | None = None

    @property
    def transforms_ce(self) -> bool:
        return self.weighting == "convex"

    def setup(self, model: nn.Module, reg_set: RegularizationSet | None, probe: torch.Tensor | None = None) -> None:
        if reg_set is None or reg_set.targets is None:
            raise ConfigError("dcca needs neural targets (a recording)")
        super().setup(model, reg_set)
        self.targets = principal_components(flat(reg_set.targets).float(), self.pca)
        shapes = feature_shapes(model, reg_set.images, self.layers)
        in_dim = readout_dim(shapes, self.layers, self.pool)
        device = next(model.parameters()).device
        self.model_head = mlp(in_dim, self.hidden, self.out_dim, self.activation).to(device)
        self.neural_head = mlp(self.targets.shape[1], self.hidden, self.out_dim, self.activation).to(device)

    def transform_ce(self, ce: torch.Tensor) -> torch.Tensor:
        return (1 - self.lam) * ce if self.weighting == "convex" else ce

    def forward(self, features: dict[str, torch.Tensor], index: torch.Tensor | None) -> torch.Tensor:
        if index is None:
            raise ConfigError("dcca needs the indices of its regularization stimuli")
        x = readout_features(features, self.layers, self.pool)
        y = self.targets[index.cpu()].to(device=x.device, dtype=x.dtype)
        term = -cca_correlation(self.model_head(x), self.neural_head(y), self.r1, self.r2)
        return self.lam * term if self.weighting == "convex" else term
