"""The training-time defence protocol: a defence owns the classification loss of a batch.

Lifecycle in ``brainalign.train``: ``build_defence(config)`` builds and validates the run's defence before
training; ``on_epoch_start(epoch)`` each epoch (schedules such as an eps warm-up); ``loss(model, x, y, gen)``
each step, in place of cross-entropy (regularizer terms are still added on top, so a defence stacks with a
brain-inspired regularizer). All randomness comes from ``gen``, the epoch's generator, so runs stay
deterministic and resumable.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from brainalign.errors import ConfigError


@dataclass(frozen=True)
class DefenceInfo:
    """Facts about a registered defence."""

    reference: str = ""
    uses_attack: bool = False  # crafts adversarial examples during training (then eval must not rely on it)


class Defence(ABC):
    """Replaces plain cross-entropy on a classification batch.

    ``loss(model, x, y, generator)`` returns the batch loss and the clean logits (for accuracy logging).
    The model is in train mode on entry and must be in train mode on return.
    """

    @abstractmethod
    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, clean logits) for one classification batch."""

    def validate(self, eval_eps: dict[str, float]) -> None:
        """Fail before training on settings that contradict the evaluation (e.g. a training eps above it).

        ``eval_eps`` maps a norm ("Linf", "L2") to the largest eps the run's evaluation attacks use in it.
        """
        return None

    def on_epoch_start(self, epoch: int) -> None:
        """Hook called by the training loop at the start of every epoch (0-based), before its first step."""
        return None

    @property
    def training_attack(self) -> dict[str, Any] | None:
        """The attack crafted during training, as recorded in result.json (None for attack-free defences)."""
        return None


# --- shared plumbing -------------------------------------------------------------------------------------


@contextmanager
def crafting(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients while adversarial examples are crafted; restored afterwards.

    Eval mode, as in MadryLab's ``robustness`` library and the TRADES reference code: batch-norm running
    statistics are not updated by the inner-loop batches, and dropout is off, so the inner maximisation
    sees the same deterministic function the evaluation attacks. The parameters are frozen so that the inner
    loop can never compute or accumulate weight gradients: each inner step is one forward and one
    input-gradient backward pass. (PGD's ``autograd.grad`` with respect to the input already skips weight
    gradients, so freezing saves nothing measurable today; benchmarks/bench_adversarial_training.py compares.)
    """
    was_training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)


@torch.no_grad()
def clean_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of the clean batch for accuracy logging, in eval mode, without touching batch-norm statistics."""
    was_training = model.training
    model.eval()
    try:
        return model(x)
    finally:
        model.train(was_training)


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """``generator`` itself on the CPU; elsewhere a generator on ``device`` seeded from one draw of it.

    Random tensors on an accelerator need a generator on that device; seeding it from the epoch's generator
    keeps the run deterministic and resumable.
    """
    if device.type == "cpu" or generator.device == device:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def check_number(field: str, value: Any, *, minimum: float, integer: bool = False,
                 strict: bool = False) -> float | int:
    """A finite number (a whole number if ``integer``) >= ``minimum`` (> if ``strict``), else ConfigError."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if integer:
        ok = is_number and float(value).is_integer()
    else:
        ok = is_number and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{field} must be {kind} {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return int(value) if integer else float(value)


def check_norm(norm: Any) -> str:
    if norm not in ("Linf", "L2"):
        raise ConfigError(f"norm must be Linf or L2, got {norm!r}")
    return norm


def check_eps_within_evaluation(eps: float, norm: str, eval_eps: dict[str, float]) -> None:
    """A training eps larger than every eps the evaluation tests in that norm cannot be judged by it."""
    top = eval_eps.get(norm)
    if top is not None and eps > top + 1e-12:
        raise ConfigError(f"eps {eps:g} ({norm}) is larger than the largest {norm} eps of the evaluation "
                          f"({top:g}); lower eps or add larger strengths to eval.attacks")
