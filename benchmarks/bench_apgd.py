"""Our APGD (early exit) against pyautoattack's at the headline setting: time ratio and identical outcomes.

The headline attack (brainalign.headline: APGD-CE, then APGD-T on the top 3 targets, 100 steps, Linf 0.1 on
the digits) and its two stages alone, on the demo's small CNN trained for a few seconds, same seed for both.
Targets: ratio t(ours) / t(pyautoattack) <= 1.0 (interleaved pairs, alternating which goes first, median of
the per-pair ratios, one process); the same robust images (the outcomes are pyautoattack's, see
tests/attacks/test_apgd_reference.py). The gain is the share of iterations pyautoattack spends on images
already broken, so it is largest for APGD-CE and for weak models, smallest for APGD-T on the survivors.

    python -m benchmarks.bench_apgd [--repeats 5] [--images 240] [--eps 0.1] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.bench_pgd import trained_digits_model
from brainalign.attacks._pyautoattack import run_autoattack
from brainalign.attacks.apgd import apgd
from brainalign.headline import HEADLINE_STEPS, HEADLINE_TARGETS

STAGES = {"APGD-CE": (("ce",), ["apgd-ce"]), "APGD-T": (("t",), ["apgd-t"]),
          "APGD-CE + APGD-T (headline)": (("ce", "t"), ["apgd-ce", "apgd-t"])}


def compare(model, x, y, eps: float, losses, attacks, repeats: int) -> dict[str, float]:
    def ours():
        return apgd(model, x, y, eps, norm="Linf", losses=losses, steps=HEADLINE_STEPS, targets=HEADLINE_TARGETS,
                    generator=torch.Generator().manual_seed(0))

    def theirs():
        return run_autoattack(model, x, y, eps, norm="Linf", version="custom", attacks=attacks, steps=HEADLINE_STEPS,
                              restarts=1, targets=HEADLINE_TARGETS, generator=torch.Generator().manual_seed(0))

    with torch.no_grad():
        robust = {name: int((model(fn()).argmax(1) == y).sum()) for name, fn in (("ours", ours), ("ref", theirs))}
    t_ours, t_ref = [], []
    for i in range(repeats):
        order = ((ours, t_ours), (theirs, t_ref)) if i % 2 == 0 else ((theirs, t_ref), (ours, t_ours))
        for fn, times in order:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return {"ours_s": statistics.median(t_ours), "pyautoattack_s": statistics.median(t_ref),
            "ratio": statistics.median(o / r for o, r in zip(t_ours, t_ref, strict=True)),
            "robust_ours": robust["ours"], "robust_pyautoattack": robust["ref"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, x, y = trained_digits_model(args.train_steps, width=16)
    x, y = x[: args.images], y[: args.images]
    print(f"small_cnn (width 16) on digits 8x8, {len(y)} test images, Linf eps {args.eps:g}, {HEADLINE_STEPS} steps, "
          f"top-{HEADLINE_TARGETS} targets; torch threads {torch.get_num_threads()}; median of {args.repeats} pairs")
    out = {}
    for name, (losses, attacks) in STAGES.items():
        r = out[name] = compare(model, x, y, args.eps, losses, attacks, args.repeats)
        print(f"  {name:<28s} ours {r['ours_s']:6.2f} s   pyautoattack {r['pyautoattack_s']:6.2f} s   "
              f"ratio ours/pyautoattack {r['ratio']:.2f} (target <= 1.0)   robust {r['robust_ours']} vs "
              f"{r['robust_pyautoattack']} (target: equal)", flush=True)
    return out


if __name__ == "__main__":
    main()
