"""The life of a run folder, in one module: every write to it, in order, and every check of its state.

States, each a set of files written atomically (``brainalign.io``) and in this order::

    new           nothing yet
    claimed       config.yaml                      (claim: the config as the run uses it)
    checkpointed  + checkpoint.safetensors         (write_checkpoint, after every epoch or when due; metrics.csv)
    trained       + model.safetensors, result.json (finish: weights, then result.json, then the checkpoint goes)
    evaluated     result.json with self-checks     (evaluate appends attacks, flags.safetensors before result.json)

The checkpoint holds the tensors of ``brainalign.train.Trainee.state_tensors`` (``model.*``, ``reg<i>.*``,
``optim.<i>.*`` and, under fp16, the loss scaler's ``scaler.scale`` and ``scaler.growth_tracker``) and, as
metadata, the last finished epoch and the metrics rows: everything a resumed run needs to continue as the
uninterrupted one.

A run is trained only when result.json exists (it is written after the weights), so a kill at any point
leaves a state from which the next ``train`` resumes or redoes the last step to the same files: killed
between the weights and result.json, the final checkpoint is still there, training resumes at its last
epoch, runs no epoch and writes the same weights and result.json.

Every writer holds the folder's lock (``.lock``, a ``filelock.FileLock``) from its first write to its last;
a second process that wants to write the same folder is refused with one line rather than waiting.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock
import torch

from brainalign import results
from brainalign.config import RunConfig, parse_config, read_yaml
from brainalign.errors import BrainAlignError, ConfigError
from brainalign.io import leftover_tmp, load_checkpoint, save_checkpoint, write_yaml

LOCK = ".lock"
# The files written under the lock (here and by evaluate_run). Taking the lock removes the temporaries of these
# (brainalign.io.atomic_path) that a killed writer left; other files' temporaries (alignment.json, written by
# the study without the lock) may belong to a write under way and are left alone.
LOCKED_FILES = (results.CONFIG, results.CHECKPOINT, results.METRICS, results.WEIGHTS, results.RESULT, results.FLAGS)
NEW, CLAIMED, CHECKPOINTED, TRAINED, EVALUATED = "new", "claimed", "checkpointed", "trained", "evaluated"

_locks: dict[Path, filelock.FileLock] = {}
_locks_guard = threading.Lock()


def state(run_dir: str | Path) -> str:
    """Where the run folder is in its life (see the module docstring)."""
    run_dir = Path(run_dir)
    if not (run_dir / results.CONFIG).is_file():
        return NEW
    if (run_dir / results.RESULT).is_file() and (run_dir / results.WEIGHTS).is_file():
        return EVALUATED if "selfchecks" in results.read_result(run_dir) else TRAINED
    if (run_dir / results.CHECKPOINT).is_file():
        return CHECKPOINTED
    return CLAIMED


def is_trained(run_dir: str | Path) -> bool:
    return state(run_dir) in (TRAINED, EVALUATED)


@contextmanager
def locked(run_dir: str | Path) -> Iterator[Path]:
    """Hold the run folder's lock for a block of writes; re-entrant within one process.

    Raises ``BrainAlignError`` at once when another process holds it.
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrainAlignError(f"cannot write to {run_dir}: {exc.strerror or exc}") from None
    key = run_dir.resolve()
    with _locks_guard:
        lock = _locks.setdefault(key, filelock.FileLock(str(key / LOCK), timeout=0))
    try:
        lock.acquire()
    except filelock.Timeout:
        raise BrainAlignError(f"{run_dir} is being written by another brainalign process (lock {run_dir / LOCK}); "
                              f"wait until it finishes, then run this again") from None
    try:
        if lock.lock_counter == 1:  # first hold: nothing writes here now, so a temporary was left by a killed writer
            for tmp in leftover_tmp(run_dir, LOCKED_FILES):
                tmp.unlink(missing_ok=True)
        yield run_dir
    finally:
        lock.release()


def check_claim(config: RunConfig) -> None:
    """Refuse a folder that holds a run of another configuration (only ``eval`` may differ). Reads only."""
    saved = config.run_dir / results.CONFIG
    if not saved.exists():
        return
    previous = parse_config(read_yaml(saved)).to_dict()
    current = config.to_dict()
    diff = sorted(k for k in current if k != "eval" and previous.get(k) != current[k])
    if diff:
        raise ConfigError(f"{config.run_dir} holds a run of another configuration (differs in: {', '.join(diff)}); "
                          f"choose another name, experiment or out_dir")


