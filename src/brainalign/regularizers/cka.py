"""CKA regularizer. Dapello, Kar, Schrimpf, Geary, Ferguson, Cox & DiCarlo (ICLR 2023), "Aligning model and
macaque inferior temporal cortex representations improves model-to-human behavioral alignment and adversarial
robustness" (dapello/braintree).

    L = CE + w * log(1 - CKA(X, Y)),   CKA(X, Y) = ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F)

with X (B, D) the layer's features and Y (B, F) the trial-averaged responses of a neural batch, both
column-centred (linear CKA). The term is 0 during a warm-up (the paper: no neural loss for the first 2500
steps) and, after that, taken on each step with probability ``mix_rate`` (the paper's cohort sweep; 1 = every
step), the draw coming from the run's generator.

Paper vs code: braintree's ``LogCenteredKernelAlignment`` is the same formula; we add eps inside the log
(log(1 - CKA + eps)) so the term stays finite at CKA = 1. ``linear_cka`` is the shared, pure
``brainalign.alignment.cka.linear_cka`` (0 with a zero gradient on constant features).

Defaults (docs/regularizers.md has the table):
- neural batch 128 stimuli (braintree ``--batch-size 128``), whatever the run's ``train.reg_batch_size``;
- responses averaged over 70-170 ms (braintree ``--window 7t17``) and over trials; a recording with no time
  bin in that window keeps its own stated window (e.g. an assembly already averaged over it);
- warm-up: the paper's *fraction* of training, ``WARMUP_FRACTION`` = 2500 / 48,000 steps. Their final runs
  (array_final.sbatch) trained 1200 epochs of the neural loader (Lightning's ``min_size`` cycling; 5,184
  Majaj-Hong training stimuli / 128 = 40 steps, drop_last), so 48,000 steps. On a run of S steps the
  warm-up is round(S x 2500 / 48000); ``warmup_steps`` sets it in steps instead;
- BatchNorm: braintree runs the neural batch with ``model.eval()`` (``adapt_bn_to_stim=0``), so the neural
  stimuli are normalised with the running statistics of the classification images and never change them;
  ``bn: running`` (default) does the same for BatchNorm layers, ``bn: batch`` normalises them by their own
  batch and lets them update the running statistics (braintree's ``adapt_bn_to_stim=1``).
Not reproduced: the HVM label loss (w_s, 0 in the paper's main runs) and the paper's CORnet-S IT block (we
take the penultimate layer by default).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from brainalign.alignment.cka import linear_cka
from brainalign.errors import ConfigError
from brainalign.registry import REGULARIZERS
from brainalign.regularizers.base import (
    RegularizationSet,
    Regularizer,
    RegularizerInfo,
    check_choice,
    flat,
    zero_term,
)

#: Dapello et al.'s warm-up as a fraction of their training: 2500 of 1200 epochs x 40 neural batches.
WARMUP_FRACTION = 2500 / 48_000


def scaled_warmup(steps: int, fraction: float = WARMUP_FRACTION) -> int:
    """The warm-up in steps that keeps ``fraction`` of a run of ``steps`` steps (paper: 2500 of 48,000)."""
    return int(round(steps * fraction))


def log_cka_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """log(1 - CKA(x, y) + eps): minimal (log eps) when x is a scaled rotation of y."""
    return torch.log(1 - linear_cka(x, y) + eps)


@REGULARIZERS.register(
    "cka",
    description="Dapello et al. 2023: log(1 - linear CKA) between a layer and neural responses",
    info=RegularizerInfo(target="recording", reference="Dapello et al. ICLR 2023 (dapello/braintree)",
                         default_layers="penultimate", kind="alignment",
                         target_defaults=(("time_window", [70, 170]), ("time_average", True))))
class CKA(Regularizer):
    """log(1 - CKA) between a layer's features and the responses of a neural batch.

    Args:
        layers: one or more layers; their flattened features are concatenated (default: penultimate).
        warmup_steps: steps with no neural loss at the start of training (default None: the paper's fraction
            ``warmup_fraction`` of the run's steps; the paper: 2500 steps of 48,000).
        warmup_fraction: the warm-up as a fraction of the run's steps when ``warmup_steps`` is None.
        mix_rate: probability that a step (after warm-up) includes the term (paper default 1).
        eps: inside the log, so that CKA = 1 stays finite.
        batch_size: stimuli per neural batch (paper: 128).
        bn: ``running`` (braintree: BatchNorm layers use, and keep, the classification stream's running
            statistics for the neural stimuli) or ``batch`` (normalise by the neural batch, update the stats).
    """

    default_layers = "penultimate"

    def __init__(self, layers=None, warmup_steps: int | None = None, warmup_fraction: float = WARMUP_FRACTION,
                 mix_rate: float = 1.0, eps: float = 1e-6, batch_size: int = 128, bn: str = "running"):
        super().__init__()
        if warmup_steps is not None and warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if not 0 <= warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if not 0 < mix_rate <= 1:
            raise ConfigError(f"mix_rate must be in (0, 1], got {mix_rate}")
        check_choice("bn", bn, ("running", "batch"))
        self.layers = tuple(layers) if layers else ()
        self.warmup_steps = None if warmup_steps is None else int(warmup_steps)
        self.warmup_fraction, self.mix_rate, self.eps, self.bn = float(warmup_fraction), float(mix_rate), float(eps), bn
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
        if self.warmup_steps is None:
            self.warmup_steps = scaled_warmup(steps, self.warmup_fraction)
        elif self.warmup_steps >= steps:
            raise ConfigError(f"cka warmup_steps={self.warmup_steps} >= the run's {steps} training steps: the term "
                              f"would never act; lower warmup_steps")

    def run_facts(self) -> dict:
        return {"warmup_steps": self.warmup_steps, "batch_size": self.batch_size, "bn": self.bn}

    def stimulus_features(self, model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.bn == "batch":
            return model.features(images, self.layers)
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
        for m in norms:
            m.eval()
        try:
            return model.features(images, self.layers)
        finally:
            for m in norms:
                m.train()

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        # One uniform draw per step, whether or not it is used, so that the random stream never depends on it.
        draw = float(torch.rand((), generator=generator))
        self.active = int(self.step) >= (self.warmup_steps or 0) and draw < self.mix_rate
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
