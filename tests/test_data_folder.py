"""image_folder: channels inferred from the files (grayscale -> 1, any colour -> 3), or as data.channels says."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from brainalign.config import DataConfig
from brainalign.data import load_data
from brainalign.registry import DATASETS


def _folder(root, make, n=6):
    """Two classes of n images each; make(rng, cls, i) -> a PIL image."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir()
        for i in range(n):
            make(rng, cls, i).save(root / cls / f"{i}.png")
    return root


def _load(root, **kw):
    """The registered loader's raw output (all images, before the split), as the files give them."""
    images, labels, classes = DATASETS.get("image_folder")(DataConfig(name="image_folder", root=str(root), **kw))
    return images, labels


def _gray(rng, *_):
    return Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8), mode="L")


def _colour(rng, *_):
    return Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), mode="RGB")


def test_grayscale_pngs_load_as_one_channel_exactly(tmp_path):
    root = _folder(tmp_path, _gray)
    images, _ = _load(root)
    assert images.shape == (12, 1, 6, 6)
    expected = np.asarray(Image.open(root / "a" / "0.png"), dtype=np.float32) / 255
    np.testing.assert_array_equal(images[0, 0].numpy(), expected)
    d = load_data(DataConfig(name="image_folder", root=str(root), val_fraction=0.25, test_fraction=0.25))
    assert d.in_channels == 1


@pytest.mark.parametrize("mode", ["RGB", "LA", "P"])
def test_colour_files_without_colour_count_as_grayscale(tmp_path, mode):
    def make(rng, *_):
        g = rng.integers(0, 256, (6, 6), dtype=np.uint8)
        rgb = Image.fromarray(np.stack([g, g, g], -1), mode="RGB")
        return rgb.convert(mode, palette=Image.Palette.ADAPTIVE) if mode == "P" else rgb.convert(mode)

    images, _ = _load(_folder(tmp_path, make))
    assert images.shape[1] == 1


def test_colour_images_load_as_three_channels_in_order(tmp_path):
    root = _folder(tmp_path, lambda rng, *_: Image.fromarray(
        rng.integers(0, 256, (3, 3, 3), dtype=np.uint8), mode="RGB"))  # 3 px high: must not be read as channels
    images, _ = _load(root)
    assert images.shape == (12, 3, 3, 3)
    expected = np.asarray(Image.open(root / "a" / "0.png"), dtype=np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_array_equal(images[0].numpy(), expected)


def test_mixed_folder_goes_to_rgb_and_keeps_the_gray_images_exact(tmp_path):
    # 11 grayscale images and one colour image: the colour is kept, the gray ones are replicated
    root = _folder(tmp_path, lambda rng, cls, i: _colour(rng) if (cls, i) == ("b", 5) else _gray(rng))
    images, labels = _load(root)
    assert images.shape == (12, 3, 6, 6)
    gray = np.asarray(Image.open(root / "a" / "0.png"), dtype=np.float32) / 255
    for c in range(3):
        np.testing.assert_array_equal(images[0, c].numpy(), gray)
    assert not np.array_equal(images[11, 0].numpy(), images[11, 1].numpy())


def test_channels_setting_overrides_the_files(tmp_path):
    (tmp_path / "c").mkdir()
    root = _folder(tmp_path / "c", _colour)
    images, _ = _load(root, channels=1)
    assert images.shape == (12, 1, 6, 6)
    pil_luma = np.asarray(Image.open(root / "a" / "0.png").convert("L"), dtype=np.float32) / 255
    np.testing.assert_allclose(images[0, 0].numpy(), pil_luma, atol=1.01 / 255)
    (tmp_path / "g").mkdir()
    gray_root = _folder(tmp_path / "g", _gray)
    images, _ = _load(gray_root, channels=3)
    assert images.shape == (12, 3, 6, 6)
    assert (images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all()
