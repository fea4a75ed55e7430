"""Typed, validated run configuration, read from YAML and overridable from the command line.

A ``RunConfig`` nests one config per component. Validation happens here, once: a bad value
raises ``ConfigError`` with one line naming the field and what is allowed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from brainalign.errors import ConfigError


class _Strict(BaseModel):
    # allow_inf_nan=False: NaN and inf are refused in every float field (a NaN lr trains on NaN; a NaN eps
    # is saved as null and then refuses every rerun).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _finite_tree(value: Any, where: str = "") -> Any:
    """Free-form parameters (``params``, ``options``) with NaN or inf anywhere are refused, like typed fields."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'value'} must be a finite number, got {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite_tree(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _finite_tree(v, f"{where}.{i}" if where else str(i))
    return value


DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, before anything is written (configs saved on a GPU machine
    stay readable everywhere, so availability is checked when a run starts, not when a config is parsed)."""
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = ", ".join(["cpu", *([f"cuda, cuda:0..{count - 1}"] if count else [])])
            raise ConfigError(f"train.device: {device} is not available on this machine; available: {have}")
    elif device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("train.device: mps is not available on this machine; available: cpu")


class DataConfig(_Strict):
    """Which images to train and test on."""

    name: str = Field("digits", description="registered data set (brainalign list datasets)")
    root: str | None = Field(None, description="folder with the distribution files (not needed for digits)")
    image_size: int | None = Field(None, ge=4, le=512, description="resize to this side; None keeps native pixels")
    channels: Literal[1, 3] | None = Field(None, description="convert to 1 (grayscale) or 3 channels")
    val_fraction: float = Field(0.2, gt=0, lt=0.5, description="share of images held out for validation")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="share of images held out for testing")
    max_train: int | None = Field(None, ge=10, description="cap on training images (quick runs)")
    split_seed: int = Field(0, ge=0, description="seed of the fixed split; the same for every run so that "
                            "test images, and hence paired tests, match across runs")
    download: bool = Field(False, description="download missing files (needs torchvision and a network)")
    cache: bool = Field(True, description="image_folder and things_eeg2: decode and resize the files once into a "
                        "uint8 cache (brainalign.data.cache) that later loads read; false decodes every time "
                        "and writes nothing (the same pixels)")


class ModelConfig(_Strict):
    """Architecture and its options."""

    name: str = Field("small_cnn", description="registered model (brainalign list models)")
    width: int = Field(32, ge=4, le=1024, description="channels of the first stage")
    input_size: int | None = Field(None, ge=8, le=1024, description="upsample inside the model to this side")


class RecordingConfig(_Strict):
    """A neural recording: a registered loader, its path (real data) and options."""

    name: str = Field(..., description="registered neural loader (brainalign list neural)")
    path: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    _finite_options = field_validator("options")(classmethod(lambda cls, v: _finite_tree(v)))


class RegularizerConfig(_Strict):
    """One regularizer term: weight * R(features, targets)."""

    name: str = Field(..., description="registered regularizer (brainalign list regularizers)")
    weight: float = Field(1.0, ge=0, description="multiplier of the term in the total loss")
    control: Literal["none", "shuffled", "random"] = Field(
        "none", description="shuffled: targets permuted across stimuli; random: random targets, matched statistics")
    params: dict[str, Any] = Field(default_factory=dict, description="the regularizer's own parameters")
    recording: RecordingConfig | None = Field(None, description="neural data for data-driven regularizers")

    _finite_params = field_validator("params")(classmethod(lambda cls, v: _finite_tree(v)))


class DefenceConfig(_Strict):
    """A training-time defence (adversarial training, TRADES, noise augmentation)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict, description="checked (finite numbers included) by the "
                                   "defence's own validation in build_defence, before the run folder is touched")


class TrainConfig(_Strict):
    """Optimisation."""

    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, description="examples per micro-batch (one forward and backward pass); an "
                            "optimiser step sees batch_size x accumulate_steps")
    accumulate_steps: int = Field(1, ge=1, description="gradient accumulation: micro-batches per "
                                  "optimiser step, each one's total loss weighted by its share of the step's "
                                  "examples (1/k for equal micro-batches)")
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    step_every: int = Field(10, ge=1, description="epochs per step of the 'step' schedule")
    step_gamma: float = Field(0.1, gt=0, le=1)
    reg_batch_size: int = Field(32, ge=2, description="stimuli per regularization batch")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:N or mps (checked to exist when a run "
                        "starts)")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch default)")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast precision of training steps: bf16 (CPU or CUDA) or fp16 (CUDA, loss-scaled)")
    channels_last: bool = Field(False, description="NHWC memory format for the model and batches")
    compile: bool = Field(False, description="torch.compile each named stage of the model")
    checkpoint_every_s: float = Field(0.0, ge=0, description="write the checkpoint after an epoch only when at "
                                      "least this many seconds have passed since training (re)started or last "
                                      "wrote one (0: after every epoch); a killed run resumes from the last one "
                                      "written")

    @model_validator(mode="after")
    def _fp16_on_cuda(self) -> TrainConfig:
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise ConfigError(f"train.precision: fp16 needs a CUDA device (train.device is {self.device!r}); "
                              "use bf16 on CPU")
        return self

    @field_validator("device")
    @classmethod
    def _device_form(cls, v: str) -> str:
        if not DEVICE_PATTERN.match(v):
            raise ValueError(f"unknown device {v!r}; valid: cpu, cuda, cuda:N (N = 0, 1, ...), mps")
        return v


