"""Sweep fixtures: sweep files over a tiny digits run, and finished run folders written without training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from brainalign import results
from brainalign.config import RunConfig
from brainalign.io import write_json, write_yaml

ATTACK = "pgd_linf[steps=2]"


def tiny_base(out_dir: Path) -> dict[str, Any]:
    """A run that trains in a second or two: small CNN width 8, 2 epochs, 100 test images attacked."""
    return {
        "experiment": "sw",
        "out_dir": str(out_dir),
        "model": {"name": "small_cnn", "width": 8},
        "train": {"epochs": 2, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0, "threads": 1},
        "eval": {"n_examples": 100, "attacks": [{"name": "pgd_linf", "eps": [0.0, 0.1], "params": {"steps": 2}}]},
    }


@pytest.fixture
def sweep_file(tmp_path):
    """Write a sweep YAML over ``tiny_base`` (merged with ``base``) and return its path."""

    def make(name: str = "sweep.yaml", base: dict[str, Any] | None = None, **sections) -> Path:
        data = {"base": {**tiny_base(tmp_path / "runs"), **(base or {})}, **sections}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return make


@pytest.fixture
def fake_run():
    """A finished run folder for ``config`` with the given accuracies, written without training."""

    def make(config: RunConfig, clean: float, robustness: dict[str, dict[str, Any]] | None = None,
             **extra) -> Path:
        run_dir = config.run_dir
        write_yaml(run_dir / results.CONFIG, config.to_dict())
        (run_dir / results.WEIGHTS).write_bytes(b"")
        if robustness is None:
            robustness = {ATTACK: {"eps": [0.0, 0.1], "accuracy": [clean, clean / 2]}}
        full = {}
        for key, entry in robustness.items():
            full[key] = {"attack": key.split("[")[0], "family": "whitebox", "norm": "Linf", "parameter": "eps",
                         "params": {}, "eps_units": "native [0, 1] pixel units", "auc": 0.5, "n_examples": 100,
                         **entry}
        result = {**results.provenance(), "experiment": config.experiment, "name": config.name,
                  "seed": config.seed, "data": config.data.name, "model": config.model.name,
                  "regularizers": [{"name": r.name, "weight": r.weight, "control": r.control, "params": r.params}
                                   for r in config.regularizers],
                  "defences": [], "simulated_data": False, "epochs": config.train.epochs,
                  "clean_accuracy": clean, "n_test": 360, "robustness": full, **extra}
        write_json(run_dir / results.RESULT, result)
        return run_dir

    return make


@pytest.fixture(scope="session")
def tiny_run():
    """``tiny_base`` as a fixture, for module-scoped sweeps."""
    return tiny_base


TRAINED_RUN = {
    "experiment": "t", "name": "pixel", "seed": 3,
    "model": {"name": "small_cnn", "width": 8},
    "train": {"epochs": 2, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0, "threads": 1},
    "regularizers": [{"name": "pixel_similarity", "weight": 0.5, "params": {"threshold": 0.4}}],
    "eval": {"n_examples": 120, "attacks": [{"name": "pgd_linf", "eps": [0.0, 0.1], "params": {"steps": 3}}]},
}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One real run, trained once per session (with a regularizer) and evaluated: (config, run folder)."""
    from brainalign.config import parse_config
    from brainalign.train import train

    config = parse_config({**TRAINED_RUN, "out_dir": str(tmp_path_factory.mktemp("trained") / "runs")})
    return config, train(config, progress=False)
