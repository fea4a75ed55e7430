"""Brain-inspired regularizers, one file each, registered in ``REGULARIZERS``.

``build_regularizers(config, model, data)`` turns the run's ``regularizers:`` list into set-up
(regularizer, weight) pairs, and refuses bad settings before training starts.
"""

from __future__ import annotations

import inspect

import torch

from brainalign.errors import ConfigError, DataError
from brainalign.registry import MODELS, REGULARIZERS
from brainalign.regularizers import (  # noqa: F401  (registration)
    cka,
    dcca,
    decorrelation,
    neural_prediction,
    neural_similarity,
    pixel_continuous,
    pixel_similarity,
    spectral,
)
from brainalign.regularizers.base import RegularizationSet, Regularizer, RegularizerInfo, apply_control
from brainalign.regularizers.diagnostics import (
    identity_target,
    rows_target,
    target_diagnostics,
    thresholded,
)
from brainalign.regularizers.pixel_similarity import selection_rule
from brainalign.regularizers.targets import (
    PIXEL_OPTIONS,
    TARGET_OPTIONS,
    RecordingCache,
    TargetOptions,
    pixel_set,
    recording_set,
    split_params,
)


def _construct(name: str, cls, params: dict, reg_batch_size: int) -> Regularizer:
    sig = inspect.signature(cls.__init__)
    accepted = [p for p in sig.parameters if p not in ("self", "kwargs")]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        for base in cls.__mro__[1:]:  # parameters forwarded to a parent's __init__
            if "__init__" in base.__dict__:
                accepted += [p for p in inspect.signature(base.__init__).parameters if p not in ("self", "kwargs")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"regularizer {name}: unknown parameter {unknown[0]!r}; valid: "
                          f"{', '.join(sorted(set(accepted)))}" + ("" if name in _NO_TARGETS else
                                                                   f" (target options: {', '.join(TARGET_OPTIONS)})"))
    kwargs = dict(params)
    # A method whose paper fixes its neural batch (cka: 128) keeps it; the others take the run's.
    if "batch_size" in sig.parameters and sig.parameters["batch_size"].default is None and "batch_size" not in kwargs:
        kwargs["batch_size"] = reg_batch_size
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"regularizer {name}: bad parameters ({exc})") from None


_NO_TARGETS = ("spectral", "decorrelation")


def _diagnostics(reg: Regularizer, info: RegularizerInfo, reg_set: RegularizationSet | None,
                 seed: int) -> dict | None:
    if reg_set is None:
        return None
    pixels = reg_set.images
    if info.target == "images":
        target = identity_target(len(reg_set))
    elif getattr(reg, "threshold", None) is not None:  # a thresholded target (pixel_similarity)
        target = thresholded(rows_target(reg_set.targets), reg.threshold)
    else:
        target = rows_target(reg_set.targets)
    return target_diagnostics(target, pixels, seed=seed, neural=info.target == "recording")


def _default_window(spec, info: RegularizerInfo, opts: TargetOptions, cache: RecordingCache, data) -> str:
    """Apply the paper's time window (a target default) unless ``params`` set one; where the recording has no
    time bin inside it, keep the recording's own stated window. Returns a note for ``target_info``."""
    default = dict(info.target_defaults).get("time_window")
    if default is None or "time_window" in spec.params:
        return ""
    rec = cache.load(spec.recording, data)[0]
    times = rec.time_ms
    if ((times >= default[0]) & (times < default[1])).any():
        return f"{default[0]:g}-{default[1]:g} ms ({info.reference.split(' (')[0]})"
    opts.time_window = None
    return (f"the recording's own window ({float(times[0]):g}-{float(times[-1]):g} ms bins): none in "
            f"{default[0]:g}-{default[1]:g} ms")


