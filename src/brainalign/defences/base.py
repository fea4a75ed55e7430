"""The training-time defence protocol: a defence owns the classification loss of a batch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


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
        """Fail before training on settings that contradict the evaluation (e.g. a training eps above it)."""
        return None
