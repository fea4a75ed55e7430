"""Hand-made run folders (result.json + flags.safetensors, as train/evaluate write them) with known outcomes.

Each attack curve is given as {eps: k}: the first k of the n test images stay correct at that strength, so
accuracies, gains and discordant pairs are known exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from brainalign.io import save_checkpoint, write_json, write_yaml

ATTACK_META = {"pgd_linf": ("whitebox", "Linf"), "autoattack_linf": ("whitebox", "Linf"),
               "pgd_l2": ("whitebox", "L2"), "fgsm": ("whitebox", "Linf"),
               "apgd_ce_linf": ("whitebox", "Linf"), "apgd_t_linf": ("whitebox", "Linf")}


def write_run(root: Path, name: str, seed: int, curves: dict[str, dict[float, int]], *, n: int = 200,
              regularizers: list[dict[str, Any]] | None = None, defences: list[dict[str, Any]] | None = None,
              **extra: Any) -> Path:
    run = root / f"{name}__seed{seed}"
    write_yaml(run / "config.yaml", {"name": name, "seed": seed})
    robustness, flags = {}, {}
    for key, ks in curves.items():
        attack = key.split("[")[0]
        family, norm = ATTACK_META[attack]
        eps = sorted(ks)
        for e in eps:
            flags[f"{key}@{e:g}"] = (torch.arange(n) < ks[e]).to(torch.uint8)
        robustness[key] = {"attack": attack, "family": family, "norm": norm, "params": {}, "eps": eps,
                           "accuracy": [ks[e] / n for e in eps], "n_examples": n}
    first = next(iter(curves.values()), {0.0: n})
    result = {"schema_version": 1, "package_version": "test", "git_commit": "abc123", "experiment": root.name,
              "name": name, "seed": seed, "clean_accuracy": first.get(0.0, n) / n, "n_test": n,
              "regularizers": regularizers or [], "defences": defences or [], "regularization_targets": [],
              "simulated_data": False, "robustness": robustness}
    result.update(extra)
    write_json(run / "result.json", result)
    if flags:
        save_checkpoint(run / "flags.safetensors", flags, {"format": "brainalign-flags"})
    return run


def neural(control: str = "none") -> list[dict[str, Any]]:
    return [{"name": "neural_similarity", "weight": 1.0, "control": control, "params": {}}]


def only(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "weight": 1.0, "control": "none", "params": {}}]


BASE = {0.0: 180, 0.1: 120, 0.2: 80, 0.3: 40, 0.4: 20}


def shifted(extra: int) -> dict[float, int]:
    """The baseline curve with ``extra`` more images right at the two high strengths (0.3 and 0.4)."""
    return {e: k + (extra if e >= 0.3 else 0) for e, k in BASE.items()}


def controls_experiment(root: Path) -> Path:
    """baseline, neural (+30/+20/+25 images at high eps over 3 seeds), its shuffled control (+0) and the
    decorrelation control (the same per-seed gains as neural)."""
    key = "pgd_linf[steps=10]"
    extras = {0: 30, 1: 20, 2: 25}
    for seed, extra in extras.items():
        write_run(root, "baseline", seed, {key: BASE})
        write_run(root, "neural", seed, {key: shifted(extra)}, regularizers=neural())
        write_run(root, "neural_shuffled", seed, {key: BASE}, regularizers=neural("shuffled"))
        write_run(root, "decorr", seed, {key: shifted(extra)}, regularizers=only("decorrelation"))
    return root