def claim(config: RunConfig) -> Path:
    """Create the run folder, or check that an existing one was written by this same configuration.

    Only the ``eval`` section may differ (it does not change what was trained): it is updated, and the
    evaluation then adds the new attacks without re-running finished ones. Call inside ``locked``.
    """
    run_dir = config.run_dir
    check_claim(config)
    saved = run_dir / results.CONFIG
    current = config.to_dict()
    if not saved.exists() or parse_config(read_yaml(saved)).to_dict()["eval"] != current["eval"]:
        write_yaml(saved, current)
    if (run_dir / results.RESULT).exists():  # killed after result.json, before the checkpoint went
        (run_dir / results.CHECKPOINT).unlink(missing_ok=True)
    return run_dir


def write_checkpoint(run_dir: Path, tensors: dict[str, torch.Tensor] | None, epoch: int,
                     rows: list[dict[str, float]]) -> None:
    """The state after ``epoch`` (carrying the metrics rows, the source of truth), then metrics.csv; with
    ``tensors`` None (no checkpoint due, ``train.checkpoint_every_s``) metrics.csv alone, which a resume from an
    earlier checkpoint rewrites from that checkpoint's rows."""
    if tensors is not None:
        save_checkpoint(run_dir / results.CHECKPOINT, tensors, {"epoch": str(epoch), "metrics": json.dumps(rows)})
    results.write_metrics(run_dir / results.METRICS, rows)


def read_checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], int, list[dict[str, float]]] | None:
    """(tensors, last finished epoch, metrics rows) of the run's checkpoint, or None.

    The checkpoint's rows are the source of truth: metrics.csv is rewritten from them, in case a kill came
    between the checkpoint and metrics.csv (after the last epoch no later epoch would rewrite it).
    """
    if not (run_dir / results.CHECKPOINT).exists():
        return None
    tensors, meta = load_checkpoint(run_dir / results.CHECKPOINT)
    rows = json.loads(meta["metrics"])
    if results.read_metrics(run_dir / results.METRICS) != rows:
        results.write_metrics(run_dir / results.METRICS, rows)
    return tensors, int(meta["epoch"]), rows


def finish(run_dir: Path, weights: dict[str, torch.Tensor], model_name: str, result: dict[str, Any]) -> None:
    """Trained: the weights, then result.json (which marks the run trained), then drop the checkpoint."""
    save_checkpoint(run_dir / results.WEIGHTS, weights, {"format": "brainalign-model", "model": model_name})
    results.write_result(run_dir, result)
    (run_dir / results.CHECKPOINT).unlink(missing_ok=True)


def load_trained_model(run_dir: str | Path):
    """The config, data splits and trained model (eval mode, CPU) of a finished run folder.

    Returns ``(RunConfig, DataSplits, BrainModel)``. Weights of another architecture are one ``DataError``.
    """
    from brainalign.data import load_data
    from brainalign.errors import DataError
    from brainalign.models import build_model

    run_dir = Path(run_dir)
    config = parse_config(read_yaml(run_dir / results.CONFIG))
    if not (run_dir / results.WEIGHTS).exists():
        raise BrainAlignError(f"{run_dir}: no {results.WEIGHTS}; is this a finished run folder?")
    data = load_data(config.data)
    model = build_model(config.model, data.num_classes, data.in_channels, data.image_size, data.mean, data.std)
    tensors, _ = load_checkpoint(run_dir / results.WEIGHTS)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(expected[k].shape) != tuple(tensors[k].shape))
    if missing or unexpected or wrong:
        what = (f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}" if unexpected
                else f"{wrong[0]!r} has shape {tuple(tensors[wrong[0]].shape)}, "
                     f"expected {tuple(expected[wrong[0]].shape)}")
        raise DataError(f"{run_dir / results.WEIGHTS}: weights of another architecture than the config's "
                        f"model {config.model.name} (width {config.model.width}): {what} "
                        f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} of another shape)")
    model.load_state_dict(tensors)
    return config, data, model.eval()
