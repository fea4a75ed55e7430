"""The notebook API: ``brainalign.load_run`` and the alignment functions' input types."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import brainalign
from brainalign.errors import DataError
from brainalign.headline import headline_attack_specs
from brainalign.train import train


def test_load_run_gives_results_model_and_data(tiny_config):
    attacks = headline_attack_specs("digits", steps=3)
    run_dir = train(tiny_config(eval={"n_examples": 40, "attacks": attacks}), progress=False)
    run = brainalign.load_run(run_dir)
    assert run.name == "baseline" and run.seed == 0
    assert run.clean_accuracy == run.result["clean_accuracy"]
    assert 0.0 <= run.headline_accuracy <= run.clean_accuracy + 1e-9
    assert [row["epoch"] for row in run.metrics] == [0.0, 1.0, 2.0]
    x, y = run.data.test.images, run.data.test.labels
    assert not run.model.training
    # The loaded model reproduces the stored clean accuracy on the same test split.
    with torch.no_grad():
        acc = int((run.model(x).argmax(1) == y).sum()) / len(y)
    assert acc == pytest.approx(run.clean_accuracy, abs=1e-9)
    assert run.config.name == "baseline"


def test_load_run_refuses_what_is_not_a_run_folder(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        brainalign.load_run(tmp_path / "missing")
    with pytest.raises(DataError, match="not a run folder"):
        brainalign.load_run(tmp_path)


def test_extract_features_takes_one_layer_name_and_cka_takes_numpy(tiny_config):
    config = tiny_config()
    from brainalign.data import load_data
    from brainalign.models import build_model

    data = load_data(config.data)
    model = build_model(config.model, data.num_classes, data.in_channels, data.image_size, data.mean, data.std)
    x = data.test.images[:32]
    one = brainalign.extract_features(model, x, "conv3")
    both = brainalign.extract_features(model, x, ["conv3"])
    assert list(one) == ["conv3"] and np.array_equal(one["conv3"], both["conv3"])
    feats = one["conv3"]
    from_numpy = brainalign.linear_cka(feats, feats[:, ::-1].copy())
    from_torch = brainalign.linear_cka(torch.from_numpy(feats), torch.from_numpy(feats[:, ::-1].copy()))
    assert isinstance(from_numpy, torch.Tensor)
    assert float(from_numpy) == pytest.approx(1.0, abs=1e-5)  # a permutation of features keeps CKA at 1
    assert float(from_numpy) == pytest.approx(float(from_torch))
    with pytest.raises(DataError, match="float"):
        brainalign.linear_cka(np.zeros((4, 2), dtype=int), feats[:4])


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        brainalign.no_such_thing  # noqa: B018
