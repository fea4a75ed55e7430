"""Console feedback: one logger, progress that works in a terminal and in a log file, end-of-run summaries.

Everything brainalign says while it works goes through the ``brainalign`` logger (``logging``), to standard
error, so that standard output keeps the results. ``progress`` draws a tqdm bar when standard error is a
terminal; when it is a file or a pipe (Slurm, nohup, CI), where a bar would print nothing useful, it logs a
line when the phase starts, every ``every_s`` seconds while it runs and when it ends. The CLI's ``--quiet``
keeps warnings only; ``--verbose`` adds debug lines.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
LOGGER = logging.getLogger("brainalign")
_HANDLER_NAME = "brainalign-console"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (tests and notebooks swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler sets it in __init__; the property always reads sys.stderr
        pass


def configure(verbosity: int = 0) -> None:
    """Send the ``brainalign`` logger to standard error: -1 warnings only, 0 progress (info), 1 debug."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    LOGGER.setLevel(level)
    if not any(getattr(h, "name", None) == _HANDLER_NAME for h in LOGGER.handlers):
        handler = _StderrHandler()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        LOGGER.addHandler(handler)
        LOGGER.propagate = False


def _is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress(items: Iterable[T], *, desc: str, total: int | None = None, enabled: bool = True,
             every_s: float = 10.0, initial: int = 0, postfix=None) -> Iterator[T]:
    """Iterate over ``items`` showing where the phase is.

    Args:
        desc: what the phase is (e.g. "baseline seed 0: training").
        total: number of items (default ``len(items)`` where it has one).
        enabled: False shows nothing (library calls inside a worker, tests).
        every_s: seconds between log lines when standard error is not a terminal.
        initial: items already done before this call (a resumed run).
        postfix: a callable returning a short status string (e.g. the last loss), added to each line.
    """
    if total is None and hasattr(items, "__len__"):
        total = initial + len(items)  # type: ignore[arg-type]
    if not enabled or not LOGGER.isEnabledFor(logging.INFO):
        yield from items
        return
    if _is_terminal():
        from tqdm import tqdm

        bar = tqdm(items, desc=desc, total=total, initial=initial, file=sys.stderr, leave=False)
        for item in bar:
            yield item
            if postfix is not None:
                bar.set_postfix_str(postfix())
        return
    start = last = time.monotonic()
    done = initial
    of = f"/{total}" if total is not None else ""
    LOGGER.info("%s: started (%d%s)", desc, done, of)
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            status = f" {postfix()}" if postfix is not None else ""
            LOGGER.info("%s: %d%s after %.0f s%s", desc, done, of, now - start, status)
    status = f" {postfix()}" if postfix is not None else ""
    LOGGER.info("%s: done (%d%s) in %.1f s%s", desc, done, of, time.monotonic() - start, status)


def run_summary(run_dir: str | Path, seconds: float | None = None) -> str:
    """One screen on a finished run: clean and headline robust accuracy, PGD beside it, the self-check
    verdict, warnings (did not learn, dominating terms), time and the run folder."""
    from brainalign import results
    from brainalign.headline import run_headline

    run_dir = Path(run_dir)
    result = results.read_result(run_dir)
    head = run_headline(run_dir)

    def pct(value: Any) -> str:
        return "not run" if value is None else f"{float(value):.3f}"

    steps_note = (f"; this run: {', '.join(map(str, head['steps_run']))} steps"
                  if head["steps_run"] and head["steps_run"] != [head["steps"]] else "")
    lines = [f"run {result.get('name')} seed {result.get('seed')} ({result.get('data')}, {result.get('model')})",
             f"  clean accuracy     {pct(result.get('clean_accuracy'))}",
             f"  headline robust    {pct(head['robust_accuracy'])}   ({head['attack']}, {head['norm']} eps "
             f"{head['eps']:g}{steps_note})",
             f"  PGD robust         {pct(head['robust_accuracy_pgd'])}   (same eps)"]
    if "reliable" in result:
        verdict = "passed" if result["reliable"] else "UNRELIABLE: " + "; ".join(result["selfchecks"]["reasons"])
        lines.append(f"  self-checks        {verdict}")
    if result.get("did_not_learn"):
        lines.append("  warning            did not learn (clean accuracy not above chance)")
    for warning in result.get("gradient_warnings") or []:
        lines.append(f"  warning            {warning}")
    if seconds is not None:
        lines.append(f"  time               {seconds:.1f} s")
    lines.append(f"  run folder         {run_dir}")
    return "\n".join(lines)
