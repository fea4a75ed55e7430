"""A user's own images: one sub-folder per class (``root/<class>/<image>.png``), like torchvision's ImageFolder.

Channels come from the files unless ``data.channels`` says otherwise: the set loads as 1 channel when every
image is grayscale (a grayscale mode such as ``L``/``LA``/``I``, or a colour file whose R, G and B are equal
everywhere), and as 3 channels (RGB) as soon as one image has colour; grayscale images in a mixed folder are
then replicated to RGB. Replicating loses nothing, whereas converting colour to gray would, so a mixed folder
goes to 3 channels whatever the majority. Alpha is dropped (the colour values are kept as they are).

The files are decoded (RGB) and resized once into the uint8 image cache (``brainalign.data.cache``): later loads
of the same folder (other seeds, sweeps, evaluation) read the cache instead of decoding. The cache is keyed by
every file's absolute path, byte size and modification time and by ``data.image_size``, so an added, removed or
edited file, or another size, is decoded afresh. ``data.cache: false`` decodes every time (the same pixels).
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

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
CHUNK = 1024  # images converted at a time


def is_grayscale(rgb: np.ndarray) -> bool:
    """Whether an (H, W, 3) image carries no colour: its three bands are equal everywhere."""
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


@DATASETS.register("image_folder", description="your own images, one sub-folder per class (data.root)",
                   info=DatasetInfo(None, None, None, "class-per-folder images in data.root"))
def image_folder(config: DataConfig):
    if config.root is None:
        raise ConfigError("data.root is required for image_folder: a folder with one sub-folder per class")
    root = Path(config.root)
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: needs at least 2 class sub-folders, found {len(classes)}")
    files, labels = [], []
    for label, cls in enumerate(classes):
        found = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in EXTENSIONS)
        if not found:
            raise DataError(f"{root / cls}: no images ({', '.join(sorted(EXTENSIONS))})")
        files += found
        labels += [label] * len(found)
    array = read_images(files, config.image_size, "RGB", cache=config.cache)  # (N, H, W, 3) uint8
    n = len(array)
    gray = all(is_grayscale(array[i : i + CHUNK]) for i in range(0, n, CHUNK))
    one = config.channels == 1 or (config.channels is None and gray)
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as PIL's convert("L")
    images = torch.empty((n, 1 if one else 3, *array.shape[1:3]), dtype=torch.float32)
    for i in range(0, n, CHUNK):  # chunked: never a second full-size copy
        part = np.asarray(array[i : i + CHUNK])  # (B, H, W, 3)
        if one:
            part = part[..., :1] if gray else np.rint(part.astype(np.float32) @ luma).clip(0, 255)[..., None]
        images[i : i + CHUNK] = torch.from_numpy(np.ascontiguousarray(part.transpose(0, 3, 1, 2)))
    images.div_(255.0)
    return images, torch.as_tensor(labels), classes
