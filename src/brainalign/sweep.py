"""Sweeps: declare a grid (and random draws) over any config field once; run it on Ray Tune.

A sweep file is YAML::

    base_config: baseline.yaml            # a run config, relative to this file (and/or an inline `base:`)
    experiment: pixel_sweep               # optional: the experiment folder every trial writes into
    grid:                                 # every combination of these values
      seed: [0, 1, 2]
      regularizers.0.weight: [0, 4, 10]
    random:                               # drawn num_samples times per grid point, from `seed`
      num_samples: 2
      seed: 0
      regularizers.0.params.threshold: {distribution: uniform, low: 0.2, high: 0.9}
    name_template: "w{regularizers.0.weight}-th{regularizers.0.params.threshold:.2f}"
    settings:                             # optional: named bundles of field values, crossed with the grid
      - {name: baseline, set: {}}         # (each trial's params get "setting": its name; the run name is
      - {name: pixel-w1, set: {regularizers: [{name: pixel_similarity, weight: 1.0}]}}   # the setting's name)
    objective:                            # optional: the selection rule (brainalign.tune), validation split
      attack: "pgd_linf[steps=10]"
      eps: 0.1
      baseline: {regularizers.0.weight: 0}
    sweep: {max_concurrent: 4, cpus_per_trial: 1, gpus_per_trial: 0, retries: 2,
            early_stopping: {metric: val_accuracy, mode: max, grace_period: 2}}

Every trial is one ordinary run (``brainalign.train.train``) writing the standard run folder
``out_dir/experiment/<name>__seed<k>/``. Trial names are derived from the trial's values, and random
values are drawn from a seeded generator, so re-running a sweep finds the same folders: finished trials are
skipped without starting a worker, interrupted ones resume from their checkpoint. Everything is validated
before any trial starts: every grid value (``parse_config``), the names, the folders (a run folder or a
sweep manifest written by another configuration is refused) and the cluster address.

The experiment folder gets ``sweep.json`` (the sweep's normalised content and its hash; a different sweep
targeting the folder is refused) and ``sweep_result.json`` (each trial's status and, with an objective,
the selection table). Ray is an optional extra and is imported only inside :func:`run_sweep`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import itertools
import json
import math
import os
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brainalign import results
from brainalign.config import RunConfig, get_field, parse_config, read_yaml, set_field
from brainalign.errors import BrainAlignError, ConfigError
from brainalign.io import read_json, write_json

MANIFEST = "sweep.json"
RESULT = "sweep_result.json"
MANIFEST_FORMAT = "brainalign-sweep"
MANIFEST_VERSION = 1

_TOP_KEYS = {"base", "base_config", "experiment", "out_dir", "settings", "grid", "random", "name_template", "objective",
             "sweep"}
SETTING = "setting"  # the swept "field" of a sweep with named settings (each a bundle of field values)
_RESERVED_FIELDS = {"experiment", "out_dir", "name"}  # fixed per sweep, or derived from name_template
_DISTRIBUTIONS = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "choice": ("values",)}
_EXECUTION_KEYS = {"max_concurrent", "cpus_per_trial", "gpus_per_trial", "retries", "early_stopping"}
_PLACEHOLDER = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")


# --------------------------------------------------------------------------------------------------------
# The sweep file


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: its swept values (in declaration order) and its validated config."""

    name: str
    params: dict[str, Any]
    config: RunConfig

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    @property
    def key(self) -> str:
        return self.run_dir.name


@dataclass(frozen=True)
class Objective:
    """The selection rule (:func:`brainalign.tune.accepts`), evaluated against the sweep's baseline trials.

    Accept a setting iff clean_reg / clean_unreg >= ``min_clean_ratio`` and robust_reg / robust_unreg > 1,
    both read on the validation split (the trials evaluate with ``eval.split: val``): clean accuracy at
    strength 0 and robust accuracy at strength ``eps`` of ``attack`` (an ``AttackSpec.key``). The baseline of
    a trial is the trial with the ``baseline`` values and the same values of the ``match`` fields (default:
    every other swept field); accuracies are averaged over seeds (and over several matching baselines).
    """

    attack: str
    eps: float
    baseline: dict[str, Any]
    match: tuple[str, ...] | None = None
    min_clean_ratio: float = 0.9


@dataclass(frozen=True)
class Execution:
    """How the trials run; not part of the sweep's identity (the same sweep may run on a laptop or a cluster)."""

    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    retries: int = 2
    early_stopping: dict[str, Any] | None = None


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file."""

    path: Path
    trials: list[Trial]
    identity: dict[str, Any]  # the normalised content that defines the results (hashed into the manifest)
    hash: str
    execution: Execution
    objective: Objective | None
    experiment_dir: Path

    def manifest(self) -> dict[str, Any]:
        from brainalign import __version__

        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "hash": self.hash,
            "sweep": self.identity,
            "trials": [{"name": t.name, "seed": t.seed, "params": t.params, "run_dir": t.key} for t in self.trials],
            "package_version": __version__,
        }


def _describe_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def _format_value(value: Any, spec: str = "") -> str:
    """A value as it appears in a run name: compact, and only characters a run name allows."""
    if spec:
        try:
            text = format(value, spec)
        except (TypeError, ValueError):
            raise ConfigError(f"name_template: format {spec!r} does not apply to value {value!r}") from None
    elif value is None:
        text = "none"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value):
        text = "+".join(str(v["name"]) for v in value) or "none"
    elif isinstance(value, (list, dict)):
        text = hashlib.sha1(_canonical(value).encode()).hexdigest()[:8]
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "none"


def _short_names(fields: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each field that no other field ends with (``weight``, ``0.weight``)."""
    out = {}
    for f in fields:
        parts = f.split(".")
        for k in range(1, len(parts) + 1):
            suffix = ".".join(parts[-k:])
            if suffix.isdigit():
                continue
            if not any(g != f and (g == suffix or g.endswith("." + suffix)) for g in fields):
                break
        out[f] = suffix
    return out


