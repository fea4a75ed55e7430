"""What every model in brainalign is: [0, 1] images in, logits out, named layers to read features from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from brainalign.errors import ConfigError


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a registered model architecture."""

    layers: tuple[str, ...]  # named layers whose outputs can be read, shallow to deep
    penultimate: str  # the layer just before the classifier (features for neural heads)
    min_size: int = 8  # smallest input side the architecture accepts


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, inside the model so that attacks work in [0, 1] pixel space."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BrainModel(nn.Module):
    """Base class: takes images in [0, 1] of shape (B, C, H, W) and returns logits (B, K).

    Subclasses build ``self.layers``, an ``nn.ModuleDict`` of named stages applied in order
    after normalisation and optional resizing, and ``self.head``, the classifier.
    ``features(x, names)`` returns the outputs of the named stages without extra passes.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], input_size: int | None = None):
        super().__init__()
        self.normalize = Normalize(mean, std)
        # Attacks perturb the data's native pixels; a model that needs larger inputs upsamples inside itself.
        self.input_size = input_size
        self.layers = nn.ModuleDict()
        self.head: nn.Module = nn.Identity()

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.layers.keys())

    def check_layers(self, names: Sequence[str]) -> None:
        missing = [n for n in names if n not in self.layers]
        if missing:
            raise ConfigError(
                f"layer {missing[0]!r} is not a layer of {type(self).__name__}; valid: {', '.join(self.layers)}"
            )

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        if self.input_size is not None and x.shape[-1] != self.input_size:
            x = nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                          align_corners=False)
        return x

    def forward_features(
        self, x: torch.Tensor, names: Sequence[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits and the outputs of the requested layers, in one pass."""
        self.check_layers(names)
        wanted = set(names)
        feats: dict[str, torch.Tensor] = {}
        h = self._prepare(x)
        for name, layer in self.layers.items():
            h = layer(h)
            if name in wanted:
                feats[name] = h
        return self.head(h), feats

    def features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Outputs of the requested layers; stops after the deepest one requested."""
        self.check_layers(names)
        wanted = set(names)
        feats: dict[str, torch.Tensor] = {}
        h = self._prepare(x)
        for name, layer in self.layers.items():
            if not wanted - feats.keys():
                break
            h = layer(h)
            if name in wanted:
                feats[name] = h
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._prepare(x)
        for layer in self.layers.values():
            h = layer(h)
        return self.head(h)
