"""Tiny trained runs on digits (small CNN, 2 epochs, a 3-step PGD on 100 test images), trained once per
test session: every module asking for them gets the same folder, and `train` skips finished runs."""

from __future__ import annotations

from pathlib import Path

from brainalign.config import parse_config
from brainalign.train import train

EXPERIMENT = "tiny"
ATTACK = "pgd_linf[steps=3]"
# condition -> (model width, seeds): a baseline and three other arms (so that the condition-level estimate is
# defined), so that gains and predictivity vary
CONDITIONS = {"baseline": (8, (0, 1)), "wide": (12, (0, 1)), "narrow": (4, (0,)), "mid": (6, (0,))}


def tiny_experiment(base: Path) -> Path:
    out = Path(base) / "shared_tiny_runs"
    for name, (width, seeds) in CONDITIONS.items():
        for seed in seeds:
            train(parse_config({
                "experiment": EXPERIMENT, "name": name, "seed": seed, "out_dir": str(out),
                "model": {"name": "small_cnn", "width": width},
                "train": {"epochs": 2, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0, "threads": 1},
                "eval": {"n_examples": 100,
                         "attacks": [{"name": "pgd_linf", "eps": [0.0, 0.05, 0.1, 0.2], "params": {"steps": 3}}]},
            }), progress=False)
    return out / EXPERIMENT
