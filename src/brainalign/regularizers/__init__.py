"""Brain-inspired regularizers, one file each, registered in ``REGULARIZERS``."""

from __future__ import annotations

from brainalign.registry import REGULARIZERS


def build_regularizers(config, model, data) -> list:
    """(regularizer, weight) pairs for a run, set up and validated before training starts."""
    if config.regularizers:
        names = ", ".join(r.name for r in config.regularizers)
        raise NotImplementedError(f"regularizers are not wired yet ({names}); valid: {REGULARIZERS.names()}")
    return []
