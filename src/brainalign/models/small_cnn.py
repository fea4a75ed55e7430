"""A small CNN for small grayscale images (digits 8x8, MNIST 28x28)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from brainalign.models.base import BrainModel, ModelInfo
from brainalign.registry import MODELS

LAYERS = ("conv1", "conv2", "conv3", "fc")


class SmallCNN(BrainModel):
    """conv(w)-conv(2w)-pool-conv(2w)-avg-pool to 2x2-fc(4w)-linear; works from 8x8 inputs upward."""

    def __init__(self, num_classes: int, in_channels: int, mean: Sequence[float], std: Sequence[float],
                 width: int = 32, input_size: int | None = None):
        super().__init__(mean, std, input_size)
        w = width
        self.layers["conv1"] = nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU())
        self.layers["conv2"] = nn.Sequential(nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.layers["conv3"] = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
                                             nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.layers["fc"] = nn.Sequential(nn.Linear(8 * w, 4 * w), nn.ReLU())
        self.head = nn.Linear(4 * w, num_classes)


@MODELS.register("small_cnn", description="3-conv + 1-fc CNN for small grayscale images (8x8 and up)",
                 info=ModelInfo(layers=LAYERS, penultimate="fc", min_size=4))
def small_cnn(num_classes: int, in_channels: int, mean, std, width: int = 32, input_size: int | None = None):
    return SmallCNN(num_classes, in_channels, mean, std, width=width, input_size=input_size)
