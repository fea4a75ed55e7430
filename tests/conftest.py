"""Shared fixtures: tiny, fast configurations on the embedded digits."""

from __future__ import annotations

import pytest
import torch

from brainalign.config import parse_config

# Tests that train a model get the `trains` marker, so that `make test` can run them a second time under
# ATEN_CPU_CAPABILITY=default (their thresholds must hold on any CPU kernel). A test trains when its module
# is listed here or when it uses one of the fixtures listed here (which train on first use).
TRAINING_MODULES = {
    "tests/test_train.py",
    "tests/attacks/test_attack_registry.py",
    "tests/contracts/test_run_folder.py",
    "tests/defences/test_defence_training.py",
    "tests/regularizers/test_build.py",
    "tests/regularizers/test_training.py",
    "tests/robustness/test_evaluate_selfchecks.py",
    "tests/study/test_study.py",
    "tests/reports/test_browser.py",
    "tests/sweep/test_distributed.py",
    "tests/sweep/test_sweep_ray.py",
}
TRAINING_FIXTURES = {"gray_model", "rgb_model", "surrogate_model", "trained_run", "trained_tiny_run"}


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        module = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if module in TRAINING_MODULES or TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.trains)


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


@pytest.fixture
def two_gloo_processes(tmp_path):
    """``run(config, single_run_dir) -> parallel_run_dir``: the same config trained by torchrun in two gloo
    processes, its final weights checked equal to the one-process run's (to float rounding)."""
    from brainalign import results
    from brainalign.distributed import launch
    from brainalign.io import load_checkpoint, write_yaml

    def run(config, single):
        config_file = tmp_path / "two.yaml"
        write_yaml(config_file, config.to_dict())
        parallel = launch(config_file, [f"out_dir={tmp_path / 'two'}"], nproc_per_node=2, evaluate=False)
        wa, wb = (load_checkpoint(d / results.WEIGHTS)[0] for d in (single, parallel))
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], rtol=1e-4, atol=1e-5)
        return parallel

    return run
