"""Feature extraction: shapes, pooling, projection, eval mode, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from brainalign.alignment import extract_features
from brainalign.errors import ConfigError, DataError


class TinyModel(nn.Module):
    """The BrainModel feature contract: named stages applied in order, features(x, names) -> dict."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleDict({
            "conv": nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
            "pool": nn.Sequential(nn.Dropout(0.5), nn.AdaptiveAvgPool2d(2)),
            "fc": nn.Sequential(nn.Flatten(), nn.Linear(16, 5)),
        })
        self.calls = 0

    def features(self, x, names):
        self.calls += 1
        out, h = {}, x
        for name, layer in self.layers.items():
            h = layer(h)
            if name in names:
                out[name] = h
        return out


IMAGES = torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_shapes_pooling_and_batching():
    model = TinyModel()
    feats = extract_features(model, IMAGES, ["conv", "fc"], batch_size=4)
    assert list(feats) == ["conv", "fc"]
    assert feats["conv"].shape == (10, 4 * 8 * 8) and feats["fc"].shape == (10, 5)
    assert feats["conv"].dtype == np.float32
    assert model.calls == 3  # ceil(10 / 4) batches
    direct = model.eval().features(IMAGES, ["conv"])["conv"]
    np.testing.assert_allclose(feats["conv"], direct.flatten(1).detach().numpy(), atol=1e-6)
    avg = extract_features(model, IMAGES, ["conv"], pool="avg")["conv"]
    np.testing.assert_allclose(avg, direct.mean((2, 3)).detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(extract_features(model, IMAGES.numpy(), ["fc"], batch_size=3)["fc"], feats["fc"],
                               atol=1e-6)


def test_eval_mode_no_grad_and_mode_restored():
    model = TinyModel().train()
    a = extract_features(model, IMAGES, ["fc"])["fc"]
    b = extract_features(model, IMAGES, ["fc"])["fc"]
    np.testing.assert_array_equal(a, b)  # dropout off, batch-norm running stats used
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_random_projection_is_fixed_and_keeps_geometry():
    model = TinyModel()
    a = extract_features(model, IMAGES, ["conv"], max_dim=64, batch_size=3)["conv"]
    b = extract_features(model, IMAGES, ["conv"], max_dim=64, batch_size=10)["conv"]
    full = extract_features(model, IMAGES, ["conv"])["conv"]
    assert a.shape == (10, 64)
    np.testing.assert_allclose(a, b, atol=1e-5)  # the same matrix for every batch
    assert not np.allclose(a, extract_features(model, IMAGES, ["conv"], max_dim=64, seed=1)["conv"])
    # Johnson-Lindenstrauss: pairwise distances kept within a few tens of percent at 64 dimensions.
    i, j = np.triu_indices(10, 1)
    ratio = np.linalg.norm(a[i] - a[j], axis=1) / np.linalg.norm(full[i] - full[j], axis=1)
    assert 0.6 < ratio.min() and ratio.max() < 1.4 and abs(ratio.mean() - 1) < 0.15
    # Narrower layers are left as they are.
    np.testing.assert_array_equal(extract_features(model, IMAGES, ["fc"], max_dim=64)["fc"],
                                  extract_features(model, IMAGES, ["fc"])["fc"])


@pytest.mark.parametrize("images, kwargs, error, match", [
    (IMAGES * 2, {}, DataError, r"\[0, 1\]"),
    (IMAGES[0], {}, DataError, "N, C, H, W"),
    ((IMAGES * 255).to(torch.uint8), {}, DataError, "floats"),
    (IMAGES, {"pool": "max"}, ConfigError, "pool"),
    (IMAGES, {"max_dim": 0}, ConfigError, "max_dim"),
    (IMAGES, {"batch_size": 0}, ConfigError, "batch_size"),
])
def test_bad_input_raises(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        extract_features(TinyModel(), images, ["fc"], **kwargs)


def test_with_a_brainmodel():
    base = pytest.importorskip("brainalign.models.base")

    class Net(base.BrainModel):
        def __init__(self):
            super().__init__(mean=(0.5,) * 3, std=(0.25,) * 3)
            self.layers["a"] = nn.Conv2d(3, 2, 3)
            self.layers["b"] = nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 6, 3))

    feats = extract_features(Net(), IMAGES, ["a", "b"], pool="avg")
    assert feats["a"].shape == (10, 2) and feats["b"].shape == (10, 3)
    with pytest.raises(ConfigError, match="not a layer"):
        extract_features(Net(), IMAGES, ["nope"])
