import pytest
import torch

from brainalign.config import ModelConfig
from brainalign.errors import ConfigError
from brainalign.models import build_model
from brainalign.registry import MODELS


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_shapes_gradients_features(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, width=8), num_classes=7, in_channels=3, image_size=16)
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    logits, feats = model.forward_features(x, model.layer_names)
    assert logits.shape == (4, 7)
    assert torch.isfinite(logits).all()
    assert set(feats) == set(MODELS.info(name).layers) == set(model.layer_names)
    assert MODELS.info(name).penultimate in feats
    assert torch.allclose(model(x), logits)
    logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"
    assert x.grad is not None and torch.any(x.grad != 0)


def test_features_stop_at_deepest_requested_layer_and_match_full_pass():
    model = build_model(ModelConfig(name="small_cnn", width=8), 10, 1, 8).eval()
    x = torch.rand(3, 1, 8, 8)
    _, full = model.forward_features(x, ["conv1", "conv2"])
    part = model.features(x, ["conv1", "conv2"])
    assert torch.equal(full["conv2"], part["conv2"])


def test_unknown_layer_lists_valid_ones():
    model = build_model(ModelConfig(name="small_cnn"), 10, 1, 8)
    with pytest.raises(ConfigError, match="layer 'layer9' is not a layer of SmallCNN; valid: conv1"):
        model.features(torch.rand(1, 1, 8, 8), ["layer9"])


def test_normalisation_and_upsampling_are_inside_the_model():
    model = build_model(ModelConfig(name="resnet18", width=8, input_size=32), 10, 1, 8, mean=(0.3,), std=(0.2,))
    x = torch.rand(2, 1, 8, 8)
    assert model._prepare(x).shape == (2, 1, 32, 32)
    assert model(x).shape == (2, 10)
    assert torch.allclose(model.normalize(torch.full((1, 1, 2, 2), 0.5)), torch.full((1, 1, 2, 2), 1.0))
