"""Shared fixtures: tiny, fast configurations on the embedded digits."""

from __future__ import annotations

import pytest
import torch

from brainalign.config import parse_config


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests share 2 cores with each other's processes; one thread each keeps them predictable."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _encoder_cache(tmp_path_factory):
    """Trained neural encoders are cached in a folder of the test session, never in the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINALIGN_CACHE_DIR", str(tmp_path_factory.mktemp("brainalign-cache")))
    yield
    mp.undo()


@pytest.fixture
def tiny_config(tmp_path):
    """A run that trains in about a second: small CNN, 3 epochs, 120 test images attacked."""

    def make(**overrides):
        data = {
            "experiment": "t",
            "name": "baseline",
            "out_dir": str(tmp_path / "runs"),
            "model": {"name": "small_cnn", "width": 8},
            "train": {"epochs": 3, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0},
            "eval": {"n_examples": 120,
                     "attacks": [{"name": "pgd_linf", "eps": [0.0, 0.1], "params": {"steps": 3}}]},
        }
        for key, value in overrides.items():
            section, _, field = key.partition("__")
            if field:
                data.setdefault(section, {})[field] = value
            else:
                data[section] = value
        return parse_config(data)

    return make
