"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from their standard distribution files.

Our own readers take the files as their authors distribute them (no pickles are unpickled):

- MNIST / Fashion-MNIST: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (IDX format).
- CIFAR-10: ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` (1 label byte + 3072 pixel bytes).
- CIFAR-100: ``cifar-100-binary/{train,test}.bin`` (coarse byte, fine byte, 3072 pixel bytes); fine labels.

Train and test files are pooled and then split like every other data set (a fixed stratified split under
the seed), so that validation images never come from the test set. ``data.download: true`` fetches the
files through torchvision where it is installed and a network is available.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from brainalign.config import DataConfig
from brainalign.data.base import DatasetInfo, to_float_images
from brainalign.errors import ConfigError, DataError
from brainalign.registry import DATASETS

_HOWTO = {
    "mnist": "http://yann.lecun.com/exdb/mnist/ (the four *-ubyte.gz files)",
    "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist (the four *-ubyte.gz files)",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar.html ('CIFAR-10 binary version', unpacked)",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar.html ('CIFAR-100 binary version', unpacked)",
}


def _root(config: DataConfig, name: str) -> Path:
    if config.root is None:
        raise ConfigError(f"data.root is required for {name}: download {_HOWTO[name]} and set data.root to that "
                          f"folder (or data.download: true with torchvision and a network)")
    root = Path(config.root)
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder; get the files from {_HOWTO[name]}")
    return root


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz", root / "raw" / stem, root / "raw" / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root}: missing {stem}[.gz]")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format): magic (0, 0, dtype=0x08, ndim), big-endian dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def _download(config: DataConfig, name: str) -> None:
    try:
        import torchvision.datasets as tvd
    except Exception:
        raise ConfigError("data.download needs torchvision: pip install 'brainalign[vision]'") from None
    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}.get(name)
    if cls is None:
        raise ConfigError(f"download of {name} binary files is not supported; get them from {_HOWTO[name]}")
    for train in (True, False):
        cls(str(Path(config.root) / ".."), train=train, download=True)


def _idx_dataset(config: DataConfig, name: str, classes: list[str]):
    if config.download:
        _download(config, name)
    root = _root(config, name)
    images, labels = [], []
    for prefix in ("train", "t10k"):
        x = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{root}: {prefix} has {x.shape[0]} images but {y.shape[0]} labels")
        images.append(x)
        labels.append(y)
    return (to_float_images(np.concatenate(images), 255.0), torch.as_tensor(np.concatenate(labels)).long(), classes)


def read_cifar_bin(path: Path, label_bytes: int, label_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR binary batch: records of ``label_bytes`` label bytes then 3x32x32 pixel bytes."""
    record = label_bytes + 3072
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        raise DataError(f"{path}: size {raw.size} is not a whole number of {record}-byte CIFAR records")
    raw = raw.reshape(-1, record)
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32), raw[:, label_index].astype(np.int64)


def _cifar(config: DataConfig, name: str, files: list[str], label_bytes: int, label_index: int, n_classes: int):
    root = _root(config, name)
    parts = []
    for fname in files:
        path = next((p for p in (root / fname, root / Path(fname).name) if p.is_file()), None)
        if path is None:
            raise DataError(f"{root}: missing {fname}; get the files from {_HOWTO[name]}")
        parts.append(read_cifar_bin(path, label_bytes, label_index))
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if y.max() >= n_classes:
        raise DataError(f"{root}: label {y.max()} out of range for {name} ({n_classes} classes)")
    return to_float_images(x, 255.0), torch.as_tensor(y), [str(i) for i in range(n_classes)]


@DATASETS.register("mnist", description="MNIST from its IDX files (70,000 28x28 grayscale digits)",
                   info=DatasetInfo(10, 1, 28, "IDX files in data.root"))
def mnist(config: DataConfig):
    return _idx_dataset(config, "mnist", [str(i) for i in range(10)])


@DATASETS.register("fashion_mnist", description="Fashion-MNIST from its IDX files (70,000 28x28 grayscale)",
                   info=DatasetInfo(10, 1, 28, "IDX files in data.root"))
def fashion_mnist(config: DataConfig):
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    return _idx_dataset(config, "fashion_mnist", classes)


@DATASETS.register("cifar10", description="CIFAR-10 from its binary batches (60,000 32x32 colour, 10 classes)",
                   info=DatasetInfo(10, 3, 32, "cifar-10-batches-bin in data.root"))
def cifar10(config: DataConfig):
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    return _cifar(config, "cifar10", files, label_bytes=1, label_index=0, n_classes=10)


@DATASETS.register("cifar100", description="CIFAR-100 from its binary files (60,000 32x32 colour, 100 fine classes)",
                   info=DatasetInfo(100, 3, 32, "cifar-100-binary in data.root"))
def cifar100(config: DataConfig):
    return _cifar(config, "cifar100", ["train.bin", "test.bin"], label_bytes=2, label_index=1, n_classes=100)
