"""Tiny models trained for a second or two on sklearn's 8x8 digits, for the attack and robustness tests.

Both conftests (tests/attacks, tests/robustness) import it by this name from this folder, so one module
object and its lru_caches serve the whole session: each model is trained once. Nothing is written to disk.
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

N_TRAIN = 1400  # of the 1797 digits; the rest are test images


@cache
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test), images (N, 1, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def colorize(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """RGB digits whose hue carries the label (36 degrees per class, +-15 jitter): grey value -> HSV value."""
    g = torch.Generator().manual_seed(seed)
    hue = (y.float() * 36 + (torch.rand(len(y), generator=g) * 30 - 15)) % 360 / 360  # (N,)
    n = torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)
    k = (n + 6 * hue.view(-1, 1, 1, 1)) % 6
    f = torch.minimum(k, 4 - k).clamp(0, 1)
    return (x - x * 0.8 * f).clamp(0, 1)  # saturation 0.8, value = grey level


class Quantize(nn.Module):
    """A non-differentiable front end: round to ``levels`` grey levels (zero gradient almost everywhere)."""

    def __init__(self, levels: int = 5):
        super().__init__()
        self.levels = levels

    def forward(self, x):
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


class NoisyLogits(nn.Module):
    """A stochastic model: Gaussian noise on the logits at every call, also in eval mode."""

    def __init__(self, model: nn.Module, scale: float = 0.5):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        logits = self.model(x)
        return logits + self.scale * torch.randn_like(logits)


def cnn(in_channels: int, seed: int, width: int = 8) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * width * 16, 10),
    )


def train(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, seed: int, steps: int = 300) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(y), (128,), generator=g)
        for group in opt.param_groups:  # cosine decay: a well-converged model in a few hundred steps
            group["lr"] = 3e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval().requires_grad_(False)


@cache
def gray_model(seed: int = 0) -> nn.Sequential:
    x, y, _, _ = digits()
    return train(cnn(1, seed), x, y, seed)


@cache
def rgb_model(seed: int = 0) -> nn.Sequential:
    x, y, _, _ = digits()
    return train(cnn(3, seed), colorize(x, y, seed=1), y, seed)


def test_batch(n: int = 32, rgb: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    _, _, x, y = digits()
    x, y = x[:n], y[:n]
    return (colorize(x, y, seed=2) if rgb else x), y
