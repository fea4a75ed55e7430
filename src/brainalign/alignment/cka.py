"""Linear centred kernel alignment (Kornblith et al., ICML 2019, "Similarity of neural network
representations revisited"), as used in the neural loss of Dapello et al. (ICLR 2023, dapello/braintree).

    CKA(X, Y) = ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F),   X, Y column-centred (stimuli x features)

Invariant to orthogonal transforms and isotropic scaling of either representation (not to arbitrary
invertible linear maps); 1 when the representations agree up to those, 0 when their centred features are
orthogonal. Differentiable, so a regularizer can minimise e.g. log(1 - CKA) as Dapello et al. do.
"""

from __future__ import annotations

import numpy as np
import torch

from brainalign.errors import DataError


def linear_cka(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Linear CKA between two representations of the same stimuli.

    Computed in feature space (D1 x D2 cross-covariance) or through the n x n Gram matrices, whichever
    is cheaper; both give the same value. A representation that is constant over the stimuli has no
    similarity to anything: the result is 0 (with a finite, zero gradient) rather than 0/0.

    Args:
        x: (n, D1) features, one row per stimulus (torch or numpy, e.g. from ``extract_features``);
            more than 2 dims are flattened after the first.
        y: (n, D2) features of the same stimuli in the same order.
    Returns:
        0-dim tensor in [0, 1] in the dtype of the inputs (promoted), differentiable in both.
    Shape:
        x (n, ...), y (n, ...) -> ()
    """
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if not (x.is_floating_point() and y.is_floating_point()):
        raise DataError(f"linear_cka needs float features; got {x.dtype} and {y.dtype}")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"linear_cka needs the same stimuli in both: x has {x.shape[0]} rows, y {y.shape[0]}")
    if x.shape[0] < 2:
        raise DataError(f"linear_cka needs at least 2 stimuli; got {x.shape[0]}")
    dtype = torch.promote_types(x.dtype, y.dtype)
    x = x.reshape(x.shape[0], -1).to(dtype)
    y = y.reshape(y.shape[0], -1).to(dtype)
    x = x - x.mean(0, keepdim=True)  # (n, D1)
    y = y - y.mean(0, keepdim=True)  # (n, D2)
    # CKA is scale-invariant; dividing by a detached scale keeps the fourth powers below from
    # under- or overflowing without changing the value or the gradient.
    tiny = torch.finfo(dtype).tiny
    x = x / x.detach().abs().max().clamp_min(tiny)
    y = y / y.detach().abs().max().clamp_min(tiny)
    n, d1, d2 = x.shape[0], x.shape[1], y.shape[1]
    if n * n * (d1 + d2) < d1 * d2 * n + n * (d1 * d1 + d2 * d2):
        kx, ky = x @ x.T, y @ y.T  # (n, n) Gram matrices: <Kx, Ky> = ||Y'X||_F^2
        cross, xx, yy = (kx * ky).sum(), kx.square().sum(), ky.square().sum()
    else:
        cross = (y.T @ x).square().sum()  # ||Y'X||_F^2
        xx, yy = (x.T @ x).square().sum(), (y.T @ y).square().sum()
    # sqrt(xx * yy) is the denominator; clamping keeps the value and gradient finite for constant inputs.
    return cross / torch.sqrt((xx * yy).clamp_min(tiny))
