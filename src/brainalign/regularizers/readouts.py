"""The Gaussian2d readout (Lurz et al. 2021, ICLR; sinzlab/neuralpredictors ``FullGaussian2d``).

Each output neuron n reads the feature map x (B, C, H, W) at one learned position:

    p_n = clamp(mu_n + Sigma_n eps, -1, 1),   eps ~ N(0, I_2) during training, eps = 0 in eval
    y_n = sum_c w_{c,n} grid_sample(x, p_n)_c + b_n

mu_n in [-1, 1]^2 (grid_sample's normalised coordinates, ``align_corners=True``), Sigma_n: a learned scale
(``isotropic``: one number; ``uncorrelated``: one per axis; ``full``: a 2 x 2 matrix applied to eps), w: linear
weights over channels, b: bias. Sampling the position during training is what lets mu_n move: the gradient of a
bilinear sample reaches mu only through neighbouring pixels, and the noise widens that neighbourhood.

This is our implementation of neuralpredictors' formula (its ``FullGaussian2d`` with ``batch_sample=True``,
``align_corners=True``), with the same initialisation (mu ~ U(-init_mu_range, init_mu_range), sigma = init_sigma
or U(-init_sigma, init_sigma) for ``full``, w = 1/C, b = the mean response when given). Differences: the noise
comes from an explicit ``torch.Generator`` when one is given; no shared features, grid predictors or shifters.
``tests/regularizers/test_readouts.py`` compares it with neuralpredictors where that package imports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brainalign.errors import ConfigError

GAUSS_TYPES = ("isotropic", "uncorrelated", "full")


class Gaussian2d(nn.Module):
    """Per-neuron Gaussian position readout of a (B, C, H, W) feature map to (B, N).

    Args:
        channels: C of the feature map.
        outdims: N output neurons.
        bias: learn a bias per neuron.
        init_mu_range: mu starts uniform in [-init_mu_range, init_mu_range]^2, in (0, 1].
        init_sigma: the position noise's initial scale (> 0).
        gauss_type: ``isotropic`` (default), ``uncorrelated`` or ``full``.
        mean_activity: (N,) initial bias (default 0).
        batch_sample: during training, draw a position per image (True) or one per batch (False).
        generator: draws the initial mu (and full sigma); default: the global generator.
    """

    def __init__(self, channels: int, outdims: int, bias: bool = True, init_mu_range: float = 0.1,
                 init_sigma: float = 1.0, gauss_type: str = "isotropic", mean_activity: torch.Tensor | None = None,
                 batch_sample: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        if not 0 < init_mu_range <= 1 or init_sigma <= 0:
            raise ConfigError(f"gaussian2d: init_mu_range must be in (0, 1] and init_sigma > 0; got "
                              f"{init_mu_range}, {init_sigma}")
        if gauss_type not in GAUSS_TYPES:
            raise ConfigError(f"gauss_type must be one of {', '.join(GAUSS_TYPES)}; got {gauss_type!r}")
        self.channels, self.outdims, self.gauss_type = int(channels), int(outdims), gauss_type
        self.batch_sample = bool(batch_sample)
        sigma_shape = {"isotropic": (1, outdims, 1, 1), "uncorrelated": (1, outdims, 1, 2),
                       "full": (1, outdims, 2, 2)}[gauss_type]
        mu = (torch.rand(1, outdims, 1, 2, generator=generator) * 2 - 1) * init_mu_range
        if gauss_type == "full":
            sigma = (torch.rand(sigma_shape, generator=generator) * 2 - 1) * init_sigma
        else:
            sigma = torch.full(sigma_shape, float(init_sigma))
        self.mu = nn.Parameter(mu)  # (1, N, 1, 2)
        self.sigma = nn.Parameter(sigma)
        self.features = nn.Parameter(torch.full((1, channels, 1, outdims), 1.0 / channels))  # (1, C, 1, N)
        if bias:
            init = torch.zeros(outdims) if mean_activity is None else torch.as_tensor(mean_activity).float()
            self.bias = nn.Parameter(init.reshape(outdims).clone())
        else:
            self.register_parameter("bias", None)

    def sample_grid(self, batch_size: int, sample: bool | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Read positions (B, N, 1, 2): mu, plus Sigma eps when sampling (default: in training mode)."""
        with torch.no_grad():
            self.mu.clamp_(-1, 1)
        sample = self.training if sample is None else sample
        shape = (batch_size, self.outdims, 1, 2)
        if sample:
            eps = torch.randn(shape, generator=generator, dtype=self.mu.dtype).to(self.mu.device)
        else:
            eps = torch.zeros(shape, dtype=self.mu.dtype, device=self.mu.device)
        if self.gauss_type == "full":
            noise = torch.einsum("ancd,bnid->bnic", self.sigma, eps)
        else:
            noise = eps * self.sigma
        return torch.clamp(noise + self.mu, -1, 1)

    def forward(self, x: torch.Tensor, sample: bool | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, N)."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ConfigError(f"gaussian2d readout expects (B, {self.channels}, H, W) features; got "
                              f"{tuple(x.shape)}")
        sample = self.training if sample is None else sample
        weights = self.features.view(1, self.channels, self.outdims)
        if sample and self.batch_sample:
            grid = self.sample_grid(x.shape[0], True, generator)  # (B, N, 1, 2)
            y = F.grid_sample(x, grid, align_corners=True).squeeze(-1)  # (B, C, N)
        else:
            grid = self.sample_grid(1, sample, generator)[0, :, 0]  # (N, 2): one position per neuron
            kernel = bilinear_weights(grid, x.shape[-2], x.shape[-1])  # (N, H*W)
            y = x.flatten(2) @ kernel.T  # (B, C, N)
        y = (y * weights).sum(1)  # (B, N)
        return y if self.bias is None else y + self.bias


def bilinear_weights(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, H*W) bilinear interpolation weights of positions (N, 2) = (x, y) in [-1, 1] (``align_corners=True``).

    ``x.flatten(2) @ bilinear_weights(grid, H, W).T`` equals ``grid_sample(x, grid[None, :, None])`` for
    positions inside the map.
    """
    px = (grid[:, 0] + 1) / 2 * (width - 1)  # (N,) column coordinate
    py = (grid[:, 1] + 1) / 2 * (height - 1)  # (N,) row coordinate
    cols = torch.arange(width, dtype=grid.dtype, device=grid.device)
    rows = torch.arange(height, dtype=grid.dtype, device=grid.device)
    wx = torch.relu(1 - (cols[None, :] - px[:, None]).abs())  # (N, W)
    wy = torch.relu(1 - (rows[None, :] - py[:, None]).abs())  # (N, H)
    return (wy[:, :, None] * wx[:, None, :]).flatten(1)