def _trial_name(template: str | None, params: dict[str, Any], config: dict[str, Any], base_name: str) -> str:
    if template is None and SETTING in params:
        rest = {k: v for k, v in params.items() if k != SETTING}
        return "-".join(filter(None, [params[SETTING], _trial_name(None, rest, config, "")]))
    if template is None:
        varied = [f for f in params if f != "seed"]
        if not varied:
            return base_name
        short = _short_names(varied)
        return "-".join(f"{short[f]}={_format_value(params[f])}" for f in varied)

    def substitute(match: re.Match) -> str:
        key, spec = match.group(1).strip(), match.group(2) or ""
        if key in params:
            return _format_value(params[key], spec)
        try:
            return _format_value(get_field(config, key), spec)
        except KeyError:
            raise ConfigError(f"name_template: {{{key}}} is neither a swept field nor a config field") from None

    return _PLACEHOLDER.sub(substitute, template)


def _draw(rng: np.random.Generator, dotted: str, spec: dict[str, Any]) -> Any:
    kind = spec["distribution"]
    if kind == "choice":
        return copy.deepcopy(spec["values"][int(rng.integers(len(spec["values"])))])
    low, high = float(spec["low"]), float(spec["high"])
    x = rng.uniform(low, high) if kind == "uniform" else math.exp(rng.uniform(math.log(low), math.log(high)))
    # Six significant digits: the value in config.yaml, the run name and the draw agree, and stay readable.
    return float(f"{x:.6g}")


