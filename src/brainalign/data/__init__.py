"""Image data sets: registered loaders and the fixed, seeded train/validation/test split."""

from __future__ import annotations

from brainalign.config import DataConfig
from brainalign.data import digits, folder, standard, things_eeg2  # noqa: F401  (registration)
from brainalign.data.base import (
    DatasetInfo,
    DataSplits,
    ImageSet,
    channel_stats,
    given_split,
    resize,
    stratified_split,
    to_channels,
)
from brainalign.registry import DATASETS


def load_data(config: DataConfig) -> DataSplits:
    """Load, convert and split a registered data set; the split depends only on ``config.split_seed``.

    A loader returns ``(images, labels, classes)``, or ``(images, labels, classes, meta)`` where ``meta`` may
    give ``ids`` (a stimulus id per image) and ``split`` (the data set's own train/val/test split, e.g.
    THINGS-EEG2's one held-out image per concept), used instead of the stratified split.
    """
    images, labels, classes, *rest = DATASETS.get(config.name)(config)
    meta = rest[0] if rest else {}
    images = resize(to_channels(images, config.channels), config.image_size)
    if "split" in meta:
        train, val, test = given_split(images, labels, meta["split"], meta.get("ids"))
    else:
        train, val, test = stratified_split(images, labels, val_fraction=config.val_fraction,
                                           test_fraction=config.test_fraction, seed=config.split_seed)
    if config.max_train is not None and len(train) > config.max_train:
        train = train.head(config.max_train)
    mean, std = channel_stats(train.images)
    return DataSplits(config.name, train, val, test, num_classes=len(classes), classes=classes, mean=mean, std=std)


__all__ = ["DataSplits", "DatasetInfo", "ImageSet", "load_data", "resize", "stratified_split", "to_channels"]