class AttackSpec(_Strict):
    """One attack over a strength grid (eps in native [0, 1] pixel units, severities, ...)."""

    name: str
    eps: list[float] = Field(..., min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("eps")
    @classmethod
    def _non_negative(cls, v: list[float]) -> list[float]:
        if any(e < 0 for e in v):
            raise ValueError(f"strengths must be >= 0, got {v}")
        return v

    _finite_params = field_validator("params")(classmethod(lambda cls, v: _finite_tree(v)))

    @property
    def key(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}[{extra}]" if extra else self.name


class EvalConfig(_Strict):
    """What the evaluation after training runs."""

    suite: str = Field("quick", description="named suite (brainalign.evaluate.SUITES: quick, standard, full) "
                       "used when attacks is empty")
    split: Literal["test", "val"] = Field(
        "test", description="images attacked: test (reported results) or val (tuning trials never see test)")
    attacks: list[AttackSpec] = Field(default_factory=list)
    n_examples: int | None = Field(None, ge=1, description="test images attacked (None: all)")

    @field_validator("suite")
    @classmethod
    def _known_suite(cls, v: str) -> str:
        from brainalign.evaluate import SUITES  # the one list of suites

        if v not in SUITES:
            raise ValueError(f"unknown suite {v!r}; valid: {', '.join(SUITES)}")
        return v
    selfcheck_examples: int = Field(200, ge=10, description="test images the self-checks re-attack")
    headline_check: int = Field(0, ge=0, description="FAB-T and Square on this many images that survive the "
                                "headline attacks (brainalign.robustness.headline_check); 0: off")
    selfchecks: bool = Field(True, description="run the self-checks (false for tuning trials, whose numbers "
                             "select settings and are never reported as results, and for the demo's seeds "
                             "other than the one checked per condition; summaries name the checked seeds)")
    batch_size: int = Field(256, ge=1)


class RunConfig(_Strict):
    """Everything one run needs; saved, as used, in the run folder."""

    experiment: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field("baseline", pattern=r"^[A-Za-z0-9_.=-]+$")
    seed: int = Field(0, ge=0)
    out_dir: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    regularizers: list[RegularizerConfig] = Field(default_factory=list)
    defences: list[DefenceConfig] = Field(default_factory=list)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _names_exist(self) -> RunConfig:
        from brainalign.registry import DATASETS, DEFENCES, MODELS, REGULARIZERS

        checks = [("data.name", DATASETS, self.data.name), ("model.name", MODELS, self.model.name)]
        checks += [(f"regularizers.{i}.name", REGULARIZERS, r.name) for i, r in enumerate(self.regularizers)]
        checks += [(f"defences.{i}.name", DEFENCES, d.name) for i, d in enumerate(self.defences)]
        for field, registry, name in checks:
            try:
                registry.entry(name)
            except ConfigError as exc:
                raise ConfigError(f"{field}: {exc}") from None
        from brainalign.attacks.base import check_attack

        for i, spec in enumerate(self.eval.attacks):  # names, strength ranges and params, before any training
            try:
                check_attack(spec.name, spec.eps, spec.params)
            except ConfigError as exc:
                raise ConfigError(f"eval.attacks.{i}: {exc}") from None
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.experiment / f"{self.name}__seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):  # our own validators already say field and allowed values
        return str(cause)
    field = ".".join(str(p) for p in first["loc"]) or "config"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "value_error":  # our validators name the allowed values and the value themselves
        return f"{field}: {msg}"
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    elif first["type"] == "literal_error":
        msg = "must be " + first["ctx"]["expected"]
    return f"{field}: {msg} (got {first.get('input')!r})" if first["type"] != "missing" else f"{field}: required"


def parse_config(data: dict[str, Any]) -> RunConfig:
    """Validate a plain dict into a RunConfig; one clear ConfigError otherwise."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None


def _schema_kind(parts: list[str]) -> str | None:
    """'list', 'section' or None (a scalar or free-form value) for the RunConfig field at ``parts``."""
    import types
    import typing

    model: Any = RunConfig
    kind: str | None = "section"
    for part in parts:
        if model is None:
            return None  # inside a free-form mapping (params, options)
        if isinstance(model, tuple):  # the item type of a list: any index
            model = model[0]
            kind = "section" if isinstance(model, type) and issubclass(model, BaseModel) else None
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        annotation = field.annotation
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
        origin = typing.get_origin(annotation)
        if origin is list:
            (item,) = typing.get_args(annotation)
            model, kind = (item,), "list"
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model, kind = annotation, "section"
        else:
            model, kind = None, ("section" if origin is dict else None)
    return kind


def _list_index(label: str, where: str, part: str, items: list, overriding: bool = False) -> int:
    """The list index ``part`` names in ``items`` (negative counts from the end); a ConfigError naming ``label``.

    ``overriding``: the path is a command-line override, which can add an entry (``list+=entry``); the error says so.
    """
    try:
        index = int(part)
    except ValueError:
        raise ConfigError(f"{label}: {where} is a list; {part!r} is not an index (use 0..{len(items) - 1})" if items
                          else f"{label}: {where} is an empty list"
                          + (f"; add an entry with {where}+=..." if overriding else "")) from None
    if not -len(items) <= index < len(items):
        have = f"has {len(items)} entr{'y' if len(items) == 1 else 'ies'}"
        hints = ([f"use 0..{len(items) - 1}"] if items else []) + ([f"add one with {where}+=..."] if overriding else [])
        raise ConfigError(f"{label}: index {index} is out of range ({where} {have}"
                          + (f"; {', or '.join(hints)}" if hints else "") + ")")
    return index


def set_field(data: dict[str, Any], dotted: str, value: Any, *, append: bool = False,
              source: str = "override") -> None:
    """Set (or, with ``append``, append to) the entry at a dotted path of a config dict, in place.

    The one walk of dotted config paths: command-line overrides (:func:`apply_overrides`), sweep grids and
    settings (``brainalign.sweep``) and tuning's matched copies (``brainalign.tune``) all set fields with it.
    Integer parts index lists (negative counts from the end; the item must exist); missing sections are
    created (as a list where the RunConfig schema has one there).

    Args:
        data: the config as a nested dict/list.
        dotted: ``section.field``, e.g. ``train.epochs`` or ``regularizers.0.params.layers``.
        value: what to set (or append).
        append: append ``value`` to the list at ``dotted`` (created when absent) instead of setting it.
        source: what the path is called in error messages (``override``, ``field``).

    Raises:
        ConfigError: an empty part, a missing list item, or a path through a value.
    """
    key = dotted
    label = f"{source} {key!r}"
    overriding = source == "override"
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"{label}: empty field name")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[:i + 1])
        if isinstance(node, list):
            node = node[_list_index(label, ".".join(parts[:i]), part, node, overriding)]
        else:
            if part not in node or node[part] is None:
                node[part] = [] if _schema_kind(parts[:i + 1]) == "list" else {}
            node = node[part]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"{label}: {where} is a value, not a section or a list")
    last, parent = parts[-1], ".".join(parts[:-1])
    if append:
        if isinstance(node, list):
            target = node[_list_index(label, parent, last, node, overriding)]
        else:
            if last not in node or node[last] is None:
                if _schema_kind(parts) not in ("list", None):
                    raise ConfigError(f"{source} {key + '+='!r}: {key} is not a list (+= appends to a list)")
                node[last] = []
            target = node[last]
        if not isinstance(target, list):
            raise ConfigError(f"{source} {key + '+='!r}: {key} is not a list (+= appends to a list; use = to replace)")
        target.append(value)
    elif isinstance(node, list):
        node[_list_index(label, parent, last, node, overriding)] = value
    else:
        node[last] = value


def get_field(data: Any, dotted: str) -> Any:
    """The entry at a dotted path of a config dict (list indices as in :func:`set_field`); KeyError if absent."""
    node = data
    for part in dotted.split("."):
        if isinstance(node, list):
            try:
                node = node[_list_index("field", "", part, node)]
            except ConfigError:
                raise KeyError(dotted) from None
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(dotted)
    return node


def parse_value(raw: str) -> Any:
    """A command-line value parsed as YAML (numbers, lists, booleans); text that is not YAML stays text."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply command-line overrides to a config dict, in order; values are parsed as YAML.

    - ``section.field=value`` sets a field: ``train.epochs=5``, ``data.channels=1``.
    - an integer part indexes a list (negative counts from the end): ``regularizers.0.weight=3``,
      ``regularizers.0.name=cka``, ``regularizers.-1.recording.path=null``, ``eval.attacks.0.eps=[0, 0.1]``.
    - ``field+=value`` appends one entry to a list (created when absent):
      ``regularizers+={name: cka, recording: {name: sim_it}}`` (a YAML flow mapping).
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value (or list+=entry)")
        key, raw = item.split("=", 1)
        key = key.strip()
        append = key.endswith("+")
        key = key[:-1].strip() if append else key
        if not key:
            raise ConfigError(f"override {item!r} must look like section.field=value (or list+=entry)")
        set_field(data, key, parse_value(raw), append=append)
    return data


def parse_options(items: list[str]) -> dict[str, Any]:
    """Flat ``key=value`` options (loader and simulation options), values parsed like overrides."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {item!r} must look like key=value, e.g. n_stimuli=500")
        out[key.strip()] = parse_value(raw)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({type(exc).__name__})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the defaults), apply overrides, validate."""
    data = read_yaml(path) if path is not None else {}
    return parse_config(apply_overrides(data, list(overrides or [])))
