"""A user's own images: one sub-folder per class (``root/<class>/<image>.png``), like torchvision's ImageFolder."""

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
    size = config.image_size
    mode = "L" if config.channels == 1 else "RGB"
    images, labels = [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in EXTENSIONS)
        if not files:
            raise DataError(f"{root / cls}: no images ({', '.join(sorted(EXTENSIONS))})")
        for path in files:
            try:
                with Image.open(path) as im:
                    im = im.convert(mode)
                    if size is not None:
                        im = im.resize((size, size), Image.BILINEAR)
                    images.append(np.asarray(im))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{path}: not a readable image ({exc})") from None
            labels.append(label)
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise DataError(f"{root}: images have different sizes {sorted(shapes)[:3]}; set data.image_size")
    return to_float_images(np.stack(images), 255.0), torch.as_tensor(labels), classes
