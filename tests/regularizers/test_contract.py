"""Every registered regularizer: minimal at its own target, a gradient step descends it, gradcheck in float64,
finite on degenerate batches. Parametrized over the registry, so a new entry must add a case here."""

from __future__ import annotations

import math

import pytest
import torch

from brainalign.config import ModelConfig
from brainalign.models import build_model
from brainalign.registry import REGULARIZERS
from brainalign.regularizers.base import RegularizationSet
from brainalign.regularizers.diagnostics import pixel_rows

N_STIMULI = 12
N_TARGETS = 16  # = width of small_cnn(width=4)'s fc layer, so that features can equal targets

# Small settings per entry: a conv layer and a flat layer where the method allows, tiny heads and batches.
PARAMS = {
    "neural_similarity": {"layers": ["conv2", "fc"], "batch_size": 8},
    "pixel_similarity": {"layers": ["conv2", "fc"], "batch_size": 8, "threshold": 0.2},
    "pixel_continuous": {"layers": ["conv2", "fc"], "batch_size": 8},
    "decorrelation": {"layers": ["conv2", "fc"], "batch_size": 8},
    "neural_prediction": {"layers": ["fc"], "batch_size": 6},
    "cka": {"layers": ["fc"], "batch_size": 8, "warmup_steps": 0},
    "dcca": {"layers": ["fc"], "batch_size": 8, "hidden": [8], "out_dim": 3, "r1": 1e-6, "r2": 1e-6, "pca": None},
    "spectral": {"layers": ["fc"], "tau": 3},
}
SPECTRAL_BATCH = 24  # > the fc width (16)


def test_every_registered_regularizer_has_a_case():
    assert set(PARAMS) == set(REGULARIZERS.names())


class Case:
    """A set-up regularizer on a tiny model, with a batch of indices and feature shapes."""

    def __init__(self, name: str):
        torch.manual_seed(0)
        self.name = name
        self.info = REGULARIZERS.info(name)
        self.model = build_model(ModelConfig(name="small_cnn", width=4), 3, 1, 8)
        gen = torch.Generator().manual_seed(1)
        images = torch.rand(N_STIMULI, 1, 8, 8, generator=gen)
        targets = None
        if self.info.target == "recording":
            targets = torch.rand(N_STIMULI, N_TARGETS, generator=gen) + 0.1
        elif self.info.target == "pixels":
            rows = pixel_rows(images)
            targets = rows - rows.mean(0)
        reg_set = None
        if self.info.target != "none":
            reg_set = RegularizationSet(images, [f"s{i}" for i in range(N_STIMULI)], targets)
        self.reg = REGULARIZERS.get(name)(**PARAMS[name])
        self.reg.setup(self.model, reg_set, probe=images[:2])
        self.layers = self.reg.layers
        with torch.no_grad():
            feats = self.model.features(images[:1], self.layers)
        self.shapes = {k: tuple(v.shape[1:]) for k, v in feats.items()}
        if self.reg.stream == "classification":
            self.index = None
            self.batch = SPECTRAL_BATCH
        else:
            self.index = self.reg.sample(N_STIMULI, torch.Generator().manual_seed(2))
            self.batch = len(self.index)
        if name == "spectral":  # eigenvectors = identity, so the batch spectrum is the diagonal covariance
            for layer in self.layers:
                w = self.reg.widths[layer]
                getattr(self.reg, f"eigvecs_{layer}").copy_(torch.eye(w))
            self.reg.ready = True
        self.reg.eval()  # running means stay fixed (at 0) so the term is a pure function of the features

    def random_features(self, seed: int = 3, dtype=torch.float32) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        return {k: torch.randn(self.batch, *s, generator=gen, dtype=dtype) for k, s in self.shapes.items()}

    def constant_features(self, value: float) -> dict[str, torch.Tensor]:
        return {k: torch.full((self.batch, *s), value) for k, s in self.shapes.items()}

    def identical_rows(self) -> dict[str, torch.Tensor]:
        """The features identical images would give: every stimulus the same (random) vector."""
        one = self.random_features(seed=9)
        return {k: v[:1].expand_as(v).clone() for k, v in one.items()}

    def target_features(self) -> dict[str, torch.Tensor]:
        """Features at which the term is minimal (and, where needed, parameters set to reach it)."""
        kind = self.info.kind
        if kind == "similarity":
            i, j = self.reg.pair_index(self.index)
            t = self.reg.target_pairs(i, j).float()  # (P,)
            k = len(t)
            out = {}
            for name, shape in self.shapes.items():
                d = math.prod(shape)
                assert d >= 2 * k
                a, b = torch.zeros(k, d), torch.zeros(k, d)
                rows = torch.arange(k)
                a[rows, 2 * rows] = 1.0
                b[rows, 2 * rows] = t
                b[rows, 2 * rows + 1] = torch.sqrt(1 - t ** 2)
                out[name] = torch.cat([a, b]).reshape(2 * k, *shape)
            return out
        if self.name == "cka":
            return {"fc": self.reg.targets[self.index].clone()}
        if self.name == "neural_prediction":
            # Choose features, then solve the linear head exactly: head(x) = targets.
            x = self.random_features()["fc"]
            y = self.reg.targets[self.index]
            design = torch.cat([x, torch.ones(len(x), 1)], 1).double()
            sol = torch.linalg.lstsq(design, y.double()).solution.float()  # (D + 1, F), exact for B <= D + 1
            with torch.no_grad():
                self.reg.head.weight.copy_(sol[:-1].T)
                self.reg.head.bias.copy_(sol[-1])
            return {"fc": x}
        if self.name == "dcca":
            # The same input through the same head on both sides: canonical correlations ~1.
            with torch.no_grad():
                for p, q in zip(self.reg.model_head.parameters(), self.reg.neural_head.parameters(), strict=True):
                    p.copy_(q)
            return {"fc": self.reg.targets[self.index].clone()}
        if self.name == "spectral":
            gen = torch.Generator().manual_seed(4)
            z = torch.randn(self.batch, 16, generator=gen, dtype=torch.float64)
            z = z - z.mean(0)
            q, _ = torch.linalg.qr(z)  # orthonormal, centred columns: q'q = I
            lam = (torch.arange(16, dtype=torch.float64) + 1) ** -1.0  # exactly 1/n
            x = q * math.sqrt(self.batch - 1) * lam.sqrt()
            return {"fc": x.float()}
        raise AssertionError(f"no target construction for {self.name}")

    def loss(self, feats) -> torch.Tensor:
        return self.reg(feats, self.index)


