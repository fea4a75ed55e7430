"""Models: [0, 1] images in, logits out, named layers for features. Registered in ``MODELS``."""

from __future__ import annotations

from brainalign.config import ModelConfig
from brainalign.errors import ConfigError
from brainalign.models import resnet, small_cnn  # noqa: F401  (registration)
from brainalign.models.base import BrainModel, ModelInfo, Normalize
from brainalign.registry import MODELS


def build_model(config: ModelConfig, num_classes: int, in_channels: int, image_size: int,
                mean=None, std=None) -> BrainModel:
    """Build a registered model for images of ``in_channels`` x ``image_size`` pixels."""
    entry = MODELS.entry(config.name)
    size = config.input_size or image_size
    if size < entry.info.min_size:
        raise ConfigError(f"model {config.name} needs inputs of at least {entry.info.min_size} pixels, got {size}; "
                          f"set model.input_size")
    mean = mean if mean is not None else (0.5,) * in_channels
    std = std if std is not None else (0.25,) * in_channels
    return entry.obj(num_classes, in_channels, mean, std, width=config.width, input_size=config.input_size)


__all__ = ["BrainModel", "ModelInfo", "Normalize", "build_model"]
