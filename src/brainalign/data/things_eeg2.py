"""The THINGS-EEG2 training images as a classification data set (Guo et al. 2024's dual task).

Layout (OSF y63gw, ``image_set/``)::

    training_images/<NNNNN_concept>/<concept_XXs>.jpg    1,654 concepts x 10 images (500 x 500)
    test_images/<NNNNN_concept>/<concept_XXs>.jpg        200 other concepts x 1 (not used here)

``data.root`` is the ``image_set`` folder or a folder holding it. Classes are the 1,654 concept folders in
sorted order; image i is the i-th file in sorted (concept folder, file) order, which is the order of the EEG
conditions in ``preprocessed_eeg_training.npy``, and its stimulus id is the file stem, as the ``things_eeg2``
neural loader names it; so a single-stream regularizer (``stimuli: classification``) finds each training
image's EEG by id.

Split, as Guo et al.: one image per concept held out (1,654 images), the other nine per concept trained on
(14,886). Which image is held out is drawn per concept under ``data.split_seed``. The test images of
THINGS-EEG2 show 200 concepts that are not among the 1,654 classes, so they cannot be classified: the
held-out images are both the validation and the test split (the paper reports accuracy and robustness on
them). ``data.val_fraction`` and ``data.test_fraction`` do not apply.

Images are decoded, resized to ``data.image_size`` (required: the native 500 x 500 float32 would take 50 GB)
and cached once as uint8 (``brainalign.data.cache``; ``data.cache: false`` decodes every time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from brainalign.config import DataConfig
from brainalign.data.base import DatasetInfo
from brainalign.data.cache import read_images
from brainalign.errors import ConfigError, DataError
from brainalign.registry import DATASETS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
N_CONCEPTS, PER_CONCEPT, NATIVE_SIZE = 1654, 10, 500


def image_root(root: str | Path) -> Path:
    """The folder holding ``training_images`` (``root`` itself or ``root/image_set``)."""
    root = Path(root)
    for folder in (root, root / "image_set"):
        if (folder / "training_images").is_dir():
            return folder
    raise DataError(f"data.root {root}: no training_images folder here or in image_set/ (expected the "
                    "THINGS-EEG2 image_set layout)")


def training_files(root: Path) -> tuple[list[Path], list[str]]:
    """Image files in sorted (concept folder, file) order and the concept of each."""
    files, concepts = [], []
    for concept in sorted(p.name for p in (root / "training_images").iterdir() if p.is_dir()):
        names = sorted(f.name for f in (root / "training_images" / concept).iterdir()
                       if f.suffix.lower() in IMAGE_SUFFIXES)
        files += [root / "training_images" / concept / n for n in names]
        concepts += [concept] * len(names)
    return files, concepts


def heldout_split(labels: np.ndarray, seed: int) -> np.ndarray:
    """"train" for all but one image per class, "test" for one drawn per class under ``seed``."""
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "train", dtype=object)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            raise DataError(f"class {c} has {len(members)} image(s); the THINGS-EEG2 split needs 2 or more")
        split[rng.choice(members)] = "test"
    return split


@DATASETS.register("things_eeg2", description="THINGS-EEG2 training images, 1,654 concepts x 10 (Guo et al. 2024 "
                   "split: 14,886 train / 1,654 held out)",
                   info=DatasetInfo(num_classes=N_CONCEPTS, channels=3, native_size=NATIVE_SIZE,
                                    source="THINGS-EEG2 image_set folder in data.root (OSF y63gw)"))
def things_eeg2(config: DataConfig):
    if config.root is None:
        raise ConfigError("data.root is required for things_eeg2: the THINGS-EEG2 image_set folder")
    if config.image_size is None:
        raise ConfigError("data.image_size is required for things_eeg2 (images are 500 x 500; e.g. 224 as Guo et "
                          "al., or 64 to hold 16,540 images in memory)")
    root = image_root(config.root)
    files, concepts = training_files(root)
    if not files:
        raise DataError(f"{root / 'training_images'}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    classes = sorted(set(concepts))
    index = {c: k for k, c in enumerate(classes)}
    labels = np.array([index[c] for c in concepts], dtype=np.int64)
    array = read_images(files, config.image_size, "L" if config.channels == 1 else "RGB", cache=config.cache)
    images = torch.empty((array.shape[0], array.shape[3], array.shape[1], array.shape[2]), dtype=torch.float32)
    for i in range(0, len(images), 1024):  # chunked: never a second full-size copy
        images[i : i + 1024] = torch.from_numpy(np.array(array[i : i + 1024])).permute(0, 3, 1, 2).float() / 255.0
    meta = {"ids": [f.stem for f in files], "split": heldout_split(labels, config.split_seed)}
    return images, torch.from_numpy(labels), classes, meta
