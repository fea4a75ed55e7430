"""A writer killed inside an atomic write leaves its temporary; the run folder's next claim (its lock) removes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from brainalign import results, run_folder
from brainalign.config import parse_config, read_yaml
from brainalign.io import leftover_tmp

KILLED_WRITES = """
import contextlib, os, signal, sys
from brainalign.io import atomic_path
with contextlib.ExitStack() as stack:
    for path in sys.argv[1:]:
        stack.enter_context(atomic_path(path)).write_text("half a file")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_writes(*paths: Path) -> list[Path]:
    """Write ``paths`` atomically in one process, SIGKILLed mid-write; the temporaries it left, in that order."""
    run = subprocess.run([sys.executable, "-c", KILLED_WRITES, *map(str, paths)], capture_output=True, timeout=120)
    assert run.returncode == -9, run.stderr
    left = [next(p.parent.glob(f".{p.name}.*.tmp")) for p in paths]
    assert all(p.read_text() == "half a file" for p in left)
    return left


def test_a_killed_write_leaves_a_temporary_that_leftover_tmp_finds(tmp_path):
    (left,) = _killed_writes(tmp_path / "result.json")
    assert not (tmp_path / "result.json").exists()  # the target is untouched: absent, as before
    assert leftover_tmp(tmp_path, ["result.json"]) == [left]
    assert leftover_tmp(tmp_path, ["config.yaml"]) == []
    assert leftover_tmp(tmp_path / "missing", ["result.json"]) == []


def test_claiming_a_run_folder_removes_its_leftovers_and_nothing_else(untrained_run):
    run_dir = untrained_run()
    result = (run_dir / results.RESULT).read_text()
    *stale, alignment = _killed_writes(run_dir / results.RESULT, run_dir / results.CHECKPOINT,
                                       run_dir / "alignment.json")
    # Not the run folder's locked files, or not atomic_path's name form: left alone.
    others = [alignment, run_dir / "notes.tmp", run_dir / ".result.json.tmp", run_dir / ".result.json.ab.tmp",
              run_dir / "sub" / stale[0].name]
    for path in others[1:]:
        path.parent.mkdir(exist_ok=True)
        path.write_text("mine")
    config = parse_config(read_yaml(run_dir / results.CONFIG))
    with run_folder.locked(run_dir):
        run_folder.claim(config)
        # A temporary made while the lock is held is a write under way: re-entering the lock keeps it.
        under_way = run_dir / stale[0].name
        under_way.write_text("writing")
        with run_folder.locked(run_dir):
            assert under_way.exists()
        under_way.unlink()
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in others)
    assert (run_dir / results.RESULT).read_text() == result
    assert run_folder.state(run_dir) == run_folder.TRAINED
