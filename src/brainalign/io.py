"""Atomic file writes and safetensors checkpoints: a killed process never leaves a half-written file."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from brainalign.errors import BrainAlignError

# atomic_path's temporary for ``name``: ``.<name>.<random>.tmp`` beside it (tempfile.mkstemp's random part:
# 8 characters of a-z, 0-9 and _).
TMP_SUFFIX = ".tmp"
_TMP_RANDOM = r"[a-z0-9_]{8}"


def _tmp_prefix(name: str) -> str:
    return f".{name}."


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path.name), suffix=TMP_SUFFIX)
    except OSError as exc:
        raise BrainAlignError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def leftover_tmp(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """The temporaries of :func:`atomic_path` for the files ``names`` in ``folder`` that are still there.

    A process killed inside ``atomic_path`` (SIGKILL, power loss: no ``finally`` runs) leaves its temporary,
    ``.<name>.<random>.tmp``, beside an intact target (the old file, or none). Only files of exactly that
    name form are returned (not below ``folder``, no links). Whether one is a leftover or a write under way
    only the folder's writer can tell: remove them while holding the folder's lock (``run_folder.locked``).
    """
    folder = Path(folder)
    pattern = re.compile("|".join(re.escape(_tmp_prefix(n)) + _TMP_RANDOM + re.escape(TMP_SUFFIX) for n in names))
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(p for p in entries if pattern.fullmatch(p.name) and not p.is_symlink() and p.is_file())


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _plain(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays to plain JSON types; non-finite floats become None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _plain(value.tolist())
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(_plain(data), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BrainAlignError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise BrainAlignError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def write_yaml(path: str | os.PathLike, data: Any) -> None:
    write_text(path, yaml.safe_dump(_plain(data), sort_keys=False))


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Save tensors as safetensors, atomically. Metadata values must be strings."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata=metadata)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise BrainAlignError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise BrainAlignError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
