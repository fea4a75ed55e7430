"""The Gaussian2d readout: its formula, its gradients, neuralpredictors' FullGaussian2d, and its use in
neural_prediction."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from brainalign.errors import ConfigError
from brainalign.regularizers.readouts import Gaussian2d, bilinear_weights


def _formula(readout: Gaussian2d, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """y_n = sum_c w_cn grid_sample(x, p_n)_c + b_n, with grid_sample as the reference sampler."""
    sampled = F.grid_sample(x, grid, align_corners=True).squeeze(-1)  # (B, C, N)
    return (sampled * readout.features.view(1, readout.channels, readout.outdims)).sum(1) + readout.bias


@pytest.mark.parametrize("gauss_type", ["isotropic", "uncorrelated", "full"])
def test_gaussian2d_matches_its_formula_in_eval_and_when_sampling(gauss_type):
    gen = torch.Generator().manual_seed(0)
    readout = Gaussian2d(5, 7, init_mu_range=1.0, init_sigma=0.4, gauss_type=gauss_type, generator=gen).double()
    with torch.no_grad():
        readout.features.normal_(generator=gen)
        readout.bias.normal_(generator=gen)
    x = torch.randn(3, 5, 6, 9, generator=gen, dtype=torch.float64)
    readout.eval()  # eval: read at mu (matrix product with bilinear weights)
    mu = readout.mu.clamp(-1, 1).expand(3, 7, 1, 2)
    torch.testing.assert_close(readout(x), _formula(readout, x, mu), rtol=0, atol=1e-12)
    readout.train()  # training: a position per image, p = clamp(mu + Sigma eps)
    out = readout(x, generator=torch.Generator().manual_seed(5))
    eps = torch.randn((3, 7, 1, 2), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    noise = torch.einsum("ancd,bnid->bnic", readout.sigma, eps) if gauss_type == "full" else eps * readout.sigma
    torch.testing.assert_close(out, _formula(readout, x, (mu + noise).clamp(-1, 1)), rtol=0, atol=1e-12)
    readout.batch_sample = False  # one position per neuron for the whole batch
    out = readout(x, generator=torch.Generator().manual_seed(6))
    eps = torch.randn((1, 7, 1, 2), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    noise = torch.einsum("ancd,bnid->bnic", readout.sigma, eps) if gauss_type == "full" else eps * readout.sigma
    torch.testing.assert_close(out, _formula(readout, x, (mu[:1] + noise).clamp(-1, 1).expand(3, 7, 1, 2)),
                               rtol=0, atol=1e-12)


def test_bilinear_weights_read_pixel_centres_and_corners_exactly():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    corners = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]])  # (x, y): top left, bottom right, top right
    read = x.flatten(2) @ bilinear_weights(corners, 3, 4).T
    assert read.flatten().tolist() == [0.0, 11.0, 3.0]
    half = torch.tensor([[-1.0 + 1.0 / 3, 0.0]])  # halfway between columns 0 and 1, middle row
    assert float((x.flatten(2) @ bilinear_weights(half, 3, 4).T).item()) == pytest.approx(4.5)


def test_gaussian2d_shapes_gradients_and_gradcheck():
    readout = Gaussian2d(4, 6, init_mu_range=0.5, init_sigma=0.3, generator=torch.Generator().manual_seed(1))
    x = torch.randn(8, 4, 5, 5, requires_grad=True)
    y = readout(x, generator=torch.Generator().manual_seed(2))
    assert y.shape == (8, 6) and torch.isfinite(y).all()
    y.square().sum().backward()
    for name, p in readout.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0
    readout = readout.double().eval()
    xd = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: readout(t), (xd,))
    with pytest.raises(ConfigError, match="expects"):
        readout(torch.randn(2, 3, 5, 5, dtype=torch.float64))
    with pytest.raises(ConfigError):
        Gaussian2d(4, 6, gauss_type="diagonal")


def test_gaussian2d_agrees_with_neuralpredictors_full_gaussian2d():
    """Same parameters, same map: the same outputs in eval, and when sampling from the same noise."""
    readouts = pytest.importorskip("neuralpredictors.layers.readouts")
    gen = torch.Generator().manual_seed(3)
    for gauss_type in ("isotropic", "uncorrelated", "full"):
        ours = Gaussian2d(6, 5, init_mu_range=0.8, init_sigma=0.5, gauss_type=gauss_type, generator=gen)
        theirs = readouts.FullGaussian2d((6, 4, 7), 5, bias=True, init_mu_range=0.8, init_sigma=0.5,
                                         gauss_type=gauss_type)
        with torch.no_grad():
            ours.features.normal_(generator=gen)
            ours.bias.normal_(generator=gen)
            theirs._mu.copy_(ours.mu)
            theirs.sigma.copy_(ours.sigma)
            theirs._features.copy_(ours.features)
            theirs.bias.copy_(ours.bias)
        x = torch.randn(4, 6, 4, 7, generator=gen)
        ours.eval()
        theirs.eval()
        torch.testing.assert_close(ours(x), theirs(x))
        ours.train()
        theirs.train()
        torch.manual_seed(11)
        expected = theirs(x)  # draws its noise from the global generator: mu.new(...).normal_()
        torch.manual_seed(11)
        torch.testing.assert_close(ours(x), expected)


def test_neural_prediction_with_a_gaussian2d_readout(tiny_config):
    from brainalign.train import build_trainee

    regs = [{"name": "neural_prediction", "weight": 1.0, "recording": {"name": "sim_v1", "options": {"n_units": 12}},
             "params": {"readout": "gaussian2d", "loss": "poisson"}}]
    trainee = build_trainee(tiny_config(regularizers=regs, data={"max_train": 120},
                                        model={"name": "small_cnn", "width": 4}))
    reg, _ = trainee.regularizers[0]
    assert reg.layers == ("conv2",) and isinstance(reg.head, Gaussian2d)  # default: the deepest map (conv3 is pooled)
    model = trainee.model
    index = torch.arange(6)
    feats = model.features(reg.reg_set.images[index], reg.layers)
    term = reg(feats, index)
    assert term.dim() == 0 and torch.isfinite(term)
    term.backward()
    assert reg.head.mu.grad is not None and next(model.parameters()).grad is not None
    with pytest.raises(ConfigError, match="reads one layer"):
        build_trainee(tiny_config(regularizers=[{**regs[0], "params": {"readout": "gaussian2d",
                                                                       "layers": ["conv2", "conv3"]}}]))
    with pytest.raises(ConfigError, match="needs a conv layer"):
        build_trainee(tiny_config(regularizers=[{**regs[0], "params": {"readout": "gaussian2d", "layers": ["fc"]}}],
                                  data={"max_train": 120}))
