"""A user's own images: one sub-folder per class (``root/<class>/<image>.png``), like torchvision's ImageFolder.

Channels come from the files unless ``data.channels`` says otherwise: the set loads as 1 channel when every
image is grayscale (a grayscale mode such as ``L``/``LA``/``I``, or a colour file whose R, G and B are equal
everywhere), and as 3 channels (RGB) as soon as one image has colour; grayscale images in a mixed folder are
then replicated to RGB. Replicating loses nothing, whereas converting colour to gray would, so a mixed folder
goes to 3 channels whatever the majority. Alpha is dropped (the colour values are kept as they are).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from brainalign.config import DataConfig
from brainalign.data.base import DatasetInfo, to_float_images
from brainalign.errors import ConfigError, DataError
from brainalign.registry import DATASETS

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _read_rgb(path: Path, size: int | None) -> np.ndarray:
    """(H, W, 3) uint8; grayscale files are replicated to three equal bands."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None:
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None


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
    images, labels = [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in EXTENSIONS)
        if not files:
            raise DataError(f"{root / cls}: no images ({', '.join(sorted(EXTENSIONS))})")
        for path in files:
            images.append(_read_rgb(path, config.image_size))
            labels.append(label)
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise DataError(f"{root}: images have different sizes {sorted(shapes)[:3]}; set data.image_size")
    gray = all(is_grayscale(a) for a in images)
    if config.channels == 1 or (config.channels is None and gray):
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as PIL's convert("L")
        images = [a[..., 0] if gray else np.rint(a.astype(np.float32) @ luma).clip(0, 255) for a in images]
    stack = np.stack(images)  # (N, H, W) gray or (N, H, W, 3) colour
    if stack.ndim == 4:
        stack = stack.transpose(0, 3, 1, 2)  # (N, 3, H, W): explicit, so 3-pixel-high images are not misread
    return to_float_images(stack, 255.0), torch.as_tensor(labels), classes
