"""Decode, resize and cache image files once: a uint8 memory map keyed by the file list and the output size.

Folders of real size (THINGS-EEG2: 16,540 JPEGs of 500 x 500; NSD: 73,000 images) cost minutes to decode
every time. ``cached_images(files, size, mode)`` decodes each file once with :func:`decode` (PIL: convert to
``mode``, bilinear resize to ``size``), writes the uint8 (N, H, W, C) array to ``<cache dir>/<key>.npy``
atomically, and from then on returns it as a read-only memory map. The key is the SHA-256 of every file's
absolute path, byte size and modification time, the size, the mode and ``CACHE_VERSION``, so a changed file, size or
mode gives a new cache and never stale pixels. The cached pixels are exactly :func:`decode`'s (a test checks).

Decoding runs in a ``torch.utils.data.DataLoader`` with ``workers`` processes. For training loops that read
the cache, :class:`CachedImages` is a ``Dataset`` over the memory map (a ``DataLoader`` with workers and
``pin_memory`` on top gives overlapped host-to-device copies on GPUs); :class:`DecodedImages` is the same
data set decoded from the files every time (the reference the benchmark compares against).

:func:`read_images` is what the data sets call (``image_folder``, ``things_eeg2``): through the cache, or with
``data.cache: false`` decoded into memory every time (the same pixels; nothing written).

Cache folder: ``images/`` in ``$BRAINALIGN_CACHE_DIR`` (the one cache folder of brainalign; the trained
encoders live there too), else in ``~/.cache/brainalign``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from brainalign.errors import DataError

CACHE_VERSION = 1


def cache_dir() -> Path:
    """``images/`` in ``$BRAINALIGN_CACHE_DIR``, else in ``~/.cache/brainalign``."""
    base = os.environ.get("BRAINALIGN_CACHE_DIR") or Path.home() / ".cache" / "brainalign"
    return Path(base) / "images"


def decode(path: str | os.PathLike, size: int | None, mode: str = "RGB") -> np.ndarray:
    """One image file as uint8 (H, W, C): converted to ``mode`` (RGB or L), bilinear-resized to size x size."""
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            arr = np.array(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def cache_key(files: Sequence[str | os.PathLike], size: int | None, mode: str) -> str:
    """SHA-256 of the files' absolute paths, byte sizes and modification times, the size, mode and cache version
    (absolute: the same relative path from another working folder is another file)."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{mode}|{len(files)}\n".encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


class DecodedImages(torch.utils.data.Dataset):
    """Files decoded on every access: item i -> (uint8 (H, W, C) array, i)."""

    def __init__(self, files: Sequence[str | os.PathLike], size: int | None, mode: str = "RGB"):
        self.files, self.size, self.mode = [os.fspath(f) for f in files], size, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        return torch.from_numpy(decode(self.files[i], self.size, self.mode)), i


class CachedImages(torch.utils.data.Dataset):
    """A uint8 (N, H, W, C) array (the memory-mapped cache): item i -> (uint8 (H, W, C) tensor, i)."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, i: int):
        return torch.from_numpy(np.array(self.array[i])), i


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float32 (B, C, H, W) in [0, 1]."""
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def loader(dataset: torch.utils.data.Dataset, batch_size: int = 256, workers: int = 0,
           pin_memory: bool = False, shuffle: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over :class:`DecodedImages` or :class:`CachedImages` with workers and pinned memory."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                                       pin_memory=pin_memory, persistent_workers=workers > 0)


def _workers(n: int) -> int:
    return 0 if n < 512 else min(4, os.cpu_count() or 1)


def _check(files: Sequence[str | os.PathLike], mode: str) -> list[str]:
    if mode not in ("RGB", "L"):
        raise DataError(f"image mode must be RGB or L, got {mode!r}")
    files = [os.fspath(f) for f in files]
    if not files:
        raise DataError("no image files to cache")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise DataError(f"{missing[0]}: image file not found ({len(missing)} missing)")
    return files


def _decode_into(out: np.ndarray, files: list[str], size: int | None, mode: str, workers: int) -> None:
    """Decode ``files`` into the rows of ``out`` (uint8 (N, H, W, C)); one DataError when sizes differ."""
    try:
        for batch, idx in loader(DecodedImages(files, size, mode), batch_size=64, workers=workers):
            if tuple(batch.shape[1:]) != out.shape[1:]:
                raise RuntimeError("size")
            out[int(idx[0]) : int(idx[-1]) + 1] = batch.numpy()
    except RuntimeError:  # default_collate cannot stack images of different sizes
        raise DataError(f"{Path(files[0]).parent.parent}: images differ in size; set data.image_size") from None


def read_images(files: Sequence[str | os.PathLike], size: int | None, mode: str = "RGB", *, cache: bool = True,
                workers: int | None = None) -> np.ndarray:
    """The decoded images of ``files``, uint8 (N, H, W, C): the read-only memory map of :func:`cached_images`
    (``cache``: decoded once, then read), or decoded into memory now without writing anything."""
    if cache:
        return cached_images(files, size, mode, workers=workers)
    files = _check(files, mode)
    first = decode(files[0], size, mode)
    out = np.empty((len(files), *first.shape), dtype=np.uint8)
    _decode_into(out, files, size, mode, _workers(len(files)) if workers is None else workers)
    return out


def cached_images(files: Sequence[str | os.PathLike], size: int | None, mode: str = "RGB", *,
                  workers: int | None = None, directory: str | os.PathLike | None = None) -> np.ndarray:
    """The decoded images of ``files`` as a read-only uint8 (N, H, W, C) memory map, decoding only once.

    Args:
        files: image files, in the order of the output rows.
        size: output side (every image resized to size x size); None keeps the stored size (all must agree).
        mode: "RGB" or "L".
        workers: decoding processes (default: up to 4 for 512 images or more, else in this process).
        directory: cache folder (default :func:`cache_dir`).
    """
    files = _check(files, mode)
    folder = Path(directory) if directory is not None else cache_dir()
    path = folder / f"{cache_key(files, size, mode)}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    first = decode(files[0], size, mode)
    shape = (len(files), *first.shape)
    from brainalign.io import atomic_path

    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _decode_into(out, files, size, mode, _workers(len(files)) if workers is None else workers)
        out.flush()
        del out
    return np.load(path, mmap_mode="r")
