"""scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels): the embedded default data set."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

from brainalign.config import DataConfig
from brainalign.data.base import DatasetInfo, to_float_images
from brainalign.registry import DATASETS


@DATASETS.register("digits", description="scikit-learn's 1,797 handwritten digits, 8x8 grayscale, 10 classes",
                   info=DatasetInfo(num_classes=10, channels=1, native_size=8, source="embedded in scikit-learn"))
def digits(config: DataConfig) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    bunch = load_digits()
    images = to_float_images(bunch.images, scale=16.0)  # (1797, 1, 8, 8)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    return images, labels, [str(c) for c in bunch.target_names]
