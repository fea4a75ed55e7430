"""Feature extraction: layer outputs of a model for a stimulus set, as (stimulus, feature) arrays.

Each layer's output (B, C, H, W) or (B, D) is reduced to one row per stimulus by one of

    pool="none"  flatten everything: D = C * H * W
    pool="avg"   average over the spatial positions: D = C (global average pooling)

and, if the result is wider than ``max_dim``, projected by a fixed Gaussian random matrix
P (D x max_dim) with entries N(0, 1/max_dim) (Johnson-Lindenstrauss: pairwise distances and inner products
are kept up to a factor 1 +- eps with eps ~ sqrt(log N / max_dim); the convention of scikit-learn's
``GaussianRandomProjection``). The same matrix, drawn from ``seed``, serves every batch of a layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from brainalign.errors import ConfigError, DataError

POOLS = ("none", "avg")
# Largest projection matrix (bytes, float32) built in memory; beyond it pool first.
_MAX_PROJECTION_BYTES = 2 * 2**30


def _reduce(h: torch.Tensor, pool: str) -> torch.Tensor:
    if pool == "avg" and h.ndim > 2:
        h = h.flatten(2).mean(2)  # (B, C)
    return h.flatten(1)  # (B, D)


def _projection(d: int, max_dim: int, seed: int, layer_index: int, device: torch.device) -> torch.Tensor:
    if d * max_dim * 4 > _MAX_PROJECTION_BYTES:
        raise ConfigError(f"a random projection from {d} to {max_dim} features needs "
                          f"{d * max_dim * 4 / 2**30:.1f} GiB; use pool='avg' or a smaller max_dim")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + layer_index)
    p = torch.randn(d, max_dim, generator=gen) / max_dim**0.5  # (D, max_dim)
    return p.to(device)


@torch.no_grad()
def extract_features(model, images, layers: str | Sequence[str], *, batch_size: int = 64,
                     device: str | torch.device = "cpu", pool: str = "none", max_dim: int | None = None,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Run ``images`` through ``model`` and return the named layers' outputs, one row per image.

    The model is put in eval mode for the pass (and restored to its previous mode afterwards); no
    gradients are kept. Features come back as float32 numpy arrays on the CPU.

    Args:
        model: a :class:`~brainalign.models.base.BrainModel` (anything with ``features(x, names)``).
        images: (N, C, H, W) in [0, 1], numpy or torch; moved to ``device`` one batch at a time.
        layers: a name from ``model.layer_names``, or a list of them.
        batch_size: images per forward pass.
        device: where to run the model (the model is moved there).
        pool: ``"none"`` (flatten) or ``"avg"`` (global average over space), see the module docstring.
        max_dim: if given, layers wider than this are randomly projected to ``max_dim`` features.
        seed: seed of the random projections (layer i uses a matrix derived from seed and i).
    Returns:
        {layer: (N, D_layer) float32 array}, in the order of ``layers``.
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ConfigError("extract_features needs at least one layer name")
    if pool not in POOLS:
        raise ConfigError(f"unknown pool {pool!r}; valid: {', '.join(POOLS)}")
    if max_dim is not None and (not isinstance(max_dim, int) or max_dim < 1):
        raise ConfigError(f"max_dim must be a positive integer or None; got {max_dim!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}")
    x = torch.as_tensor(images)
    if x.ndim != 4:
        raise DataError(f"images must be (N, C, H, W); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise DataError(f"images must be floats in [0, 1]; got dtype {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise DataError(f"images must be in [0, 1]; got values in [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    if hasattr(model, "check_layers"):
        model.check_layers(layers)

    dev = torch.device(device)
    was_training = model.training
    model.to(dev).eval()
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    projections: dict[str, torch.Tensor | None] = {}
    try:
        for start in range(0, x.shape[0], batch_size):
            batch = x[start:start + batch_size].to(dev, torch.float32)
            feats = model.features(batch, layers)
            for i, name in enumerate(layers):
                h = _reduce(feats[name], pool).float()  # (B, D)
                if name not in projections:
                    wide = max_dim is not None and h.shape[1] > max_dim
                    projections[name] = _projection(h.shape[1], max_dim, seed, i, dev) if wide else None
                if projections[name] is not None:
                    h = h @ projections[name]  # (B, max_dim)
                chunks[name].append(h.cpu().numpy())
    finally:
        model.train(was_training)
    return {name: np.concatenate(chunks[name]) if chunks[name] else np.zeros((0, 0), np.float32)
            for name in layers}
