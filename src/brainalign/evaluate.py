"""Evaluation: every attack of a suite over its strength grid, appended to the run's result.json.

Suites are defined here, in one place. Finished attacks are not re-run: an attack's entry in
``result.json["robustness"]`` is keyed by ``AttackSpec.key`` and holds accuracy per strength; the
per-example outcomes (1 = still correct) go to ``flags.safetensors`` as ``"<key>@<strength>"`` so that
comparisons across runs can be paired tests on the same test images.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from brainalign import results
from brainalign.attacks import check_inputs
from brainalign.config import AttackSpec
from brainalign.errors import ConfigError
from brainalign.io import load_checkpoint, save_checkpoint
from brainalign.registry import ATTACKS
from brainalign.train import generator, load_trained_model

# Strength grids in native [0, 1] pixel units (the 8x8 digits have 17 grey levels, 1/16 apart).
LINF_EPS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
L2_EPS = [0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0]

SUITES: dict[str, list[AttackSpec]] = {
    "quick": [
        AttackSpec(name="fgsm", eps=LINF_EPS),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 10}),
        AttackSpec(name="pgd_l2", eps=L2_EPS, params={"steps": 10}),
    ],
    "standard": [
        AttackSpec(name="fgsm", eps=LINF_EPS),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 20}),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 50, "restarts": 2}),
        AttackSpec(name="pgd_l2", eps=L2_EPS, params={"steps": 20}),
    ],
    "full": [
        AttackSpec(name="fgsm", eps=LINF_EPS),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 20}),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 100, "restarts": 5}),
        AttackSpec(name="pgd_l2", eps=L2_EPS, params={"steps": 20}),
        AttackSpec(name="pgd_l2", eps=L2_EPS, params={"steps": 100, "restarts": 5}),
    ],
}


def suite_specs(suite: str) -> list[AttackSpec]:
    try:
        return [s.model_copy(deep=True) for s in SUITES[suite]]
    except KeyError:
        raise ConfigError(f"unknown suite {suite!r}; valid: {', '.join(SUITES)}") from None


def validate_spec(spec: AttackSpec) -> None:
    """Unknown attacks and out-of-range strengths fail before anything runs."""
    info = ATTACKS.info(spec.name)
    limit = getattr(info, "max_strength", None)
    if limit is not None and max(spec.eps) > limit:
        raise ConfigError(f"{spec.name}: {info.parameter} must be in [0, {limit}], got {max(spec.eps)}")


def attack_flags(
    model, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, strength: float, seed: int, batch_size: int
) -> torch.Tensor:
    """Per-example outcome (True = still classified correctly) of one attack at one strength."""
    attack = ATTACKS.get(spec.name)
    gen = generator(seed, spec.key, strength)
    flags = []
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        x_adv = attack(model, xb, yb, strength, generator=gen, **spec.params)
        with torch.no_grad():
            flags.append(model(x_adv).argmax(1) == yb)
    return torch.cat(flags)


def auc(eps: list[float], accuracy: list[float]) -> float:
    """Area under the accuracy-versus-strength curve, normalised by the strength range (trapezoids)."""
    e, a = np.asarray(eps, dtype=float), np.asarray(accuracy, dtype=float)
    span = e.max() - e.min()
    return float(np.trapezoid(a, e) / span) if span > 0 else float(a.mean())


def run_attack(
    model, x, y, spec: AttackSpec, seed: int, batch_size: int, flags_out: dict[str, torch.Tensor]
) -> dict[str, Any]:
    info = ATTACKS.info(spec.name)
    accs = []
    for strength in spec.eps:
        flags = attack_flags(model, x, y, spec, strength, seed, batch_size)
        flags_out[f"{spec.key}@{strength:g}"] = flags.to(torch.uint8)
        accs.append(float(flags.float().mean()))
    return {
        "attack": spec.name,
        "family": info.family,
        "norm": info.norm,
        "parameter": info.parameter,
        "params": spec.params,
        "eps": [float(e) for e in spec.eps],
        "eps_units": "native [0, 1] pixel units",
        "accuracy": accs,
        "auc": auc(spec.eps, accs),
        "n_examples": int(len(y)),
    }


def evaluate_run(
    run_dir: str | Path,
    suite: str | None = None,
    attacks: list[AttackSpec] | None = None,
    n_examples: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run a suite (or explicit attacks) on a finished run; append to result.json; skip finished attacks."""
    run_dir = Path(run_dir)
    result = results.read_result(run_dir)
    config, data, model = load_trained_model(run_dir)
    specs = attacks or config.eval.attacks or suite_specs(suite or config.eval.suite)
    if suite is not None and attacks is None:
        specs = suite_specs(suite)
    for spec in specs:
        validate_spec(spec)
    n = n_examples or config.eval.n_examples or len(data.test)
    x, y = data.test.images[:n], data.test.labels[:n]
    check_inputs(model, x, y, data.num_classes)
    robustness = result.setdefault("robustness", {})
    flags_path = run_dir / results.FLAGS
    flags = load_checkpoint(flags_path)[0] if flags_path.exists() else {}
    todo = [
        s
        for s in specs
        if robustness.get(s.key, {}).get("eps") != [float(e) for e in s.eps]
        or robustness[s.key].get("n_examples") != n
    ]
    for spec in tqdm(
        todo, desc=f"attacks {run_dir.name}", disable=None if progress else True, file=sys.stderr, leave=False
    ):
        robustness[spec.key] = run_attack(model, x, y, spec, config.seed, config.eval.batch_size, flags)
        save_checkpoint(flags_path, flags, {"format": "brainalign-flags"})
        results.write_result(run_dir, result)
    return result
