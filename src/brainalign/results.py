"""The run folder: what a run leaves behind, and how to read it back.

``runs/<experiment>/<name>__seed<k>/``: ``config.yaml`` (as used), ``metrics.csv`` (a row per epoch),
``checkpoint.safetensors`` (while training), ``model.safetensors`` (final weights), ``result.json``
(floats; schema_version, package version, git commit, seed, accuracies, robustness) and
``flags.safetensors`` (per-example correct/incorrect for every attack and strength, for paired tests).
"""

from __future__ import annotations

import csv
import io
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from brainalign import __version__
from brainalign.errors import BrainAlignError, DataError
from brainalign.io import _plain, read_json, write_json, write_text

SCHEMA_VERSION = 1
# Explicit migrations of older result files: MIGRATIONS[v] turns a version-v dict into a version-(v + 1) one.
# Version 1 is the first; a change of the schema adds its step here and bumps SCHEMA_VERSION.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
CONFIG = "config.yaml"
METRICS = "metrics.csv"
CHECKPOINT = "checkpoint.safetensors"
WEIGHTS = "model.safetensors"
RESULT = "result.json"
FLAGS = "flags.safetensors"


def git_commit() -> str | None:
    """The commit of the brainalign source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "package_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


class AttackResult(BaseModel):
    """One attack's entry of ``result.json["robustness"]`` (further fields are kept as they are)."""

    model_config = ConfigDict(extra="allow")

    attack: str | None = None
    eps: list[float]
    accuracy: list[float | None]  # null: not finite (JSON has no NaN)
    n_examples: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_accuracy_per_strength(self) -> AttackResult:
        if len(self.accuracy) != len(self.eps):
            raise ValueError(f"{len(self.accuracy)} accuracies for {len(self.eps)} strengths")
        return self


class ResultFile(BaseModel):
    """What every reader of result.json relies on; validated on every read (further fields are kept)."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = Field(..., ge=1)
    experiment: str
    name: str
    seed: int = Field(..., ge=0)
    clean_accuracy: float | None = Field(..., ge=0, le=1)
    robustness: dict[str, AttackResult] = Field(default_factory=dict)


def _migrate(data: dict[str, Any], path: Path) -> dict[str, Any]:
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DataError(f"{path}: schema_version must be a whole number >= 1, got {version!r}")
    if version > SCHEMA_VERSION:
        raise DataError(f"{path}: schema_version {version} is newer than this brainalign ({__version__}) reads "
                        f"(schema_version {SCHEMA_VERSION}); upgrade brainalign to read it")
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise DataError(f"{path}: schema_version {version} cannot be migrated to {SCHEMA_VERSION}")
        data = MIGRATIONS[version](dict(data))
        version += 1
        data["schema_version"] = version
    return data


def validate_result(data: Any, path: str | Path = RESULT) -> dict[str, Any]:
    """A result.json's content, migrated to SCHEMA_VERSION and checked against ``ResultFile``; one DataError."""
    path = Path(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: a result must be a JSON object, got {type(data).__name__}")
    data = _migrate(data, path)
    try:
        ResultFile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise DataError(f"{path}: {field}: {msg}" + (f" (got {first['input']!r})" if first["type"] != "missing"
                                                     else "")) from None
    return data


def read_result(run_dir: str | Path) -> dict[str, Any]:
    """The run's result.json, validated (and migrated, if older); newer versions are refused."""
    run_dir = Path(run_dir)
    if not (run_dir / RESULT).exists():
        raise BrainAlignError(f"{run_dir}: no {RESULT}; is this a finished run folder?")
    return validate_result(read_json(run_dir / RESULT), run_dir / RESULT)


def write_result(run_dir: str | Path, result: dict[str, Any]) -> None:
    """Write result.json atomically; what would not read back (a bad field) is refused before writing."""
    validate_result(_plain(result), Path(run_dir) / RESULT)  # as it will read back: NaN becomes null
    write_json(Path(run_dir) / RESULT, result)


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG).is_file()


def find_runs(root: str | Path, finished: bool = True) -> list[Path]:
    """Run folders below ``root`` (those with a result.json when ``finished``), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise BrainAlignError(f"{root}: not a folder")
    marker = RESULT if finished else CONFIG
    return sorted(p.parent for p in root.rglob(marker) if (p.parent / CONFIG).is_file())
