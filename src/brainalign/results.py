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
from pathlib import Path
from typing import Any

import torch

from brainalign import __version__
from brainalign.errors import BrainAlignError
from brainalign.io import read_json, write_json, write_text

SCHEMA_VERSION = 1
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


def read_result(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not (run_dir / RESULT).exists():
        raise BrainAlignError(f"{run_dir}: no {RESULT}; is this a finished run folder?")
    return read_json(run_dir / RESULT)


def write_result(run_dir: str | Path, result: dict[str, Any]) -> None:
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
