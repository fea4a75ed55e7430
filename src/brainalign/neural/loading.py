"""``load_recording(name, path=None, **options)``: look a loader up in ``NEURAL_LOADERS`` and call it.

Each loader is a plain function registered with a ``LoaderInfo`` that says what it reads. Real data
loaders take ``path`` (a file or folder in the data set's published layout); simulated ones take none.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainalign.errors import ConfigError
from brainalign.neural.recording import NeuralRecording
from brainalign.registry import NEURAL_LOADERS


@dataclass(frozen=True)
class LoaderInfo:
    """Facts about a neural loader, read by the CLI, docs and tests.

    Attributes:
        modality: "eeg", "fmri", "ephys" or "calcium".
        simulated: True for the offline simulations (no path needed).
        formats: the on-disk formats it reads, e.g. ("npy-pickle dict", "jpg folders").
        licence: the data set's licence, in a few words.
        url: where to get the data (or the paper, for simulations).
        detect: file names whose presence under a path identifies this format (for auto-detection).
    """

    modality: str
    simulated: bool
    formats: tuple[str, ...]
    licence: str
    url: str
    detect: tuple[str, ...] = ()


def _call(name: str, fn, kwargs: dict) -> NeuralRecording:
    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = set(kwargs) - set(params)
        if unknown:
            valid = ", ".join(p for p in params if p != "path")
            raise ConfigError(f"neural loader {name!r} has no option {sorted(unknown)[0]!r}; valid: {valid}")
    return fn(**kwargs)


# Simulations are pure functions of their options (every random draw is seeded from ``seed``), so each process
# keeps its last few and hands out copies: a demo worker runs many runs on the same simulated recordings.
_SIMULATIONS: OrderedDict[str, NeuralRecording] = OrderedDict()
SIMULATIONS_KEPT = 6


_PLAIN = (type(None), bool, int, float, str)


def _option_key(name: str, options: dict) -> str | None:
    """A digest of a simulation's options: arrays (the stimulus images) by dtype, shape and bytes, plain values
    (numbers, strings, lists of them) by value; None (not kept) when an option is anything else, whose repr
    might not show its content."""
    h = hashlib.sha1(name.encode())
    for key in sorted(options):
        value = options[key]
        h.update(key.encode())
        if isinstance(value, np.ndarray) and value.dtype != object:
            h.update(f"{value.dtype}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
            continue
        value = value.tolist() if isinstance(value, np.ndarray) else value
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(v, _PLAIN) for v in items):
            return None
        h.update(repr(value).encode())
    return h.hexdigest()


def _simulated(name: str, fn, options: dict) -> NeuralRecording:
    key = _option_key(name, options)
    if key is None:
        return _call(name, fn, options)
    if key not in _SIMULATIONS:
        _SIMULATIONS[key] = _call(name, fn, options)
        while len(_SIMULATIONS) > SIMULATIONS_KEPT:
            _SIMULATIONS.popitem(last=False)
    _SIMULATIONS.move_to_end(key)
    return copy.deepcopy(_SIMULATIONS[key])  # callers may change their recording; the kept one stays as made


def load_recording(name: str, path: str | os.PathLike | None = None, **options) -> NeuralRecording:
    """Load a recording with the loader registered as ``name``.

    Simulations are kept per process (the last ``SIMULATIONS_KEPT``, keyed by their options) and returned as
    copies, so loading the same one again costs a copy, not a simulation.

    Args:
        name: a ``NEURAL_LOADERS`` entry: a data set ("things_eeg2", "nsd", ...) or a simulation
            ("sim_v1", "sim_eeg", "sim_fmri", "sim_it").
        path: the file or folder to read (data sets only).
        **options: passed to the loader (see its docstring).
    """
    entry = NEURAL_LOADERS.entry(name)
    simulated = bool(getattr(entry.info, "simulated", False))
    if simulated:
        if path is not None:
            raise ConfigError(f"neural loader {name!r} is a simulation and takes no path")
        return _simulated(name, entry.obj, options)
    if path is None:
        raise ConfigError(f"neural loader {name!r} needs path= (the downloaded data set)")
    return _call(name, entry.obj, {"path": Path(path), **options})


def simulate(kind: str, **options) -> NeuralRecording:
    """A simulated recording: ``kind`` is "v1", "eeg", "fmri" or "it" (or the loader name "sim_eeg", ...)."""
    name = kind if kind.startswith("sim_") else f"sim_{kind}"
    info = NEURAL_LOADERS.info(name) if name in NEURAL_LOADERS else None
    if info is None or not info.simulated:
        sims = [e.name.removeprefix("sim_") for e in NEURAL_LOADERS.entries() if getattr(e.info, "simulated", False)]
        raise ConfigError(f"unknown simulation {kind!r}; valid: {', '.join(sims)}")
    return load_recording(name, **options)


def detect_loader(path: str | os.PathLike) -> str:
    """The loader whose ``LoaderInfo.detect`` names a file found at ``path`` (a file or up to 3 levels below)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file or folder")
    candidates = []
    for entry in NEURAL_LOADERS.entries():
        info = entry.info
        if info is None or info.simulated:
            continue
        for pattern in info.detect:
            if path.is_file() and path.match(pattern):
                candidates.append(entry.name)
                break
            if path.is_dir() and any(next(path.glob("/".join(["*"] * d + [pattern])), None) is not None
                                     for d in range(4)):
                candidates.append(entry.name)
                break
    if len(candidates) != 1:
        names = ", ".join(e.name for e in NEURAL_LOADERS.entries() if e.info and not e.info.simulated)
        found = f"it matches {', '.join(candidates)}" if candidates else "no known layout found"
        raise ConfigError(f"{path}: cannot tell which loader to use ({found}); pass --loader, one of {names}")
    return candidates[0]
