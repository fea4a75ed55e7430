"""CKA regularizer. Dapello, Kar, Schrimpf, Geary, Ferguson, Cox & DiCarlo (ICLR 2023), "Aligning model and
macaque inferior temporal cortex representations improves model-to-human behavioral alignment and adversarial
robustness" (dapello/braintree).

    L = CE + w * log(1 - CKA(X, Y)),   CKA(X, Y) = ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F)

with X (B, D) the layer's features and Y (B, F) the trial-averaged responses of a neural batch, both
column-centred (linear CKA). The term is 0 for the first ``warmup_steps`` steps (the paper: no neural loss
for the first 2500 steps) and, after that, taken on each step with probability ``mix_rate`` (the paper's
cohort sweep; 1 = every step), the draw coming from the run's generator.

Paper vs code: braintree's ``LogCenteredKernelAlignment`` is the same formula; we add eps inside the log
(log(1 - CKA + eps)) so the term stays finite at CKA = 1. ``linear_cka`` is the shared, pure
``brainalign.alignment.cka.linear_cka`` (0 with a zero gradient on constant features).
Not reproduced: separate BatchNorm statistics for the neural stimuli, and the HVM label loss (w_s).
Defaults: warmup 2500 steps, mix_rate 1, the penultimate layer (the paper used CORnet-S's IT block),
neural batch ``train.reg_batch_size`` (the paper: 128; set ``batch_size: 128``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from brainalign.alignment.cka import linear_cka
from brainalign.errors import ConfigError
from brainalign.registry import REGULARIZERS
from brainalign.regularizers.base import RegularizationSet, Regularizer, RegularizerInfo, flat, zero_term


def log_cka_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """log(1 - CKA(x, y) + eps): minimal (log eps) when x is a scaled rotation of y."""
    return torch.log(1 - linear_cka(x, y) + eps)


@REGULARIZERS.register(
    "cka",
    description="Dapello et al. 2023: log(1 - linear CKA) between a layer and neural responses",
    info=RegularizerInfo(target="recording", reference="Dapello et al. ICLR 2023 (dapello/braintree)",
                         default_layers="penultimate", kind="alignment"))
class CKA(Regularizer):
    """log(1 - CKA) between a layer's features and the responses of a neural batch.

    Args:
        layers: one or more layers; their flattened features are concatenated (default: penultimate).
        warmup_steps: steps with no neural loss at the start of training (paper: 2500).
        mix_rate: probability that a step (after warm-up) includes the term (paper default 1).
        eps: inside the log, so that CKA = 1 stays finite.
        batch_size: stimuli per neural batch (default: the run's ``train.reg_batch_size``; paper 128).
    """

    default_layers = "penultimate"

    def __init__(self, layers=None, warmup_steps: int = 2500, mix_rate: float = 1.0, eps: float = 1e-6,
                 batch_size: int | None = None):
        super().__init__()
        if warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if not 0 < mix_rate <= 1:
            raise ConfigError(f"mix_rate must be in (0, 1], got {mix_rate}")
        self.layers = tuple(layers) if layers else ()
        self.warmup_steps, self.mix_rate, self.eps = int(warmup_steps), float(mix_rate), float(eps)
        if batch_size is not None:
            self.batch_size = int(batch_size)
        if self.batch_size < 3:
            raise ConfigError(f"cka batch_size must be >= 3 (CKA of 2 centred points is always 1), "
                              f"got {self.batch_size}")
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.active = True
        self.targets: torch.Tensor | None = None

    def setup(self, model: nn.Module, reg_set: RegularizationSet | None, probe: torch.Tensor | None = None) -> None:
        if reg_set is None or reg_set.targets is None:
            raise ConfigError("cka needs neural targets (a recording)")
        super().setup(model, reg_set)
        self.targets = flat(reg_set.targets).float()

    def check_run(self, config, data) -> None:
        steps = config.train.epochs * math.ceil(len(data.train) / config.train.batch_size)
        if self.warmup_steps >= steps:
            raise ConfigError(f"cka warmup_steps={self.warmup_steps} >= the run's {steps} training steps: the term "
                              f"would never act; lower warmup_steps")

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        # One uniform draw per step, whether or not it is used, so that the random stream never depends on it.
        draw = float(torch.rand((), generator=generator))
        self.active = int(self.step) >= self.warmup_steps and draw < self.mix_rate
        self.step += 1
        return super().sample(n, generator)

    def forward(self, features: dict[str, torch.Tensor], index: torch.Tensor | None) -> torch.Tensor:
        if index is None:
            raise ConfigError("cka needs the indices of its regularization stimuli")
        if not self.active:
            return zero_term(features)
        x = torch.cat([flat(features[name]) for name in self.layers], 1)
        y = self.targets[index.cpu()].to(device=x.device, dtype=x.dtype)
        return log_cka_loss(x, y, self.eps)
