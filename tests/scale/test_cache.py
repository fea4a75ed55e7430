"""The image cache: the same pixels as decoding every time, keyed by files and size, written atomically."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from brainalign.data.cache import CachedImages, DecodedImages, cache_dir, cached_images, decode, loader
from brainalign.data.things_eeg2 import image_root, training_files
from brainalign.errors import DataError


@pytest.fixture
def files(eeg2_tree):
    return training_files(image_root(eeg2_tree[0]))[0]


@pytest.mark.parametrize("size,mode", [(16, "RGB"), (24, "L"), (None, "RGB")])
def test_cache_holds_the_decoded_pixels(files, size, mode):
    array = cached_images(files, size, mode, workers=0)
    assert isinstance(array, np.memmap) and array.dtype == np.uint8
    expected = np.stack([decode(f, size, mode) for f in files])
    np.testing.assert_array_equal(np.asarray(array), expected)


def test_second_call_reads_the_cache_and_a_changed_file_gets_a_new_one(files):
    first = cached_images(files, 16)
    entries = sorted(cache_dir().iterdir())
    assert len(entries) == 1 and not [p for p in entries if p.name.startswith(".")]  # no temporary file left
    again = cached_images(files, 16)
    assert again.filename == first.filename
    other = cached_images(files, 20)
    assert other.filename != first.filename and other.shape[1:3] == (20, 20)
    st = os.stat(files[0])
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cached_images(files, 16).filename != first.filename


def test_dataloader_with_workers_gives_the_same_pixels(files):
    cached = cached_images(files, 16)
    plain = torch.cat([b for b, _ in loader(DecodedImages(files, 16), batch_size=7, workers=2)])
    fast = torch.cat([b for b, _ in loader(CachedImages(cached), batch_size=7, workers=2, pin_memory=False)])
    assert torch.equal(plain, fast)


def test_missing_or_unreadable_files_are_one_clear_error(files, tmp_path):
    with pytest.raises(DataError, match="not found"):
        cached_images([*files, tmp_path / "nope.jpg"], 16)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="not a readable image"):
        decode(bad, 16)
    assert not cache_dir().exists() or not any(cache_dir().iterdir())
