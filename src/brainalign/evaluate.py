"""Evaluation: every attack of a suite over its strength grid, appended to the run's result.json.

Suites are defined here, in one place. Finished attacks are not re-run: an attack's entry in
``result.json["robustness"]`` is keyed by ``AttackSpec.key`` and holds accuracy per strength; the
per-example outcomes (1 = still correct) go to ``flags.safetensors`` as ``"<key>@<strength>"`` so that
comparisons across runs can be paired tests on the same test images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from brainalign import console, results
from brainalign.attacks import check_attack, check_inputs
from brainalign.attacks.corruptions import CORRUPTIONS
from brainalign.config import AttackSpec
from brainalign.errors import ConfigError
from brainalign.io import load_checkpoint, save_checkpoint
from brainalign.registry import ATTACKS
from brainalign.robustness import minimal_curve, run_selfchecks
from brainalign.robustness.metrics import auc
from brainalign.run_folder import load_trained_model, locked
from brainalign.seeding import generator

# Strength grids in native [0, 1] pixel units (the 8x8 digits have 17 grey levels, 1/16 apart).
LINF_EPS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
L2_EPS = [0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0]

NOISE_SIGMA = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]  # Attias et al.: MNIST 0..0.5
SEVERITIES = [0, 1, 2, 3, 4, 5]
# Semantic attacks (Hsiung et al. 2023 ranges at the top of each grid); hue, saturation and recolor are
# dropped for grayscale data (undefined there), see suite_specs.
SEMANTIC = [
    AttackSpec(name="rotation", eps=[0.0, 5.0, 10.0, 20.0, 30.0]),
    AttackSpec(name="brightness", eps=[0.0, 0.1, 0.2, 0.3]),
    AttackSpec(name="contrast", eps=[0.0, 0.15, 0.3, 0.5]),
    AttackSpec(name="hue", eps=[0.0, 0.5, 1.0, 2.0, 3.14159]),
    AttackSpec(name="saturation", eps=[0.0, 0.15, 0.3, 0.5]),
    AttackSpec(name="recolor", eps=[0.0, 0.03, 0.06, 0.1]),
    AttackSpec(name="caa", eps=[0.0, 0.5, 1.0], params={"order": "scheduled"}),
]
NOISE = [
    AttackSpec(name="noise_gaussian", eps=NOISE_SIGMA),
    AttackSpec(name="noise_uniform", eps=NOISE_SIGMA[:5]),
    AttackSpec(name="noise_salt_pepper", eps=[0.0, 0.02, 0.05, 0.1, 0.2]),
]

SUITES: dict[str, list[AttackSpec]] = {
    "quick": [
        AttackSpec(name="fgsm", eps=LINF_EPS),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 10}),
        AttackSpec(name="pgd_l2", eps=L2_EPS, params={"steps": 10}),
        AttackSpec(name="noise_gaussian", eps=NOISE_SIGMA),
    ],
    "standard": [
        AttackSpec(name="fgsm", eps=LINF_EPS),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 20}),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 50, "restarts": 2}),
        AttackSpec(name="pgd_l2", eps=L2_EPS, params={"steps": 20}),
        # The headline white-box number when full AutoAttack is too slow: APGD-CE and APGD-T.
        AttackSpec(name="apgd_ce_linf", eps=LINF_EPS),
        AttackSpec(name="apgd_t_linf", eps=LINF_EPS),
        AttackSpec(name="cw_l2", eps=L2_EPS),
        AttackSpec(name="square_linf", eps=[0.0, 0.05, 0.1, 0.2], params={"n_queries": 1000}),
        AttackSpec(name="boundary", eps=L2_EPS, params={"steps": 1000}),
        *NOISE,
        *SEMANTIC,
    ],
    "full": [
        AttackSpec(name="fgsm", eps=LINF_EPS),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 20}),
        AttackSpec(name="pgd_linf", eps=LINF_EPS, params={"steps": 100, "restarts": 5}),
        AttackSpec(name="pgd_l2", eps=L2_EPS, params={"steps": 20}),
        AttackSpec(name="pgd_l2", eps=L2_EPS, params={"steps": 100, "restarts": 5}),
        AttackSpec(name="autoattack_linf", eps=LINF_EPS),
        AttackSpec(name="autoattack_l2", eps=L2_EPS),
        AttackSpec(name="apgd_ce_linf", eps=LINF_EPS),
        AttackSpec(name="apgd_t_linf", eps=LINF_EPS),
        AttackSpec(name="cw_l2", eps=L2_EPS),
        AttackSpec(name="square_linf", eps=LINF_EPS),
        AttackSpec(name="square_l2", eps=L2_EPS),
        AttackSpec(name="boundary", eps=L2_EPS),
        AttackSpec(name="hsj_l2", eps=L2_EPS),
        *NOISE,
        *[AttackSpec(name=f"corruption_{c}", eps=SEVERITIES) for c in CORRUPTIONS],
        *SEMANTIC,
        AttackSpec(name="caa", eps=[0.0, 0.5, 1.0], params={"order": "random"}),
    ],
}


def suite_specs(suite: str, channels: int | None = None) -> list[AttackSpec]:
    """The suite's attacks; for ``channels`` != 3, without the colour attacks (undefined on grayscale)."""
    try:
        specs = [s.model_copy(deep=True) for s in SUITES[suite]]
    except KeyError:
        raise ConfigError(f"unknown suite {suite!r}; valid: {', '.join(SUITES)}") from None
    if channels is not None and channels != 3:
        specs = [s for s in specs if not ATTACKS.info(s.name).requires_color]
    return specs