def _check_random_spec(dotted: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or "distribution" not in spec:
        raise ConfigError(f"random.{dotted}: must be a mapping with 'distribution' "
                          f"({', '.join(_DISTRIBUTIONS)}) and its parameters")
    kind = spec["distribution"]
    if kind not in _DISTRIBUTIONS:
        raise ConfigError(f"random.{dotted}.distribution: must be one of {', '.join(_DISTRIBUTIONS)}, got {kind!r}")
    needed = _DISTRIBUTIONS[kind]
    extra = set(spec) - {"distribution", *needed}
    missing = [k for k in needed if k not in spec]
    if missing or extra:
        raise ConfigError(f"random.{dotted}: a {kind} distribution takes {', '.join(needed)}"
                          + (f"; missing {', '.join(missing)}" if missing else f"; unknown {', '.join(sorted(extra))}"))
    if kind == "choice":
        if not isinstance(spec["values"], list) or not spec["values"]:
            raise ConfigError(f"random.{dotted}.values: must be a non-empty list")
    else:
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (TypeError, ValueError):
            raise ConfigError(f"random.{dotted}: low and high must be numbers, got {spec['low']!r}, "
                              f"{spec['high']!r}") from None
        if not low < high or (kind == "loguniform" and low <= 0):
            raise ConfigError(f"random.{dotted}: need {'0 < ' if kind == 'loguniform' else ''}low < high, "
                              f"got low={low}, high={high}")
    return dict(spec)


def _settings(raw: Any, base: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate ``settings``: a list of {name, set: {dotted.field: value}}; names unique and run-name safe."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise ConfigError("settings: must be a non-empty list of {name: ..., set: {dotted.field: value}}")
    out, seen = [], set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"name", "set"} or not isinstance(item.get("name"), str):
            raise ConfigError(f"settings.{i}: must be a mapping with name (text) and set (a mapping of "
                              f"dotted.field: value)")
        name, values = item["name"], item.get("set") or {}
        if not re.fullmatch(r"[A-Za-z0-9_.=-]+", name) or name in seen:
            raise ConfigError(f"settings.{i}.name: {name!r} must be unique and use only letters, digits and _.=-")
        if not isinstance(values, dict):
            raise ConfigError(f"settings.{i}.set: must be a mapping of dotted.field: value")
        data = copy.deepcopy(base)
        for dotted, value in values.items():
            if dotted in _RESERVED_FIELDS:
                raise ConfigError(f"settings.{i}.set: {dotted} cannot be set per setting")
            set_field(data, dotted, copy.deepcopy(value), source="field")
        try:
            parse_config(data)
        except ConfigError as exc:
            raise ConfigError(f"settings.{i} ({name}) is invalid: {exc}") from None
        seen.add(name)
        out.append({"name": name, "set": copy.deepcopy(values)})
    return out


def _validate_value(base: dict[str, Any], section: str, dotted: str, value: Any) -> None:
    data = copy.deepcopy(base)
    set_field(data, dotted, value, source="field")
    try:
        parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{section} {dotted}={_describe_value(value)} is invalid: {exc}") from None


def _execution(raw: Any) -> Execution:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError("sweep: must be a mapping of max_concurrent, cpus_per_trial, gpus_per_trial, retries, "
                          "early_stopping")
    unknown = set(raw) - _EXECUTION_KEYS
    if unknown:
        raise ConfigError(f"sweep.{sorted(unknown)[0]}: unknown field; valid: {', '.join(sorted(_EXECUTION_KEYS))}")
    ex = Execution(**raw)
    if ex.max_concurrent is not None and (not isinstance(ex.max_concurrent, int) or ex.max_concurrent < 1):
        raise ConfigError(f"sweep.max_concurrent: must be a whole number >= 1, got {ex.max_concurrent!r}")
    if not isinstance(ex.cpus_per_trial, (int, float)) or ex.cpus_per_trial <= 0:
        raise ConfigError(f"sweep.cpus_per_trial: must be > 0, got {ex.cpus_per_trial!r}")
    if not isinstance(ex.gpus_per_trial, (int, float)) or ex.gpus_per_trial < 0:
        raise ConfigError(f"sweep.gpus_per_trial: must be >= 0, got {ex.gpus_per_trial!r}")
    if not isinstance(ex.retries, int) or ex.retries < 0:
        raise ConfigError(f"sweep.retries: must be a whole number >= 0, got {ex.retries!r}")
    if ex.early_stopping is not None:
        es = ex.early_stopping
        allowed = {"metric", "mode", "grace_period", "reduction_factor"}
        if not isinstance(es, dict) or set(es) - allowed or "metric" not in es:
            raise ConfigError(f"sweep.early_stopping: a mapping with metric (a metrics.csv column, e.g. "
                              f"val_accuracy) and optional {', '.join(sorted(allowed - {'metric'}))}")
        if es.get("mode", "max") not in ("max", "min"):
            raise ConfigError(f"sweep.early_stopping.mode: must be max or min, got {es['mode']!r}")
        for key in ("grace_period", "reduction_factor"):
            if key in es and (not isinstance(es[key], (int, float)) or es[key] < (1 if key == "grace_period" else 2)):
                raise ConfigError(f"sweep.early_stopping.{key}: got {es[key]!r}")
    return ex


def _objective(raw: Any, swept: list[str]) -> Objective | None:
    if raw is None:
        return None
    allowed = {"rule", "attack", "eps", "baseline", "match", "min_clean_ratio"}
    if not isinstance(raw, dict) or set(raw) - allowed:
        raise ConfigError(f"objective: a mapping of {', '.join(sorted(allowed))}")
    if raw.get("rule", "pixel_selection") not in ("pixel_selection", "attias2024"):
        raise ConfigError(f"objective.rule: the only rule is attias2024 (alias pixel_selection), got {raw['rule']!r}")
    for key in ("attack", "eps", "baseline"):
        if key not in raw:
            raise ConfigError(f"objective.{key}: required")
    baseline = raw["baseline"]
    if not isinstance(baseline, dict) or not baseline:
        raise ConfigError("objective.baseline: a mapping of swept field -> the baseline's value, "
                          "e.g. {regularizers.0.weight: 0}")
    for f in baseline:
        if f not in swept:
            raise ConfigError(f"objective.baseline: {f!r} is not a swept field; swept: {', '.join(swept)}")
    match = raw.get("match")
    if match is not None:
        if not isinstance(match, list) or any(m not in swept or m in baseline for m in match):
            raise ConfigError(f"objective.match: a list of swept fields other than the baseline's; swept: "
                              f"{', '.join(swept)}")
        match = tuple(match)
    ratio = raw.get("min_clean_ratio", 0.9)
    if not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ConfigError(f"objective.min_clean_ratio: must be in (0, 1], got {ratio!r}")
    return Objective(attack=str(raw["attack"]), eps=float(raw["eps"]), baseline=dict(baseline), match=match,
                     min_clean_ratio=float(ratio))


def _eval_specs(config: RunConfig):
    """The attacks a run's evaluation runs (a suite drops colour attacks on grayscale data, as evaluate does)."""
    from brainalign.evaluate import suite_specs
    from brainalign.registry import DATASETS

    if config.eval.attacks:
        return config.eval.attacks
    channels = config.data.channels or getattr(DATASETS.info(config.data.name), "channels", None)
    return suite_specs(config.eval.suite, channels)


def load_sweep(path: str | Path, raw: dict[str, Any] | None = None) -> Sweep:
    """Read and validate a sweep file (or ``raw``, its content, with ``path`` naming it): every trial's
    config is parsed before anything runs.

    Raises:
        ConfigError: naming the field and value at fault (a grid value, a distribution, a name clash).
    """
    path = Path(path)
    raw = read_yaml(path) if raw is None else copy.deepcopy(raw)
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}; valid: {', '.join(sorted(_TOP_KEYS))}")
    base: dict[str, Any] = {}
    if "base_config" in raw:
        base_path = Path(raw["base_config"])
        base = read_yaml(base_path if base_path.is_absolute() else path.parent / base_path)
    if raw.get("base") is not None:
        if not isinstance(raw["base"], dict):
            raise ConfigError(f"{path}: base must be a run config mapping")
        base = _deep_merge(base, raw["base"])
    for key in ("experiment", "out_dir"):
        if key in raw:
            base[key] = raw[key]
    base.setdefault("experiment", path.stem)
    try:
        base_config = parse_config(base)
    except ConfigError as exc:
        raise ConfigError(f"{path}: base config: {exc}") from None
    base = base_config.to_dict()

    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: grid must be a mapping of dotted.field: [values]")
    random_raw = dict(raw.get("random") or {})
    num_samples = random_raw.pop("num_samples", 1)
    random_seed = random_raw.pop("seed", 0)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"random.num_samples: must be a whole number >= 1, got {num_samples!r}")
    if not isinstance(random_seed, int) or random_seed < 0:
        raise ConfigError(f"random.seed: must be a whole number >= 0, got {random_seed!r}")
    if num_samples > 1 and not random_raw:
        raise ConfigError("random.num_samples > 1 needs at least one random field (repeat runs with seeds instead)")
    for dotted in [*grid, *random_raw]:
        if dotted in _RESERVED_FIELDS:
            raise ConfigError(f"{dotted} cannot be swept: a sweep writes one experiment folder, and run names "
                              f"come from name_template")
    both = set(grid) & set(random_raw)
    if both:
        raise ConfigError(f"{sorted(both)[0]} is both in grid and in random")

    for dotted, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{dotted}: must be a non-empty list of values, got {values!r}")
        for value in values:
            _validate_value(base, "grid", dotted, value)
    random_specs = {d: _check_random_spec(d, s) for d, s in random_raw.items()}
    for dotted, spec in random_specs.items():
        probes = spec["values"] if spec["distribution"] == "choice" else [float(spec["low"]), float(spec["high"])]
        for value in probes:
            _validate_value(base, "random", dotted, value)

    settings = _settings(raw.get("settings"), base)
    swept = [*([SETTING] if settings else []), *grid, *random_specs]
    template = raw.get("name_template")
    if template is not None and not isinstance(template, str):
        raise ConfigError(f"name_template: must be a string such as 'w{{regularizers.0.weight}}', got {template!r}")

    rng = np.random.default_rng(random_seed)
    trials: list[Trial] = []
    by_folder: dict[str, dict[str, Any]] = {}
    for _ in range(num_samples):
        for setting, combo in itertools.product(settings or [None], itertools.product(*grid.values())):
            params = {SETTING: setting["name"]} if setting else {}
            params.update(zip(grid, combo, strict=True))
            params.update({d: _draw(rng, d, s) for d, s in random_specs.items()})
            data = copy.deepcopy(base)
            for dotted, value in [*(setting["set"].items() if setting else []), *params.items()]:
                if dotted != SETTING:
                    set_field(data, dotted, copy.deepcopy(value), source="field")
            name = _trial_name(template, params, data, base_config.name)
            data["name"] = name
            try:
                config = parse_config(data)
            except ConfigError as exc:
                values = ", ".join(f"{k}={_describe_value(v)}" for k, v in params.items())
                raise ConfigError(f"trial {name!r} ({values}) is invalid: {exc}") from None
            folder = config.run_dir.name
            if folder in by_folder:
                if by_folder[folder] == params:
                    continue  # a repeated grid value: the same run
                raise ConfigError(f"two trials get the run folder {folder}: {by_folder[folder]} and {params}; "
                                  f"add the differing field to name_template")
            by_folder[folder] = params
            trials.append(Trial(name=name, params=params, config=config))
    if not trials:
        raise ConfigError(f"{path}: the sweep has no trials")

    objective = _objective(raw.get("objective"), swept)
    if objective is not None:
        for t in trials:
            spec = next((s for s in _eval_specs(t.config) if s.key == objective.attack), None)
            if spec is None or objective.eps not in [float(e) for e in spec.eps]:
                raise ConfigError(f"objective: trial {t.key} does not evaluate {objective.attack} at eps "
                                  f"{objective.eps:g}; add it to eval.attacks")
        if not any(_is_baseline(t, objective) for t in trials):
            raise ConfigError(f"objective.baseline: no trial has {objective.baseline}")
        for t in trials:
            if t.config.eval.split != "val":
                raise ConfigError(f"objective: trial {t.key} evaluates the {t.config.eval.split} split; selection "
                                  f"reads the validation split only: set eval.split: val")

    identity = {
        "base": base,
        **({"settings": settings} if settings else {}),
        "grid": grid,
        "random": {"num_samples": num_samples, "seed": random_seed, "fields": random_specs},
        "name_template": template,
        "objective": None if objective is None else {
            "attack": objective.attack, "eps": objective.eps, "baseline": objective.baseline,
            "match": list(objective.match) if objective.match else None,
            "min_clean_ratio": objective.min_clean_ratio},
    }
    digest = hashlib.sha256(_canonical(identity).encode()).hexdigest()
    return Sweep(path=path, trials=trials, identity=identity, hash=digest, execution=_execution(raw.get("sweep")),
                 objective=objective, experiment_dir=base_config.run_dir.parent)


