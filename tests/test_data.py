import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from brainalign.config import DataConfig
from brainalign.data import load_data, stratified_split
from brainalign.errors import ConfigError, DataError


def test_digits_split_is_fixed_stratified_and_disjoint():
    a = load_data(DataConfig())
    b = load_data(DataConfig())
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert torch.equal(a.test.images, b.test.images)  # fixed under the split seed
    assert a.train.images.shape[1:] == (1, 8, 8)
    for split in (a.train, a.val, a.test):
        assert set(split.labels.tolist()) == set(range(10))
        assert 0.0 <= float(split.images.min()) and float(split.images.max()) <= 1.0
    # Disjoint: no test image is also a training image (digits has a few exact duplicates, so compare counts).
    train_rows = {tuple(r) for r in a.train.images.flatten(1).tolist()}
    overlap = sum(tuple(r) in train_rows for r in a.test.images.flatten(1).tolist())
    assert overlap < 5
    # Class proportions are preserved (stratified) within one image per class.
    counts = torch.bincount(a.test.labels, minlength=10).float()
    expected = torch.bincount(torch.cat([a.train.labels, a.val.labels, a.test.labels]), minlength=10) * 0.2
    assert torch.all((counts - expected).abs() <= 1.0)


def test_other_split_seed_gives_other_split():
    a = load_data(DataConfig(split_seed=0))
    b = load_data(DataConfig(split_seed=1))
    assert not torch.equal(a.test.images, b.test.images)


def test_resize_and_channels():
    d = load_data(DataConfig(image_size=32, channels=3))
    assert d.train.images.shape[1:] == (3, 32, 32)
    assert d.in_channels == 3 and d.image_size == 32


def test_split_that_leaves_a_class_empty_is_refused():
    images = torch.rand(22, 1, 4, 4)
    labels = torch.tensor([0] * 20 + [1] * 2)
    with pytest.raises(ConfigError, match="leaves class 1 empty"):
        stratified_split(images, labels, val_fraction=0.2, test_fraction=0.2, seed=0)


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_reader_on_files_in_the_published_format(tmp_path, name):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = np.arange(n) % 10
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    d = load_data(DataConfig(name=name, root=str(tmp_path), val_fraction=0.25, test_fraction=0.25))
    assert len(d.train) + len(d.val) + len(d.test) == 60
    assert d.train.images.shape[1:] == (1, 28, 28)
    # A pixel survives the round trip exactly (value / 255).
    raw = gzip.open(tmp_path / "train-images-idx3-ubyte.gz").read()[16:]
    first = np.frombuffer(raw, dtype=np.uint8)[:784].reshape(28, 28) / 255.0
    pool = torch.cat([d.train.images, d.val.images, d.test.images])[:, 0]
    assert any(np.allclose(p.numpy(), first, atol=1e-6) for p in pool)


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 28, 28)))
    raw = gzip.open(tmp_path / "train-images-idx3-ubyte.gz").read()
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(raw[:-100])
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(DataError, match="truncated"):
        load_data(DataConfig(name="mnist", root=str(tmp_path)))


def test_missing_root_says_how_to_get_the_data():
    with pytest.raises(ConfigError, match="data.root is required for cifar10: download"):
        load_data(DataConfig(name="cifar10"))


@pytest.mark.parametrize(("name", "files", "label_bytes"),
                         [("cifar10", [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"], 1),
                          ("cifar100", ["train.bin", "test.bin"], 2)])
def test_cifar_binary_reader(tmp_path, name, files, label_bytes):
    rng = np.random.default_rng(1)
    n_classes = 10 if name == "cifar10" else 100
    for f in files:
        records = []
        for i in range(20):
            label = i % 10
            prefix = [label] if label_bytes == 1 else [label // 5, label]  # cifar100: coarse, fine
            records.append(np.concatenate([prefix, rng.integers(0, 256, 3072)]).astype(np.uint8))
        np.stack(records).tofile(tmp_path / f)
    d = load_data(DataConfig(name=name, root=str(tmp_path), val_fraction=0.25, test_fraction=0.25))
    assert d.train.images.shape[1:] == (3, 32, 32)
    assert d.num_classes == n_classes
    assert set(torch.cat([d.train.labels, d.val.labels, d.test.labels]).tolist()) == set(range(10))


def test_cifar_bad_file_size(tmp_path):
    for i in range(1, 6):
        np.zeros(3073 * 2, dtype=np.uint8).tofile(tmp_path / f"data_batch_{i}.bin")
    np.zeros(100, dtype=np.uint8).tofile(tmp_path / "test_batch.bin")
    with pytest.raises(DataError, match="not a whole number"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path)))


def test_image_folder(tmp_path):
    rng = np.random.default_rng(2)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = load_data(DataConfig(name="image_folder", root=str(tmp_path), image_size=8, val_fraction=0.2,
                             test_fraction=0.2))
    assert d.classes == ["cat", "dog"]
    assert d.train.images.shape[1:] == (3, 8, 8)
    (tmp_path / "dog" / "broken.png").write_text("not an image")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        load_data(DataConfig(name="image_folder", root=str(tmp_path), image_size=8))