def eval_specs(config, data, suite: str | None = None) -> list[AttackSpec]:
    """The attacks a run's evaluation runs: ``suite`` if given, else the config's attacks, else its suite."""
    if suite is not None:
        return suite_specs(suite, data.in_channels)
    return config.eval.attacks or suite_specs(config.eval.suite, data.in_channels)


def check_eval(config, data, suite: str | None = None) -> list[AttackSpec]:
    """Validate the evaluation against the data (strength ranges for its image size, colour attacks), before
    training or attacking starts; return its attacks."""
    specs = eval_specs(config, data, suite)
    for spec in specs:
        check_attack(spec.name, spec.eps, spec.params, image_shape=tuple(data.test.images.shape[1:]))
    return specs


def attack_flags(
    model, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, strength: float, seed: int, batch_size: int,
    only: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-example outcome (True = still classified correctly) of one attack at one strength.

    A norm-bounded attack at eps 0 cannot move the image, so its outcome is the clean one (not attacked).
    ``only`` (bool per example) attacks just those examples; the others count as broken (False).
    """
    if only is not None:
        flags = torch.zeros(len(y), dtype=torch.bool)
        idx = torch.nonzero(only, as_tuple=False).flatten()
        if len(idx):
            flags[idx] = attack_flags(model, x[idx], y[idx], spec, strength, seed, batch_size)
        return flags
    attack = ATTACKS.get(spec.name)
    info = ATTACKS.info(spec.name)
    gen = generator(seed, spec.key, strength)
    flags = []
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        if strength == 0 and info.norm in ("Linf", "L2"):
            x_adv = xb
        else:
            x_adv = attack(model, xb, yb, strength, generator=gen, **spec.params)
        with torch.no_grad():
            flags.append(model(x_adv).argmax(1) == yb)
    return torch.cat(flags)


def cumulative_flags(model, x, y, spec: AttackSpec, seed: int, batch_size: int) -> list[torch.Tensor]:
    """Outcomes over an ascending strength grid, cumulatively (``AttackInfo.cumulative``): each strength attacks
    only the examples still correct at the one below, so an example broken at a smaller radius stays broken
    (its adversarial lies in every larger ball): the per-example worst case over the grid, at a fraction of
    attacking every strength on every example."""
    per_eps, alive = [], None
    for strength in spec.eps:
        alive = attack_flags(model, x, y, spec, strength, seed, batch_size, only=alive)
        per_eps.append(alive)
    return per_eps


def run_attack(
    model, x, y, spec: AttackSpec, seed: int, batch_size: int, flags_out: dict[str, torch.Tensor]
) -> dict[str, Any]:
    info = ATTACKS.info(spec.name)
    extra: dict[str, Any] = {}
    if info.minimal_perturbation:  # one minimisation serves every budget (and gives the median distances)
        per_eps, extra = minimal_curve(model, spec.name, x, y, spec.eps, params=spec.params,
                                       generator=generator(seed, spec.key), batch_size=batch_size)
    elif info.cumulative and list(spec.eps) == sorted(spec.eps):
        per_eps = cumulative_flags(model, x, y, spec, seed, batch_size)
        extra = {"cumulative": True}
    else:
        per_eps = [attack_flags(model, x, y, spec, strength, seed, batch_size) for strength in spec.eps]
    accs = []
    for strength, flags in zip(spec.eps, per_eps, strict=True):
        flags_out[f"{spec.key}@{strength:g}"] = flags.to(torch.uint8)
        accs.append(float(flags.float().mean()))
    return {**extra, **({"label": info.label} if info.label else {}),
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
    """Run a suite (or explicit attacks) on a finished run; append to result.json; skip finished attacks.

    A run holds results on one set of test images: asking for another ``n_examples`` than its finished
    attacks used is refused (one table never mixes sample sizes). The run folder's lock is held throughout.
    """
    run_dir = Path(run_dir)
    results.read_result(run_dir)  # a finished, readable run, checked before anything is locked or written
    config, data, model = load_trained_model(run_dir)
    if config.train.channels_last:  # the run's memory format (brainalign.speed) also speeds its attacks
        model.to(memory_format=torch.channels_last)
    specs = attacks or check_eval(config, data, suite)
    if n_examples is not None and n_examples < 1:
        raise ConfigError(f"n_examples must be >= 1 (test images to attack), got {n_examples}")
    split = data.val if config.eval.split == "val" else data.test  # val: tuning trials never attack test images
    n = min(n_examples or config.eval.n_examples or len(split), len(split))
    x, y = split.images[:n], split.labels[:n]
    for spec in specs:
        check_attack(spec.name, spec.eps, spec.params, image_shape=tuple(x.shape[1:]))
    check_inputs(model, x, y, data.num_classes)
    with locked(run_dir):
        result = results.read_result(run_dir)
        robustness = result.setdefault("robustness", {})
        used = sorted({entry.get("n_examples") for entry in robustness.values()} - {None})
        if used and used != [n]:
            raise ConfigError(f"{run_dir} was evaluated on {', '.join(map(str, used))} test images; n_examples {n} "
                              f"would mix sample sizes in one result; use n_examples {used[0]} or evaluate a copy "
                              f"of the run folder")
        flags_path = run_dir / results.FLAGS
        flags = load_checkpoint(flags_path)[0] if flags_path.exists() else {}
        todo = [s for s in specs if robustness.get(s.key, {}).get("eps") != [float(e) for e in s.eps]]
        for spec in console.progress(todo, desc=f"{run_dir.name}: attacks", enabled=progress, every_s=0.0):
            console.LOGGER.debug("%s: %s at %s", run_dir.name, spec.key, spec.eps)
            # flags before result.json: a kill between them redoes this attack (seeded: the same flags).
            robustness[spec.key] = {**run_attack(model, x, y, spec, config.seed, config.eval.batch_size, flags),
                                    "split": config.eval.split}
            save_checkpoint(flags_path, flags, {"format": "brainalign-flags"})
            results.write_result(run_dir, result)
        if config.eval.headline_check and (todo or "headline_check" not in result):
            from brainalign.robustness.headline_check import check_run

            result["headline_check"] = check_run(run_dir, result, model, x, y, n_sample=config.eval.headline_check,
                                                 seed=config.seed, batch_size=config.eval.batch_size)
            results.write_result(run_dir, result)
        if config.eval.selfchecks and (todo or "selfchecks" not in result):
            if progress:
                console.LOGGER.info("%s: self-checks on %d test images", run_dir.name,
                                    min(config.eval.selfcheck_examples, len(y)))
            # Gradient masking, weak attacks, stochastic models without EOT: any failure marks the result unreliable.
            result["selfchecks"] = run_selfchecks(model, x, y, robustness, num_classes=data.num_classes,
                                                  seed=config.seed, batch_size=config.eval.batch_size,
                                                  n_check=config.eval.selfcheck_examples)
            result["reliable"] = result["selfchecks"]["reliable"]
            results.write_result(run_dir, result)
    return result