# --------------------------------------------------------------------------------------------------------
# Checks before anything runs


def check_folders(sweep: Sweep) -> None:
    """Refuse an experiment folder that holds another sweep, or run folders of another configuration."""
    manifest_path = sweep.experiment_dir / MANIFEST
    if manifest_path.exists():
        try:
            previous = read_json(manifest_path)
        except BrainAlignError as exc:
            raise ConfigError(f"{manifest_path}: unreadable sweep manifest ({exc}); move it away first") from None
        if previous.get("hash") != sweep.hash:
            old = previous.get("sweep", {})
            diff = sorted(k for k in set(old) | set(sweep.identity) if old.get(k) != sweep.identity.get(k))
            raise ConfigError(
                f"{sweep.experiment_dir} holds the results of another sweep (differs in: {', '.join(diff) or '?'}); "
                f"never overwriting them: choose another experiment name or out_dir")
    for trial in sweep.trials:
        saved = trial.run_dir / results.CONFIG
        if saved.exists():
            try:
                previous_config = parse_config(read_yaml(saved)).to_dict()
            except ConfigError as exc:
                raise ConfigError(f"{saved}: not a readable run config ({exc})") from None
            if previous_config != trial.config.to_dict():
                diff = sorted(k for k, v in trial.config.to_dict().items() if previous_config.get(k) != v)
                raise ConfigError(f"{trial.run_dir} holds a run of another configuration (differs in: "
                                  f"{', '.join(diff)}); choose another experiment name or out_dir")


