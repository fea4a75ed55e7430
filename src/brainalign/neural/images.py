"""Image sources: map a stimulus id to its image, wherever the data set keeps it.

Every source returns float32 images in [0, 1]. ``load(ids, size, channels)`` stacks them as
(N, C, H, W) in the order of ``ids``. Sources check at construction that every stimulus id has an
image (a file that exists, a zip member, an in-range row), so a recording never silently pairs a
response with the wrong picture or with none.

- ``FolderImages``: files under a root, by relative path (THINGS-EEG2, Algonauts 2023, Sinz ``.npy`` trials).
- ``ZipImages``: members of a zip archive named by a CSV (Brain-Score / BrainIO stimulus sets).
- ``HDF5Images``: rows of an HDF5 array (NSD ``nsd_stimuli.hdf5`` ``imgBrick``, 73000 x 425 x 425 x 3 uint8).
- ``ArrayImages``: rows of an in-memory or memory-mapped array (simulations, ``.npy`` arrays, Cadena 2019).
"""

from __future__ import annotations

import io
import os
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from brainalign.errors import DataError

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _unit_range(img: np.ndarray, scale: float | None) -> np.ndarray:
    """Integers to [0, 1] by their dtype's range; floats times ``scale`` (if given)."""
    if img.dtype == np.bool_:
        return img.astype(np.float32)
    if img.dtype.kind in "ui":
        top = 255.0 if img.dtype.itemsize == 1 else float(np.iinfo(img.dtype).max)
        return img.astype(np.float32) / (top if scale is None else 1.0 / scale)
    out = img.astype(np.float32)
    return out * scale if scale is not None else out


