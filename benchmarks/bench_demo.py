"""Wall time of the embedded study against its budget: `--quick` within 60 s, the full demo within 8 minutes.

The demo runs at its tuned settings (src/brainalign/tuned), in a fresh temporary folder, with its default workers.
Wall time depends on how loaded the machine is, so the load average (1 minute) before and after is printed
beside it, and so is the host's speed on the demo's own kernel (``host_speed``: the demo model's forward and
input gradient at batch 240, one thread, channels_last, in ms an image, before and after): on a shared host
the load average stays low while other tenants slow the core (0.051 ms in one session, 0.058-0.083 in another).
The figure in README was measured this way.

    python -m benchmarks.bench_demo [--full] [--seeds N] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from benchmarks import seconds_per_call

BUDGET_S = {"quick": 60.0, "full": 480.0}


def host_speed(images: int = 240, repeats: int = 5, steps: int = 20) -> float:
    """ms an image for the demo model's forward and input gradient (the attacks' inner step), best of
    ``repeats``, on one thread."""
    import torch

    from brainalign.config import ModelConfig
    from brainalign.models import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model(ModelConfig(name="small_cnn", width=16), num_classes=10, in_channels=1, image_size=8)
        model = model.eval().to(memory_format=torch.channels_last)
        model.requires_grad_(False)
        x = torch.rand(images, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        x = x.contiguous(memory_format=torch.channels_last)

        def step() -> None:
            xx = x.clone().requires_grad_(True)
            torch.autograd.grad(model(xx).logsumexp(1).sum(), xx)

        step()
        return min(seconds_per_call(step, steps) for _ in range(repeats)) / images * 1e3
    finally:
        torch.set_num_threads(threads)


def measure(full: bool, seeds: int | None = None, workers: int | None = None) -> dict[str, float]:
    from brainalign.demo import run_demo

    load_before, speed_before = os.getloadavg()[0], host_speed()
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as out:
        start = time.perf_counter()
        run_demo(out, quick=not full, seeds=seeds, workers=workers, progress=False)
        wall = time.perf_counter() - start
    budget = BUDGET_S["full" if full else "quick"]
    return {"wall_s": wall, "budget_s": budget, "ratio": wall / budget, "load_before": load_before,
            "load_after": os.getloadavg()[0], "cpus": float(os.cpu_count() or 1),
            "host_ms_per_image_before": speed_before, "host_ms_per_image_after": host_speed()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the full demo (default: --quick)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    r = measure(args.full, args.seeds, args.workers)
    kind = "full" if args.full else "quick"
    print(f"demo ({kind}): {r['wall_s']:.1f} s wall, budget {r['budget_s']:.0f} s (ratio {r['ratio']:.2f}); "
          f"load average {r['load_before']:.1f} -> {r['load_after']:.1f} on {r['cpus']:.0f} CPUs; host speed "
          f"{r['host_ms_per_image_before']:.3f} -> {r['host_ms_per_image_after']:.3f} ms an image (host_speed)")


if __name__ == "__main__":
    main()
