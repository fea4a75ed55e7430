"""Benchmarks: ratios against a reference measured in the same run (``python -m benchmarks``)."""

import time


def seconds_per_call(fn, calls: int) -> float:
    """Mean wall seconds of one ``fn()`` over ``calls`` back-to-back calls (one timed block)."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls
