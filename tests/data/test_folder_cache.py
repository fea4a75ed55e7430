"""image_folder reads through the uint8 decode cache: the same pixels as decoding, invalidated by the files and
the size, and off with data.cache: false."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

import brainalign.data.cache as cache_module
from brainalign.config import DataConfig, parse_config
from brainalign.data.cache import cache_dir
from brainalign.errors import ConfigError, DataError
from brainalign.registry import DATASETS


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINALIGN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def root(tmp_path):
    """Two classes of 4 colour images of 10 x 12 px, PNG and JPEG."""
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(tmp_path / "images" / cls / f"{i}.{'jpg' if i % 2 else 'png'}")
    return tmp_path / "images"


def _load(root, **kw) -> torch.Tensor:
    images, _, _ = DATASETS.get("image_folder")(DataConfig(name="image_folder", root=str(root), **kw))
    return images


def _cache_files() -> list:
    return sorted(cache_dir().iterdir()) if cache_dir().exists() else []


def _no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded a file although the cache holds it")

    monkeypatch.setattr(cache_module, "decode", refuse)


@pytest.mark.parametrize("size", [None, 8])
def test_the_cache_holds_the_pixels_of_decoding(root, size):
    files = sorted(root.glob("*/*"))
    expected = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)
                                    if size else Image.open(f).convert("RGB")) for f in files])
    expected = torch.from_numpy(expected.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    cold = _load(root, image_size=size)
    assert len(_cache_files()) == 1
    warm = _load(root, image_size=size)
    uncached = _load(root, image_size=size, cache=False)
    assert cold.dtype == torch.float32 and cold.shape == expected.shape
    for images in (cold, warm, uncached):
        assert torch.equal(images, expected)


def test_later_loads_read_the_cache_without_decoding(root, monkeypatch):
    first = _load(root, image_size=8)
    _no_decoding(monkeypatch)
    assert torch.equal(_load(root, image_size=8), first)
    with pytest.raises(AssertionError, match="decoded a file"):  # the flag turns the cache off
        _load(root, image_size=8, cache=False)


def test_the_flag_off_decodes_and_writes_nothing(root):
    _load(root, cache=False)
    assert _cache_files() == []


def test_an_edited_added_or_resized_set_is_decoded_afresh(root):
    before = _load(root, image_size=8)
    assert len(_cache_files()) == 1
    edited = root / "cat" / "0.png"
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8), "RGB").save(edited)
    st = os.stat(edited)
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later time, whatever the clock resolution
    after = _load(root, image_size=8)
    assert float(after[0].abs().max()) == 0.0 and torch.equal(after[1:], before[1:])
    Image.fromarray(np.full((10, 12, 3), 255, dtype=np.uint8), "RGB").save(root / "dog" / "9.png")
    added = _load(root, image_size=8)
    assert len(added) == 9 and float(added[-1].min()) == 1.0
    resized = _load(root, image_size=6)
    assert resized.shape[-2:] == (6, 6)
    assert len(_cache_files()) == 4
    assert not [p for p in _cache_files() if p.name.startswith(".")]  # no temporary file left


def test_images_of_different_sizes_need_a_size_and_leave_no_cache(root):
    Image.fromarray(np.zeros((5, 5, 3), dtype=np.uint8), "RGB").save(root / "dog" / "small.png")
    with pytest.raises(DataError, match="images differ in size; set data.image_size"):
        _load(root)
    assert _cache_files() == []
    assert _load(root, image_size=7).shape == (9, 3, 7, 7)


def test_a_bad_flag_value_is_one_config_error():
    with pytest.raises(ConfigError, match=r"^data\.cache: "):
        parse_config({"data": {"cache": "sometimes"}})


def test_the_same_relative_path_in_another_folder_is_not_read_from_the_cache(tmp_path, monkeypatch):
    """Two folders with the same names, byte sizes and modification times, given as the same relative root."""
    for where, value in (("one", 10), ("two", 200)):
        for cls in ("a", "b"):
            (tmp_path / where / "imgs" / cls).mkdir(parents=True)
            path = tmp_path / where / "imgs" / cls / "0.bmp"  # BMP: the byte size depends on the shape only
            Image.fromarray(np.full((4, 4, 3), value, dtype=np.uint8), "RGB").save(path)
            os.utime(path, ns=(10**18, 10**18))
    monkeypatch.chdir(tmp_path / "one")
    assert float(_load("imgs").max()) == pytest.approx(10 / 255)
    monkeypatch.chdir(tmp_path / "two")
    assert float(_load("imgs").max()) == pytest.approx(200 / 255)