def build_regularizers(config, model, data) -> list[tuple[Regularizer, float]]:
    """(regularizer, weight) pairs for a run, set up and validated before training starts.

    For each ``RegularizerConfig``: build the registered class with its ``params`` (minus the target options
    of ``regularizers.targets``), fill in default layers, build its regularization set (a recording's
    responses, the training images' pixels, or images only), apply the control (``shuffled``/``random``,
    seeded from the run seed), call ``setup`` and attach ``target_info`` (source, control, simulated flag,
    diagnostics) for result.json. Raises ConfigError/DataError on anything that would fail later.
    """
    from brainalign.seeding import derive_seed

    specs = list(config.regularizers)
    if not specs:
        return []
    penultimate = MODELS.info(config.model.name).penultimate
    regs: list[tuple[Regularizer, RegularizerInfo, TargetOptions | None]] = []
    for k, spec in enumerate(specs):
        entry = REGULARIZERS.entry(spec.name)
        info: RegularizerInfo = entry.info
        where = f"regularizers.{k} ({spec.name})"
        opts, params = split_params(spec.params)
        opts = {**dict(info.target_defaults), **opts}  # the paper's target options unless params set them
        allowed = TARGET_OPTIONS if info.target == "recording" else PIXEL_OPTIONS if info.target != "none" else ()
        if set(opts) - set(allowed):
            raise ConfigError(f"{where}: option {sorted(set(opts) - set(allowed))[0]!r} applies only to "
                              f"regularizers with neural targets")
        if spec.control != "none" and not info.data_driven:
            raise ConfigError(f"{where}: control {spec.control!r} needs data-driven targets, and {spec.name} has "
                              f"none; use it without a control")
        if info.target == "recording" and spec.recording is None:
            raise ConfigError(f"{where}: needs a recording (recording: {{name: sim_v1}} or a data set)")
        if info.target in ("none",) and spec.recording is not None:
            raise ConfigError(f"{where}: {spec.name} takes no recording")
        try:
            target_opts = TargetOptions(**opts) if info.target != "none" else None
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        reg = _construct(spec.name, entry.obj, params, config.train.reg_batch_size)
        try:
            reg.resolve_layers(model, penultimate)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        regs.append((reg, info, target_opts))
    changers = [k for k, (reg, _, _) in enumerate(regs) if reg.transforms_ce]
    if len(changers) > 1 or (changers and changers[0] != 0):
        raise ConfigError(f"regularizers.{changers[-1]} ({specs[changers[-1]].name}): a term that reweights the "
                          f"classification loss (learned uncertainty or convex weighting) must be the first "
                          f"regularizer, and only one may do so")

    cache = RecordingCache()
    probe = data.train.images[:2]
    out: list[tuple[Regularizer, float]] = []
    for k, (spec, (reg, info, target_opts)) in enumerate(zip(specs, regs, strict=True)):
        where = f"regularizers.{k} ({spec.name})"
        built = None
        try:
            if info.target == "recording":
                window_note = _default_window(spec, info, target_opts, cache, data)
                built = recording_set(spec.recording, data, target_opts, cache)
                if window_note:
                    built.info["time_window"] = window_note
            elif info.target in ("pixels", "images"):
                built = pixel_set(data, spec.recording, cache, with_targets=info.target == "pixels",
                                  max_stimuli=target_opts.max_stimuli)
            reg_set = built.reg_set if built is not None else None
            if spec.control != "none":
                gen = torch.Generator().manual_seed(derive_seed(config.seed, "control", k, spec.name))
                reg_set.targets = apply_control(reg_set.targets, spec.control, gen)
                reg_set.control = spec.control
                reg_set.description += f", {spec.control} control"
            if target_opts is not None and target_opts.stimuli == "classification":
                reg.stream = "classification"  # single stream: the term reads the classification batch
            reg.setup(model, reg_set, probe=probe)
            reg.check_run(config, data)
        except (ConfigError, DataError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        target_info = {"name": spec.name, "layers": list(reg.layers), "stream": reg.stream,
                       "control": spec.control, "simulated": bool(reg_set.simulated) if reg_set else False,
                       "description": reg_set.description if reg_set else "no targets"}
        if built is not None:
            target_info.update(built.info)
            target_info["diagnostics"] = _diagnostics(reg, info, reg_set,
                                                      derive_seed(config.seed, "diagnostics", k))
        else:
            target_info["source"] = "none"
        target_info.update(reg.run_facts())
        reg.target_info = target_info
        out.append((reg, spec.weight))
    return out


__all__ = ["RegularizationSet", "Regularizer", "RegularizerInfo", "apply_control", "build_regularizers",
           "selection_rule"]
