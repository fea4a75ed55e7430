"""Wall time of the embedded study against its budget: `--quick` within 60 s, the full demo within 8 minutes.

The demo runs at its tuned settings (src/brainalign/tuned), in a fresh temporary folder, with its default workers.
Wall time depends on how loaded the machine is, so the load average (1 minute) before and after is printed
beside it; the figure in README was measured this way.

    python -m benchmarks.bench_demo [--full] [--seeds N] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

BUDGET_S = {"quick": 60.0, "full": 480.0}


def measure(full: bool, seeds: int | None = None, workers: int | None = None) -> dict[str, float]:
    from brainalign.demo import run_demo

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as out:
        start = time.perf_counter()
        run_demo(out, quick=not full, seeds=seeds, workers=workers, progress=False)
        wall = time.perf_counter() - start
    budget = BUDGET_S["full" if full else "quick"]
    return {"wall_s": wall, "budget_s": budget, "ratio": wall / budget, "load_before": load_before,
            "load_after": os.getloadavg()[0], "cpus": float(os.cpu_count() or 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the full demo (default: --quick)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    r = measure(args.full, args.seeds, args.workers)
    kind = "full" if args.full else "quick"
    print(f"demo ({kind}): {r['wall_s']:.1f} s wall, budget {r['budget_s']:.0f} s (ratio {r['ratio']:.2f}); "
          f"load average {r['load_before']:.1f} -> {r['load_after']:.1f} on {r['cpus']:.0f} CPUs")


if __name__ == "__main__":
    main()
