"""Guo et al.'s single-stream dual task on a simulated THINGS-EEG2 tree at the published layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.cli import main
from brainalign.config import DataConfig, load_config, parse_config
from brainalign.data import load_data
from brainalign.errors import ConfigError
from brainalign.neural import load_recording
from brainalign.neural.safe_pickle import load_npy
from brainalign.train import build_trainee, generator, train_step


def test_tree_has_the_published_layout(eeg2_tree):
    root, sub = eeg2_tree
    train = load_npy(sub / "preprocessed_eeg_training.npy")
    test = load_npy(sub / "preprocessed_eeg_test.npy")
    assert train["preprocessed_eeg_data"].shape == (50, 4, 17, 100)
    assert test["preprocessed_eeg_data"].shape == (2, 80, 17, 100)
    assert train["preprocessed_eeg_data"].dtype == np.float64 and train["simulated"] is True
    meta = load_npy(root / "image_set" / "image_metadata.npy")
    assert len(meta["train_img_files"]) == 50 and len(meta["test_img_files"]) == 2
    first = root / "image_set" / "training_images" / meta["train_img_concepts"][0] / meta["train_img_files"][0]
    assert first.suffix == ".jpg" and first.is_file()
    rec = load_recording("things_eeg2", sub)
    assert rec.attrs["simulated"] and rec.responses.shape == (50, 4, 17, 100)


def test_data_set_split_is_nine_and_one_per_concept(eeg2_tree):
    root, sub = eeg2_tree
    data = load_data(DataConfig(name="things_eeg2", root=str(root), image_size=16))
    assert data.num_classes == 5 and len(data.train) == 45 and len(data.test) == 5
    assert torch.equal(torch.bincount(data.test.labels), torch.ones(5, dtype=torch.long))
    assert data.val.ids == data.test.ids
    assert not set(data.train.ids) & set(data.test.ids)
    rec_ids = set(load_recording("things_eeg2", sub).stimulus_ids.tolist())
    assert set(data.train.ids) | set(data.test.ids) == rec_ids
    other = load_data(DataConfig(name="things_eeg2", root=str(root), image_size=16, split_seed=1))
    assert other.test.ids != data.test.ids  # the held-out image is drawn under split_seed


def test_data_set_needs_root_and_size(eeg2_tree):
    with pytest.raises(ConfigError, match="data.image_size"):
        load_data(DataConfig(name="things_eeg2", root=str(eeg2_tree[0])))
    with pytest.raises(ConfigError, match="data.root"):
        load_data(DataConfig(name="things_eeg2", image_size=16))


def _config(root, sub, **reg_params):
    return parse_config({
        "data": {"name": "things_eeg2", "root": str(root), "image_size": 32},
        "model": {"name": "small_cnn", "width": 8},
        "train": {"batch_size": 8, "optimizer": "adam", "lr": 0.003},
        "regularizers": [{"name": "neural_prediction",
                          "params": {"stimuli": "classification", "weighting": "uncertainty",
                                     "uncertainty_form": "guo", **reg_params},
                          "recording": {"name": "things_eeg2", "path": str(sub)}}]})


def test_single_stream_targets_are_each_training_images_own_response(eeg2_tree):
    root, sub = eeg2_tree
    trainee = build_trainee(_config(root, sub))
    reg, _ = trainee.regularizers[0]
    assert reg.stream == "classification"
    assert reg.reg_set.images is trainee.data.train.images
    rec = load_recording("things_eeg2", sub)
    avg = rec.average().reshape(len(rec.stimulus_ids), -1)
    row = {s: k for k, s in enumerate(rec.stimulus_ids.tolist())}
    expected = torch.from_numpy(avg[[row[i] for i in trainee.data.train.ids]])
    torch.testing.assert_close(reg.targets, expected)


def test_single_stream_step_uses_the_batch_rows(eeg2_tree):
    root, sub = eeg2_tree
    trainee = build_trainee(_config(root, sub))
    reg, _ = trainee.regularizers[0]
    idx = torch.tensor([3, 17, 40, 0])
    x = trainee.data.train.images[idx]
    _, feats = trainee.model.forward_features(x, reg.layers)
    direct = 0.5 * torch.nn.functional.mse_loss(reg.predict(feats), reg.targets[idx])  # exp(-0)/2 * L + 0
    assert float(reg(feats, idx).detach()) == pytest.approx(float(direct.detach()), rel=1e-5)
    before = [p.detach().clone() for p in reg.head.parameters()]
    logs = train_step(trainee, x, trainee.data.train.labels[idx], generator(0), idx)
    assert np.isfinite(logs["reg0"]) and np.isfinite(logs["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, reg.head.parameters(), strict=True))
    with pytest.raises(ConfigError, match="indices"):
        reg(feats, None)


def test_single_stream_refuses_data_without_ids_for_a_real_recording(eeg2_tree):
    _, sub = eeg2_tree
    config = parse_config({"data": {"name": "digits", "max_train": 100}, "model": {"name": "small_cnn", "width": 8},
                           "regularizers": [{"name": "neural_prediction", "params": {"stimuli": "classification"},
                                             "recording": {"name": "things_eeg2", "path": str(sub)}}]})
    with pytest.raises(ConfigError, match="names its images"):
        build_trainee(config)
    with pytest.raises(ConfigError, match="predicted"):
        build_trainee(parse_config({"data": {"max_train": 100}, "regularizers": [
            {"name": "neural_prediction", "recording": {"name": "sim_eeg"},
             "params": {"stimuli": "classification", "targets": "predicted"}}]}))


def test_simulated_recording_single_stream_on_digits():
    config = parse_config({"data": {"name": "digits", "max_train": 120}, "model": {"name": "small_cnn", "width": 8},
                           "regularizers": [{"name": "neural_prediction", "params": {"stimuli": "classification"},
                                             "recording": {"name": "sim_eeg"}}]})
    trainee = build_trainee(config)
    reg, _ = trainee.regularizers[0]
    assert reg.targets.shape == (120, 17 * 100) and reg.stream == "classification"


def test_cli_simulate_tree_and_bad_input(tmp_path, capsys):
    out = tmp_path / "tree"
    assert main(["data", "simulate", "things_eeg2", "--out", str(out), "--scale", "0.002",
                 "--image-size", "16"]) == 0
    assert (out / "SIMULATED_DATA.txt").is_file()
    jpegs = list((out / "image_set" / "training_images").glob("*/*.jpg"))
    assert len(jpegs) == 30
    from PIL import Image

    with Image.open(jpegs[0]) as image:
        assert image.size == (16, 16)
    for args, message in ((["--scale", "1.5"], "scale must be in (0, 1]"), (["--option", "colour=1"], "'colour'")):
        bad = tmp_path / f"bad{len(message)}"
        assert main(["data", "simulate", "things_eeg2", "--out", str(bad), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and not bad.exists()


def test_paper_config_parses_and_points_at_the_tree():
    config = load_config("configs/guo2024_eeg.yaml")
    assert config.data.name == "things_eeg2" and config.model.name == "resnet50_imagenet"
    assert config.model.input_size == 224 and config.regularizers[0].params["stimuli"] == "classification"


@pytest.mark.slow
def test_paper_config_trains_resnet50_at_224_on_cpu(eeg2_tree):
    root, sub = eeg2_tree
    config = load_config("configs/guo2024_eeg.yaml", [
        f"data.root={root}/image_set", f"regularizers.0.recording.path={sub}", "train.batch_size=2"])
    trainee = build_trainee(config)
    idx = torch.tensor([0, 11])
    for step in range(2):
        logs = train_step(trainee, trainee.data.train.images[idx], trainee.data.train.labels[idx],
                          generator(0, step), idx)
        assert np.isfinite(logs["loss"]) and np.isfinite(logs["reg0"])


def test_single_stream_term_after_a_second_stream_term_still_gets_the_batch_rows():
    config = parse_config({"data": {"name": "digits", "max_train": 120}, "model": {"name": "small_cnn", "width": 8},
                           "regularizers": [{"name": "pixel_similarity", "weight": 1.0},
                                            {"name": "neural_prediction", "params": {"stimuli": "classification"},
                                             "recording": {"name": "sim_eeg"}}]})
    trainee = build_trainee(config)
    reg, _ = trainee.regularizers[1]
    idx = torch.tensor([5, 60, 119, 7])
    x = trainee.data.train.images[idx]
    with torch.no_grad():
        trainee.model.train()
        _, feats = trainee.model.forward_features(x, reg.layers)
        expected = float(torch.nn.functional.mse_loss(reg.predict(feats), reg.targets[idx]))
    logs = train_step(trainee, x, trainee.data.train.labels[idx], generator(0), idx)
    assert logs["reg1"] == pytest.approx(expected, rel=1e-4)
