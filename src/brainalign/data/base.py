"""In-memory image data sets and their fixed train/validation/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from brainalign.errors import ConfigError, DataError


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about a registered data set."""

    num_classes: int | None  # None: read from the files (image folders)
    channels: int | None
    native_size: int | None
    source: str  # where the files come from (embedded, distribution files, user folder)


@dataclass
class ImageSet:
    """Images (N, C, H, W) float32 in [0, 1], integer labels (N,) and, where the data set names them, the N
    stimulus ids (THINGS-EEG2 file stems), which single-stream regularizers use to find each image's targets."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str] | None = None

    def __post_init__(self):
        if self.images.dim() != 4:
            raise DataError(f"images must have shape (N, C, H, W), got {tuple(self.images.shape)}")
        if self.images.shape[0] != self.labels.shape[0]:
            raise DataError(f"{self.images.shape[0]} images but {self.labels.shape[0]} labels")
        if self.ids is not None and len(self.ids) != self.labels.shape[0]:
            raise DataError(f"{self.labels.shape[0]} images but {len(self.ids)} stimulus ids")

    def head(self, n: int) -> ImageSet:
        """The first ``n`` images (``data.max_train``)."""
        return ImageSet(self.images[:n], self.labels[:n], None if self.ids is None else self.ids[:n])

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class DataSplits:
    """The three fixed splits of one data set plus what a model needs to know about them."""

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    num_classes: int
    classes: list[str]
    mean: tuple[float, ...]  # per-channel mean of the training images (for the model's Normalize)
    std: tuple[float, ...]

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])


def to_float_images(array: np.ndarray, scale: float) -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) or (N, C, H, W) numeric array -> float32 (N, C, H, W) in [0, 1]."""
    x = torch.as_tensor(np.asarray(array, dtype=np.float32) / scale)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2)
    return x.clamp_(0.0, 1.0).contiguous()


def resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize to size x size; None keeps the native size."""
    if size is None or images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrink = size < images.shape[-1]
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrink).clamp_(0.0, 1.0)


def to_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Convert to 1 (luminance) or 3 (replicated) channels; None keeps them."""
    if channels is None or images.shape[1] == channels:
        return images
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images * weights).sum(1, keepdim=True)
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ConfigError(f"data.channels must be 1 or 3, got {channels}")


def stratified_split(images: torch.Tensor, labels: torch.Tensor, *, val_fraction: float, test_fraction: float,
                     seed: int) -> tuple[ImageSet, ImageSet, ImageSet]:
    """A fixed stratified train/validation/test split under ``seed``; every class in every split."""
    n = len(labels)
    y = labels.numpy()
    classes, counts = np.unique(y, return_counts=True)
    for name, frac in (("data.val_fraction", val_fraction), ("data.test_fraction", test_fraction)):
        if min(counts) * frac < 1:
            raise ConfigError(
                f"{name}={frac} leaves class {classes[np.argmin(counts)]} empty (it has {min(counts)} images); "
                f"use a fraction >= {1 / min(counts):.3g}"
            )
    idx = np.arange(n)
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), stratify=y[rest],
                                  random_state=seed)
    if len(np.unique(y[train])) < len(classes):
        raise ConfigError("the split leaves a class without training images; lower data.val_fraction/test_fraction")

    def take(ix: np.ndarray) -> ImageSet:
        ix = torch.as_tensor(np.sort(ix))
        return ImageSet(images[ix].contiguous(), labels[ix].contiguous())

    return take(train), take(val), take(test)


def given_split(images: torch.Tensor, labels: torch.Tensor, split, ids: list[str] | None = None
                ) -> tuple[ImageSet, ImageSet, ImageSet]:
    """The data set's own split (``split[i]`` in train, val, test); without val images, val is the test split."""
    split = np.asarray(split, dtype=object)
    if len(split) != len(labels):
        raise DataError(f"the data set's split names {len(split)} images but it has {len(labels)}")

    def take(name: str) -> ImageSet:
        ix = torch.as_tensor(np.flatnonzero(split == name))
        return ImageSet(images[ix].contiguous(), labels[ix].contiguous(),
                        None if ids is None else [ids[i] for i in ix.tolist()])

    train, val, test = take("train"), take("val"), take("test")
    if len(train) == 0 or len(test) == 0:
        raise DataError("the data set's split leaves no training or no test images")
    return train, (val if len(val) else test), test


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
