"""Training-time defences (adversarial training, TRADES, noise augmentation), registered in ``DEFENCES``.

``build_defence(config)`` builds the run's defence from its ``defences:`` entry and refuses bad settings
(unknown or out-of-range parameters, a training eps above the evaluation's range) before training starts.
"""

from __future__ import annotations

import inspect
from typing import Any

from brainalign.defences import adversarial_training, gaussian_noise, trades  # noqa: F401  (registration)
from brainalign.defences.base import Defence, DefenceInfo
from brainalign.errors import ConfigError
from brainalign.registry import ATTACKS, DEFENCES


def eval_eps_by_norm(eval_config) -> dict[str, float]:
    """The largest eps per norm ("Linf", "L2") over the attacks the run's evaluation will use.

    Those are ``eval.attacks`` when given, else the attacks of ``eval.suite``; only norm-bounded attacks
    whose strength is an eps count.
    """
    from brainalign.evaluate import suite_specs

    specs = eval_config.attacks or suite_specs(eval_config.suite)
    top: dict[str, float] = {}
    for spec in specs:
        info = ATTACKS.info(spec.name)
        if info.norm in ("Linf", "L2") and info.parameter == "eps":
            top[info.norm] = max(top.get(info.norm, 0.0), max(float(e) for e in spec.eps))
    return top


def _construct(name: str, cls, params: dict[str, Any]) -> Defence:
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r}; valid: {', '.join(accepted)}")
    required = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "self" and p.default is inspect.Parameter.empty and p.name not in params]
    if required:
        raise ConfigError(f"parameter {required[0]!r} is required (params: {{{required[0]}: ...}})")
    return cls(**params)


def build_defence(config) -> Defence | None:
    """The run's training-time defence (at most one; it stacks with any regularizers), validated against
    the run's evaluation: ``defence.validate(eval_eps_by_norm(config.eval))``."""
    if not config.defences:
        return None
    if len(config.defences) > 1:
        raise ConfigError(f"defences: at most one per run, got {len(config.defences)}")
    spec = config.defences[0]
    eval_eps = eval_eps_by_norm(config.eval)
    try:
        defence = _construct(spec.name, DEFENCES.get(spec.name), dict(spec.params))
        defence.validate(eval_eps)
    except ConfigError as exc:
        raise ConfigError(f"defences.0 ({spec.name}): {exc}") from None
    return defence


def defence_record(spec, defence: Defence | None) -> dict[str, Any]:
    """What result.json says about a run's defence: name, params, reference, whether it trains on an
    attack, and that attack (so that the evaluation and the report can say the model was trained on it)."""
    info: DefenceInfo = DEFENCES.info(spec.name)
    return {"name": spec.name, "params": dict(spec.params), "reference": info.reference,
            "uses_attack": info.uses_attack,
            "training_attack": defence.training_attack if defence is not None else None}


__all__ = ["Defence", "DefenceInfo", "build_defence", "defence_record", "eval_eps_by_norm"]
