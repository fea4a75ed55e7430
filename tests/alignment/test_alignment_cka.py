"""Linear CKA: hand computation, invariances, gradients, degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.alignment import linear_cka
from brainalign.errors import DataError


def cka_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. (2019) eq. for linear CKA, via HSIC of centred Gram matrices."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    kx, ky = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.sum(kx * ky) / np.sqrt(np.sum(kx * kx) * np.sum(ky * ky)))


@pytest.mark.parametrize("n, d1, d2", [(40, 5, 7), (6, 50, 80)], ids=["feature-space", "gram-space"])
def test_matches_hand_computation(n, d1, d2):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, d1)) + 3.0
    y = x[:, :1] * rng.standard_normal((1, d2)) + rng.standard_normal((n, d2))
    value = linear_cka(torch.tensor(x), torch.tensor(y))
    assert value.item() == pytest.approx(cka_numpy(x, y), abs=1e-12)
    assert 0.05 < value.item() < 0.95  # a non-trivial value


def test_invariances():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 8, generator=g, dtype=torch.float64)
    y = torch.randn(30, 12, generator=g, dtype=torch.float64) + x @ torch.randn(8, 12, generator=g,
                                                                                 dtype=torch.float64)
    base = linear_cka(x, y).item()
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    assert linear_cka(x, y @ q).item() == pytest.approx(base, abs=1e-12)  # orthogonal transform
    assert linear_cka(7.5 * x, y).item() == pytest.approx(base, abs=1e-12)  # isotropic scaling
    assert linear_cka(x + 4.0, y - 2.0).item() == pytest.approx(base, abs=1e-12)  # translation (centring)
    assert linear_cka(y, x).item() == pytest.approx(base, abs=1e-12)  # symmetric
    assert linear_cka(x, x).item() == pytest.approx(1.0, abs=1e-12)
    # Not invariant to a non-isotropic rescaling of features.
    assert abs(linear_cka(x * torch.linspace(0.1, 10, 8, dtype=torch.float64), y).item() - base) > 1e-3


def test_orthogonal_representations_score_zero():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    y = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    assert linear_cka(x, y).item() == pytest.approx(0.0, abs=1e-7)


def test_gradcheck_and_flattening():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(linear_cka, (x, y))
    assert linear_cka(x, y).item() == pytest.approx(cka_numpy(x.detach().reshape(10, -1).numpy(),
                                                               y.detach().numpy()), abs=1e-12)


def test_gradient_ascent_increases_similarity():
    g = torch.Generator().manual_seed(2)
    target = torch.randn(64, 16, generator=g)
    x = torch.randn(64, 16, generator=g, requires_grad=True)
    before = linear_cka(x, target).item()
    for _ in range(20):
        (grad,) = torch.autograd.grad(linear_cka(x, target), x)
        with torch.no_grad():
            x += 0.5 * grad / grad.norm()  # normalised ascent step
    assert linear_cka(x, target).item() > before + 0.1


def test_degenerate_inputs_are_finite_and_extreme_scales_are_fine():
    x = torch.zeros(8, 3, requires_grad=True)
    value = linear_cka(x + 5.0, torch.randn(8, 4))  # constant over stimuli
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(x.grad).all()
    a, b = torch.randn(20, 5), torch.randn(20, 6)
    assert linear_cka(a * 1e-30, b * 1e30).item() == pytest.approx(linear_cka(a, b).item(), rel=1e-4)


def test_mismatched_stimuli_raise():
    with pytest.raises(DataError, match="same stimuli"):
        linear_cka(torch.randn(5, 2), torch.randn(6, 2))
