"""Training-time defences (adversarial training, TRADES, noise augmentation), registered in ``DEFENCES``."""

from __future__ import annotations

from brainalign.defences.base import Defence, DefenceInfo
from brainalign.errors import ConfigError
from brainalign.registry import DEFENCES


def build_defence(config) -> Defence | None:
    """The run's training-time defence (at most one; it stacks with any regularizers)."""
    if not config.defences:
        return None
    if len(config.defences) > 1:
        raise ConfigError(f"defences: at most one per run, got {len(config.defences)}")
    spec = config.defences[0]
    return DEFENCES.get(spec.name)(**spec.params)


__all__ = ["Defence", "DefenceInfo", "build_defence"]