@pytest.fixture(params=sorted(PARAMS))
def case(request):
    return Case(request.param)


def test_minimal_at_its_own_target(case):
    at = case.target_features()
    best = float(case.loss(at).detach())
    gen = torch.Generator().manual_seed(5)
    for scale in (0.05, 0.3, 1.0):
        for _ in range(3):
            moved = {k: v + scale * torch.randn(v.shape, generator=gen) for k, v in at.items()}
            assert float(case.loss(moved).detach()) > best - 1e-6, (case.name, scale)
    # The optimum value where the formula gives one.
    if case.info.kind == "similarity" or case.name in ("neural_prediction", "spectral"):
        assert best == pytest.approx(0.0, abs=1e-4)
    if case.name == "cka":
        assert best == pytest.approx(math.log(case.reg.eps), abs=0.05)
    if case.name == "dcca":
        k = case.reg.out_dim * (case.reg.lam if case.reg.weighting == "convex" else 1.0)  # convex: lam L
        assert -k <= best < -0.9 * k


def test_one_gradient_step_descends(case):
    feats = {k: v.requires_grad_(True) for k, v in case.random_features().items()}
    params = [*feats.values(), *case.reg.parameters()]
    before = case.loss(feats)
    before.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in feats.values())
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= 1e-3 * p.grad
    assert float(case.loss(feats).detach()) < float(before.detach())


def test_gradcheck_float64(case):
    """In float64; for spectral with the anchor's gradient on (the paper detaches it, which a numerical
    derivative cannot see; ``test_spectral_anchor_is_held_constant`` checks the detached gradient)."""
    if case.name == "spectral":
        case.reg.anchor_gradient = True
    case.reg.double()
    feats = case.random_features(dtype=torch.float64)
    names = list(feats)
    inputs = tuple(feats[n].requires_grad_(True) for n in names)

    def term(*xs):
        return case.reg(dict(zip(names, xs, strict=True)), case.index)

    assert torch.autograd.gradcheck(term, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("kind", ["zeros", "ones", "identical"])
@pytest.mark.parametrize("training", [False, True])
def test_finite_on_degenerate_batches(case, kind, training):
    case.reg.train(training)
    feats = {"zeros": lambda: case.constant_features(0.0), "ones": lambda: case.constant_features(1.0),
             "identical": case.identical_rows}[kind]()
    feats = {k: v.requires_grad_(True) for k, v in feats.items()}
    value = case.loss(feats)
    assert torch.isfinite(value)
    value.backward()
    for v in feats.values():
        assert v.grad is None or torch.isfinite(v.grad).all()
    for p in case.reg.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