def _hwc(img: np.ndarray, layout: str = "HWC") -> np.ndarray:
    """Any of HW, HWC, CHW to HWC."""
    if img.ndim == 2:
        return img[:, :, None]
    if img.ndim == 3 and layout == "CHW":
        return np.moveaxis(img, 0, -1)
    if img.ndim == 3:
        return img
    raise DataError(f"image with {img.ndim} axes; expected 2 (H, W) or 3")


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of an HWC float image to (H, W)."""
    if img.shape[:2] == size:
        return img
    h, w = size
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(img[:, :, c])).resize((w, h), Image.BILINEAR))
                for c in range(img.shape[2])]
    return np.stack(channels, axis=-1).astype(np.float32)


def _channels(img: np.ndarray, channels: int) -> np.ndarray:
    have = img.shape[2]
    if have == channels:
        return img
    if have == 4:  # drop alpha first
        img, have = img[:, :, :3], 3
        if channels == 3:
            return img
    if channels == 1 and have == 3:
        return (img @ _LUMA)[:, :, None]
    if channels == 3 and have == 1:
        return np.repeat(img, 3, axis=2)
    raise DataError(f"cannot convert an image with {have} channels to {channels}")


class ImageSource(ABC):
    """Stimulus id -> image. Subclasses implement ``_read_many`` for ids they are known to hold."""

    kind = "images"

    def __init__(self, ids: Iterable[str]):
        self._ids = np.asarray([str(i) for i in ids], dtype=object)
        self._id_set = set(self._ids.tolist())

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, stimulus_id: object) -> bool:
        return str(stimulus_id) in self._id_set

    def check(self, stimulus_ids: Iterable[str], *, where: str = "") -> None:
        """Raise ``DataError`` if any id has no image here."""
        missing = [str(i) for i in stimulus_ids if str(i) not in self._id_set]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise DataError(f"{where or self.describe()}: {len(missing)} stimulus id(s) match no image: {shown}")

    @abstractmethod
    def _read_many(self, ids: Sequence[str]) -> list[np.ndarray]:
        """Return HWC float32 images in [0, 1], one per id, in order."""

    def read(self, stimulus_id: str) -> np.ndarray:
        """One image as float32 (H, W, C) in [0, 1]."""
        self.check([stimulus_id])
        return self._read_many([str(stimulus_id)])[0]

    def load(self, ids: Sequence[str], size: int | tuple[int, int] | None = None,
             channels: int | None = None) -> np.ndarray:
        """Images for ``ids`` as float32 (N, C, H, W) in [0, 1], in the order given.

        Args:
            ids: stimulus ids, each held by this source.
            size: output (H, W) or one int for square; None keeps the stored size (all must agree).
            channels: 1 (luminance, ITU-R 601) or 3; None keeps the stored count (grey and colour
                mixed -> 3).
        """
        ids = [str(i) for i in ids]
        self.check(ids)
        if channels not in (None, 1, 3):
            raise DataError(f"channels must be 1, 3 or None, got {channels!r}")
        size_hw = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        images = self._read_many(ids) if ids else []
        if channels is None and images:
            counts = {im.shape[2] if im.shape[2] != 4 else 3 for im in images}
            channels = 3 if 3 in counts else 1
        out = []
        for im in images:
            im = _channels(im, channels)
            if size_hw is not None:
                im = _resize(im, size_hw)
            out.append(im)
        if not out:
            return np.zeros((0, channels or 1, *(size_hw or (0, 0))), dtype=np.float32)
        shapes = {im.shape for im in out}
        if len(shapes) > 1:
            raise DataError(f"{self.describe()}: images differ in size {sorted(shapes)[:3]}; pass size=")
        batch = np.stack(out).transpose(0, 3, 1, 2)  # (N, C, H, W)
        return np.clip(batch, 0.0, 1.0, out=batch).astype(np.float32, copy=False)

    def subset(self, ids: Sequence[str]) -> ImageSource:
        """A source holding only ``ids`` (shares the underlying storage)."""
        self.check(ids)
        return _Subset(self, ids)

    def describe(self) -> str:
        return f"{self.kind} ({len(self)} images)"


class _Subset(ImageSource):
    def __init__(self, parent: ImageSource, ids: Sequence[str]):
        super().__init__(ids)
        self.parent = parent
        self.kind = parent.kind

    def _read_many(self, ids):
        return self.parent._read_many(ids)

    def describe(self) -> str:
        return f"{self.parent.describe()} [subset of {len(self)}]"


def _decode(data: bytes | Path, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            if im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.getbands() else ("L" if im.mode in ("1", "I", "I;16", "F")
                                                                      else "RGB"))
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{name}: unreadable image ({exc})") from None
    return _unit_range(_hwc(arr), None)


class FolderImages(ImageSource):
    """Image files (png/jpg/... or ``.npy`` arrays) under ``root``, one relative path per stimulus id.

    ``.npy`` images may be (H, W), (C, H, W) (Sinz-lab layout) or (H, W, C); uint8 is divided by 255,
    floats are multiplied by ``npy_scale`` when given.
    """

    kind = "folder"

    def __init__(self, root: str | os.PathLike, paths: Mapping[str, str], *, check_exists: bool = True,
                 npy_layout: str = "CHW", npy_scale: float | None = None):
        super().__init__(paths.keys())
        self.root = Path(root)
        self.paths = {str(k): str(v) for k, v in paths.items()}
        self.npy_layout = npy_layout
        self.npy_scale = npy_scale
        if check_exists:
            missing = [k for k, v in self.paths.items() if not (self.root / v).is_file()]
            if missing:
                shown = ", ".join(f"{k} -> {self.paths[k]}" for k in missing[:3])
                raise DataError(f"{self.root}: {len(missing)} image file(s) missing, e.g. {shown}")

    def _read_many(self, ids):
        from brainalign.neural.safe_pickle import load_npy

        out = []
        for i in ids:
            path = self.root / self.paths[i]
            if path.suffix == ".npy":
                arr = np.asarray(load_npy(path))
                if arr.ndim == 3 and self.npy_layout == "CHW" and arr.shape[0] not in (1, 3, 4):
                    raise DataError(f"{path}: expected a (C, H, W) image with C in 1, 3, 4; got {arr.shape}")
                out.append(_unit_range(_hwc(arr, self.npy_layout), self.npy_scale))
            else:
                if not path.is_file():
                    raise DataError(f"{path}: image file not found")
                out.append(_decode(path, str(path)))
        return out

    def describe(self) -> str:
        return f"folder {self.root} ({len(self)} images)"


class ZipImages(ImageSource):
    """Members of a zip archive, one name per stimulus id (BrainIO stimulus sets).

    A CSV ``filename`` that is not a member name matches a member by base name when that is unique
    (BrainIO archives sometimes keep files under a folder).
    """

    kind = "zip"

    def __init__(self, zip_path: str | os.PathLike, members: Mapping[str, str]):
        super().__init__(members.keys())
        self.zip_path = Path(zip_path)
        try:
            with zipfile.ZipFile(self.zip_path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        except FileNotFoundError:
            raise DataError(f"{self.zip_path}: stimulus zip not found") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{self.zip_path}: not a readable zip archive ({exc})") from None
        present = set(names)
        by_base: dict[str, list[str]] = {}
        for n in names:
            by_base.setdefault(n.rsplit("/", 1)[-1], []).append(n)
        self.members: dict[str, str] = {}
        missing = []
        for sid, name in members.items():
            name = str(name)
            if name in present:
                self.members[str(sid)] = name
            elif len(by_base.get(name.rsplit("/", 1)[-1], [])) == 1:
                self.members[str(sid)] = by_base[name.rsplit("/", 1)[-1]][0]
            else:
                missing.append(f"{sid} -> {name}")
        if missing:
            raise DataError(f"{self.zip_path}: {len(missing)} stimulus file(s) not in the archive, "
                            f"e.g. {', '.join(missing[:3])}")

    def _read_many(self, ids):
        with zipfile.ZipFile(self.zip_path) as zf:
            return [_decode(zf.read(self.members[i]), f"{self.zip_path}:{self.members[i]}") for i in ids]

    def describe(self) -> str:
        return f"zip {self.zip_path} ({len(self)} images)"


class HDF5Images(ImageSource):
    """Rows of an HDF5 dataset (N, H, W[, C]); NSD ``imgBrick`` is (73000, 425, 425, 3) uint8.

    Rows are read on demand (sorted, as h5py requires), never the whole array.
    """

    kind = "hdf5"

    def __init__(self, path: str | os.PathLike, dataset: str, rows: Mapping[str, int]):
        super().__init__(rows.keys())
        import h5py

        self.path = Path(path)
        self.dataset = dataset
        self.rows = {str(k): int(v) for k, v in rows.items()}
        try:
            with h5py.File(self.path, "r") as f:
                if dataset not in f:
                    raise DataError(f"{self.path}: no dataset {dataset!r} (has {sorted(f.keys())})")
                self.shape = f[dataset].shape
        except OSError as exc:
            raise DataError(f"{self.path}: not a readable HDF5 file ({exc})") from None
        if len(self.shape) not in (3, 4):
            raise DataError(f"{self.path}:{dataset} has shape {self.shape}; expected (N, H, W[, C])")
        bad = [k for k, r in self.rows.items() if not 0 <= r < self.shape[0]]
        if bad:
            raise DataError(f"{self.path}:{dataset} has {self.shape[0]} rows; stimulus {bad[0]} needs row "
                            f"{self.rows[bad[0]]}")

    def _read_many(self, ids):
        import h5py

        rows = np.array([self.rows[i] for i in ids])
        order = np.argsort(rows, kind="stable")
        unique, inverse = np.unique(rows[order], return_inverse=True)
        with h5py.File(self.path, "r") as f:
            block = f[self.dataset][unique.tolist()]
        out: list[np.ndarray] = [None] * len(ids)  # type: ignore[list-item]
        for pos, k in zip(order, inverse, strict=True):
            out[pos] = _unit_range(_hwc(block[k]), None)
        return out

    def describe(self) -> str:
        return f"hdf5 {self.path}:{self.dataset} ({len(self)} images)"


class ArrayImages(ImageSource):
    """Rows of an array: layout ``NCHW``, ``NHWC`` or ``NHW``; integer arrays are scaled from their range,
    float arrays by ``scale`` (e.g. 1/255) or taken as already in [0, 1]."""

    kind = "array"

    def __init__(self, array, ids: Sequence[str], *, layout: str = "NCHW", scale: float | None = None,
                 name: str = "array"):
        super().__init__(ids)
        from brainalign.neural.safe_pickle import LazyArray

        if isinstance(array, LazyArray):
            array = array.memmap()
        if layout not in ("NCHW", "NHWC", "NHW"):
            raise DataError(f"{name}: image layout must be NCHW, NHWC or NHW, got {layout!r}")
        if array.ndim != len(layout):
            raise DataError(f"{name}: images have shape {array.shape}; layout {layout} needs {len(layout)} axes")
        if array.shape[0] != len(self._ids):
            raise DataError(f"{name}: {array.shape[0]} images for {len(self._ids)} stimulus ids")
        self.array = array
        self.layout = layout
        self.scale = scale
        self.name = name
        self._row = {k: r for r, k in enumerate(self._ids.tolist())}
        if len(self._row) != len(self._ids):
            raise DataError(f"{name}: duplicate stimulus ids")

    def _read_many(self, ids):
        per = {"NCHW": "CHW", "NHWC": "HWC", "NHW": "HWC"}[self.layout]
        return [_unit_range(_hwc(np.asarray(self.array[self._row[i]]), per), self.scale) for i in ids]

    def describe(self) -> str:
        return f"{self.name} array {tuple(self.array.shape)} ({len(self)} images)"