def is_finished(config: RunConfig) -> bool:
    """Whether a run folder holds this run trained and evaluated with every configured attack."""
    run_dir = config.run_dir
    if not (run_dir / results.WEIGHTS).exists() or not (run_dir / results.RESULT).exists():
        return False
    try:
        robustness = results.read_result(run_dir).get("robustness", {})
    except BrainAlignError:
        return False
    for spec in _eval_specs(config):
        entry = robustness.get(spec.key)
        # The folder's config.yaml equals this config (check_folders), so only the attacks can be missing.
        if entry is None or entry.get("eps") != [float(e) for e in spec.eps]:
            return False
    return True


def check_address(address: str, timeout: float = 5.0) -> None:
    """A quick TCP check that a Ray cluster answers at ``host:port`` (or ``ray://host:port``)."""
    if address == "auto":
        return  # Ray finds the local cluster itself, and says so when there is none
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--address {address!r}: expected host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({reason}); start one with "
                          f"`ray start --head`, or leave out --address to run on this machine") from None


def _import_ray():
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise ConfigError("sweeps need Ray Tune: pip install 'brainalign[sweep]'") from None
    return ray


# --------------------------------------------------------------------------------------------------------
# The trial (runs in a Ray worker)


def _final_metrics(run_dir: Path, objective: dict[str, Any] | None) -> dict[str, Any]:
    result = results.read_result(run_dir)
    out: dict[str, Any] = {"clean_accuracy": result.get("clean_accuracy"), "run_dir": str(run_dir)}
    if objective is not None:
        out["robust_accuracy"] = robust_accuracy(result, objective["attack"], objective["eps"])
    return out


def _trial(config: dict[str, Any], train_fn: Callable[..., Path] | None = None, poll_s: float = 0.5) -> None:
    """Ray Tune function trainable: one ordinary run, its metrics.csv rows reported as they appear.

    Training runs in a thread so that per-epoch rows reach Tune (for early stopping) while it trains.
    Errors of the user's input (``BrainAlignError``) are reported, not raised: retrying them cannot help.
    A crash of the worker process is Tune's to retry; the retry resumes from the run folder's checkpoint.
    """
    from ray import tune

    spec = config["trial"]
    try:
        os.chdir(spec["cwd"])  # relative out_dir and data roots mean the same folders as on the driver
    except OSError:
        raise RuntimeError(f"the sweep's folder {spec['cwd']} does not exist on {socket.gethostname()}; "
                           f"a multi-node sweep needs a shared file system mounted at the same path") from None
    run_config = parse_config(spec["config"])
    if run_config.train.threads is None and spec.get("threads"):
        import torch

        torch.set_num_threads(max(1, int(spec["threads"])))
    if train_fn is None:
        from brainalign.train import train as train_fn
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["run_dir"] = train_fn(run_config, progress=False)
        except BaseException as exc:  # handed to the trainable's thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"trial-{run_config.name}", daemon=True)
    worker.start()
    metrics_path = run_config.run_dir / results.METRICS
    reported = 0
    while worker.is_alive():
        worker.join(poll_s)
        rows = results.read_metrics(metrics_path) if worker.is_alive() else []
        # The last row is held back and reported with the final metrics, so that iterations == epochs.
        for row in rows[reported : len(rows) - 1]:
            tune.report({**row, "run_complete": False})
        reported = max(reported, len(rows) - 1)
    error = outcome.get("error")
    if isinstance(error, BrainAlignError):
        tune.report({"run_complete": True, "error": f"{type(error).__name__}: {error}"})
        return
    if error is not None:
        raise error
    rows = results.read_metrics(metrics_path)
    for row in rows[reported : len(rows) - 1]:
        tune.report({**row, "run_complete": False})
    last = rows[-1] if rows else {}
    tune.report({**last, **_final_metrics(Path(outcome["run_dir"]), spec.get("objective")), "run_complete": True})


# --------------------------------------------------------------------------------------------------------
# Running a sweep


@dataclass
class TrialOutcome:
    """What became of one trial: finished (trained now or before), skipped (already finished), stopped
    early, or failed (with the error)."""

    name: str
    seed: int
    params: dict[str, Any]
    run_dir: Path
    status: str
    error: str | None = None


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`."""

    experiment_dir: Path
    manifest: Path
    trials: list[TrialOutcome]
    selection: list[dict[str, Any]] | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[TrialOutcome]:
        return [t for t in self.trials if t.status == "failed"]

    @property
    def complete(self) -> bool:
        return all(t.status in ("finished", "skipped") for t in self.trials)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_dir": str(self.experiment_dir),
            "complete": self.complete,
            "seconds": self.seconds,
            "trials": [{"name": t.name, "seed": t.seed, "params": t.params, "run_dir": t.run_dir.name,
                        "status": t.status, "error": t.error} for t in self.trials],
            "selection": self.selection,
        }


def trial_line(done: int, total: int, name: str, status: str, *, clean: float | None = None,
               headline: float | None = None, seconds: float | None = None, error: str | None = None) -> str:
    """The one console line of a finished trial: count, status, name, rounded accuracies (percent), time.

    ``clean`` and ``headline`` are fractions (as in result.json), shown as percentages to one decimal.
    """
    from brainalign.headline import HEADLINE_NAME

    parts = [f"[{done}/{total}]", f"{status:8s}", name]
    if clean is not None and math.isfinite(clean):
        parts.append(f"clean {100 * clean:.1f}%")
    if headline is not None and math.isfinite(headline):
        parts.append(f"{HEADLINE_NAME} {100 * headline:.1f}%")
    if seconds is not None:
        parts.append(f"{seconds:.0f} s")
    if error:
        parts.append(f"({error})")
    return "  ".join(parts)


def _run_numbers(run_dir: Path) -> dict[str, float | None]:
    """Clean and headline robust accuracy of a finished run folder (``brainalign.headline``), for its line."""
    from brainalign.analysis.runs import Run
    from brainalign.headline import headline_accuracy

    try:
        result = results.read_result(run_dir)
    except (BrainAlignError, OSError):
        return {}
    return {"clean": result.get("clean_accuracy"), "headline": headline_accuracy(Run(run_dir, result))}


def _trial_reporter(todo: list[Trial], echo: Callable[[str], None]):
    """A Tune callback that calls ``echo`` with one :func:`trial_line` per finished (or failed) trial."""
    from ray.tune import Callback

    by_key = {t.key: t for t in todo}

    def say(line: str) -> None:
        # To the caller's stdout: a quiet sweep redirects stdout while Tune runs (``_quiet_tune``). The stream
        # is looked up through the module at call time, never captured: Tune pickles its callbacks.
        import contextlib as cl
        import sys as system

        from brainalign import sweep as module

        with cl.redirect_stdout(module._CALLER_STDOUT[-1] if module._CALLER_STDOUT else system.stdout):
            echo(line)

    class _Lines(Callback):
        def __init__(self) -> None:
            self.done = 0
            self.start: dict[str, float] = {}

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            self.start.setdefault(trial.config["trial"]["key"], time.perf_counter())

        def _line(self, trial, status: str, error: str | None = None) -> None:
            key = trial.config["trial"]["key"]
            self.done += 1
            started = self.start.get(key)
            seconds = None if started is None else time.perf_counter() - started
            last = getattr(trial, "last_result", None) or {}
            error = error or last.get("error")
            numbers = {} if error else _run_numbers(by_key[key].run_dir)
            if status == "finished" and not error and not last.get("run_complete", True):
                status = "stopped"
            say(trial_line(self.done, len(todo), by_key[key].name + f"__seed{by_key[key].seed}",
                            "failed" if error else status, seconds=seconds, error=error, **numbers))

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._line(trial, "finished")

        def on_trial_recover(self, iteration, trials, trial, **info) -> None:
            t = by_key[trial.config["trial"]["key"]]
            attempt = int(getattr(trial, "num_failures", 1) or 1) + 1
            say(f"[retry]  {t.name}__seed{t.seed}  its worker raised or died; attempt {attempt} resumes from "
                 f"the run folder's checkpoint")

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._line(trial, "failed", f"the worker raised; see {RESULT}")

    return _Lines()


def _connect(ray, address: str | None, progress: bool) -> bool:
    """Join ``address`` or start a local Ray; returns whether this call started Ray (and must stop it).

    Without ``progress`` Ray is quiet: workers' output stays on the workers (``log_to_driver=False``) and
    Ray's own log lines below warnings are dropped (``logging_level``); Tune runs at ``verbose=0``.
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {} if progress else {"logging_level": "warning", "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **({"log_to_driver": True} | quiet))
        else:
            ray.init(include_dashboard=False, **({"log_to_driver": True} | quiet))
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "on this machine"
        raise ConfigError(f"cannot start or join a Ray cluster {where}: {str(exc).splitlines()[0]}") from None
    return True


_CALLER_STDOUT: list[Any] = []  # the stdout that a quiet sweep's lines go to, while Tune's is redirected


@contextlib.contextmanager
def _quiet_tune():
    """Tune without its stdout (configuration box, tables) and without a traceback per failed attempt; the
    trials' outcomes still come back (errors in sweep_result.json and the summary lines)."""
    previous = os.environ.get("TUNE_PRINT_ALL_TRIAL_ERRORS")
    os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] = "0"
    _CALLER_STDOUT.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        _CALLER_STDOUT.pop()
        if previous is None:
            os.environ.pop("TUNE_PRINT_ALL_TRIAL_ERRORS", None)
        else:
            os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] = previous


def _tune_trials(sweep: Sweep, todo: list[Trial], progress: bool, train_fn,
                 on_trial: Callable[[str], None] | None = None) -> dict[str, tuple[str, str | None]]:
    """Run ``todo`` on Ray Tune; returns {trial key: (status, error)}. ``on_trial`` gets one line per
    finished trial (:func:`trial_line`)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    ex = sweep.execution
    cwd = os.getcwd()
    objective = None if sweep.objective is None else {"attack": sweep.objective.attack, "eps": sweep.objective.eps}
    specs = [{"key": t.key, "config": t.config.to_dict(), "cwd": cwd, "threads": ex.cpus_per_trial,
              "objective": objective} for t in todo]
    trainable = _trial if train_fn is None else tune.with_parameters(_trial, train_fn=train_fn)
    resources = {"cpu": ex.cpus_per_trial} | ({"gpu": ex.gpus_per_trial} if ex.gpus_per_trial else {})
    scheduler = None
    if ex.early_stopping:
        es = ex.early_stopping
        scheduler = ASHAScheduler(time_attr="training_iteration", metric=es["metric"], mode=es.get("mode", "max"),
                                  max_t=max(t.config.train.epochs for t in todo),
                                  grace_period=int(es.get("grace_period", 1)),
                                  reduction_factor=float(es.get("reduction_factor", 4)))
    storage = tempfile.mkdtemp(prefix="brainalign-tune-")
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={"trial": tune.grid_search(specs)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=ex.max_concurrent, scheduler=scheduler,
                # A stopped trial's training thread must not live on in a reused worker.
                reuse_actors=scheduler is None,
                trial_name_creator=lambda t: t.config["trial"]["key"],
                trial_dirname_creator=lambda t: t.config["trial"]["key"]),
            run_config=tune.RunConfig(
                name=sweep.experiment_dir.name, storage_path=storage, verbose=1 if progress else 0,
                failure_config=tune.FailureConfig(max_failures=ex.retries),
                callbacks=[_trial_reporter(todo, on_trial)] if on_trial is not None else None),
        )
        # Tune prints its configuration box whatever the verbosity, and a traceback for every failed attempt
        # (retried ones included: TUNE_PRINT_ALL_TRIAL_ERRORS); progress=False means quiet.
        with contextlib.nullcontext() if progress else _quiet_tune():
            grid = tuner.fit()
        outcome: dict[str, tuple[str, str | None]] = {}
        for res in grid:
            key = res.config["trial"]["key"]
            metrics = res.metrics or {}
            if res.error is not None:
                outcome[key] = ("failed", f"{type(res.error).__name__}: {str(res.error).strip().splitlines()[-1]}")
            elif metrics.get("error"):
                outcome[key] = ("failed", metrics["error"])
            elif metrics.get("run_complete"):  # (Tune sets its own "done" on stopped trials too)
                outcome[key] = ("finished", None)
            else:
                outcome[key] = ("stopped", None)
        return outcome
    finally:
        import shutil

        shutil.rmtree(storage, ignore_errors=True)


def run_sweep(path: str | Path, address: str | None = None, progress: bool = False, *,
              train_fn: Callable[..., Path] | None = None, raw: dict[str, Any] | None = None,
              on_trial: Callable[[str], None] | None = None) -> SweepResult:
    """Run (or finish) the sweep of a sweep file on Ray Tune; returns every trial's outcome.

    Args:
        path: the sweep YAML.
        address: an existing Ray cluster (``host:port``, ``ray://host:port`` or ``auto``); None starts a local
            Ray on this machine (or uses the one already started in this process).
        progress: show Ray's and Tune's own output (progress table, worker output, log lines); off by
            default, so that a sweep prints only what ``on_trial`` prints.
        on_trial: called with one line per finished trial (:func:`trial_line`: count, status, name, clean
            and headline robust accuracy in percent to one decimal, seconds); ``brainalign sweep`` passes
            ``print``. Trials already finished before the call are not announced.
        train_fn: what a trial runs, ``train_fn(config, progress=False) -> run_dir`` (default
            ``brainalign.train.train``); it must be picklable by value for the workers.
        raw: the sweep's content, when it was built in code (``brainalign.tune``); ``path`` then names it.

    Raises:
        ConfigError: before any trial starts, for an invalid sweep file or grid value, a folder holding
            another sweep's or run's results, a missing Ray installation or an unreachable cluster.
    """
    start = time.perf_counter()
    sweep = load_sweep(path, raw)
    check_folders(sweep)
    if address:
        check_address(address)  # even when nothing is left to run: a wrong address is a mistake worth hearing
    todo = [t for t in sweep.trials if not is_finished(t.config)]
    status: dict[str, tuple[str, str | None]] = {t.key: ("skipped", None) for t in sweep.trials if t not in todo}
    manifest_path = sweep.experiment_dir / MANIFEST
    if todo:
        ray = _import_ray()
        started = _connect(ray, address, progress)
        try:
            if not manifest_path.exists():
                write_json(manifest_path, sweep.manifest())
            status.update(_tune_trials(sweep, todo, progress, train_fn, on_trial))
        finally:
            if started:
                ray.shutdown()
    elif not manifest_path.exists():
        write_json(manifest_path, sweep.manifest())
    outcomes = []
    for t in sweep.trials:
        state, error = status.get(t.key, ("failed", "the trial did not run"))
        if state in ("finished", "skipped") and not is_finished(t.config):
            state, error = "failed", error or "the run folder is incomplete after the trial"
        outcomes.append(TrialOutcome(t.name, t.seed, t.params, t.run_dir, state, error))
    result = SweepResult(sweep.experiment_dir, manifest_path, outcomes, seconds=time.perf_counter() - start)
    if sweep.objective is not None:
        result.selection = selection_table(sweep)
    write_json(sweep.experiment_dir / RESULT, result.to_dict())
    return result


def sweep_summary_lines(result: SweepResult) -> list[str]:
    """What ``brainalign sweep`` prints after the trials: counts, each trial that did not finish (with its
    error), the selection table rounded, and the sweep folder."""
    counts = {s: sum(t.status == s for t in result.trials) for s in ("finished", "skipped", "stopped", "failed")}
    words = {"skipped": "skipped (finished before)"}
    lines = [f"{len(result.trials)} trials in {result.seconds:.0f} s: "
             + ", ".join(f"{n} {words.get(s, s)}" for s, n in counts.items() if n)]
    lines += [f"{t.status:8s} {t.run_dir}" + (f"  ({t.error})" if t.error else "")
              for t in result.trials if t.status in ("stopped", "failed")]

    def ratio(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for row in result.selection or []:
        setting = ", ".join(f"{k}={v}" for k, v in row["setting"].items())
        lines.append(f"accepted={row['accepted']!s:5s} {setting}  clean ratio {ratio(row.get('clean_ratio'))}, "
                     f"robust ratio {ratio(row.get('robust_ratio'))}, {row['n_seeds']} seeds")
    lines.append(f"sweep folder: {result.experiment_dir}")
    return lines


# --------------------------------------------------------------------------------------------------------
# The selection rule as the sweep's objective (read from run folders only)


def robust_accuracy(result: dict[str, Any], attack: str, eps: float) -> float | None:
    """Accuracy under ``attack`` (an AttackSpec key) at strength ``eps`` in a result.json, or None."""
    entry = result.get("robustness", {}).get(attack)
    if not entry:
        return None
    for e, acc in zip(entry["eps"], entry["accuracy"], strict=True):
        if math.isclose(float(e), eps, rel_tol=1e-9, abs_tol=1e-12):
            return acc
    return None


def _is_baseline(trial: Trial, objective: Objective) -> bool:
    return all(trial.params.get(f) == v for f, v in objective.baseline.items())


def selection_table(sweep: Sweep) -> list[dict[str, Any]]:
    """The selection rule (:func:`brainalign.tune.accepts`) for every non-baseline setting, from run folders.

    One row per setting (the swept values other than ``seed``): mean validation clean accuracy (the
    objective attack at strength 0) and robust accuracy (at ``eps``) over its finished seeds and over those
    of its matched baselines, the two ratios, and ``accepted``. Settings whose runs (or baselines) have not
    finished are listed with ``accepted: None``.
    """
    from brainalign.tune import accepts

    objective = sweep.objective
    if objective is None:
        raise ConfigError("the sweep has no objective")
    swept = list(sweep.trials[0].params)
    match = objective.match if objective.match is not None else tuple(f for f in swept
                                                                      if f not in objective.baseline)

    def accuracies(trial: Trial) -> tuple[float, float] | None:
        if not is_finished(trial.config):
            return None
        result = results.read_result(trial.run_dir)
        robust = robust_accuracy(result, objective.attack, objective.eps)
        clean = robust_accuracy(result, objective.attack, 0.0)  # the same validation images, unattacked
        if clean is None:
            clean = result.get("val_accuracy")
        return None if robust is None or clean is None else (float(clean), float(robust))

    baselines = [t for t in sweep.trials if _is_baseline(t, objective)]
    settings: dict[str, list[Trial]] = {}
    for t in sweep.trials:
        if not _is_baseline(t, objective):
            setting = {k: v for k, v in t.params.items() if k != "seed"}
            settings.setdefault(_canonical(setting), []).append(t)
    rows = []
    for key, trials in settings.items():
        regs, unregs, missing = [], [], []
        for t in trials:
            matched = [b for b in baselines if all(b.params.get(f) == t.params.get(f) for f in match)]
            if not matched:
                raise ConfigError(f"objective: trial {t.key} has no baseline trial with {objective.baseline} and the "
                                  f"same {', '.join(match)}; set objective.match")
            acc = accuracies(t)
            base_accs = [a for a in map(accuracies, matched) if a is not None]
            if acc is None or len(base_accs) < len(matched):
                missing.append(t.key)
                continue
            regs.append(acc)
            unregs.append(tuple(np.mean(base_accs, axis=0)))
        row: dict[str, Any] = {"setting": json.loads(key), "n_seeds": len(regs), "unfinished": missing,
                               "attack": objective.attack, "eps": objective.eps}
        if regs and not missing:
            clean_reg, robust_reg = (float(v) for v in np.mean(regs, axis=0))
            clean_unreg, robust_unreg = (float(v) for v in np.mean(unregs, axis=0))
            row.update({
                "clean_reg": clean_reg, "clean_unreg": clean_unreg, "robust_reg": robust_reg,
                "robust_unreg": robust_unreg,
                "clean_ratio": clean_reg / clean_unreg if clean_unreg > 0 else None,
                "robust_ratio": robust_reg / robust_unreg if robust_unreg > 0 else None,
                "accepted": accepts(clean_reg, clean_unreg, robust_reg, robust_unreg,
                                    min_clean_ratio=objective.min_clean_ratio),
            })
        else:
            row["accepted"] = None
        rows.append(row)
    return rows
