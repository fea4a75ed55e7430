"""Our PGD against torchattacks' PGD (speed) and AutoAttack's APGD-CE (strength), on a trained digits model.

Targets (issue 5): speed ratio t(torchattacks) / t(ours) >= 1.0 at the same steps, constant step size and
batch, timed side by side (interleaved runs, alternating which goes first, median of the per-pair ratios, one
process, so machine noise hits both); robust
accuracy of our PGD (default step schedule) within 1 point of, or below, APGD-CE at the same budget
(iterations x restarts), averaged over random starts.

    python -m benchmarks.bench_pgd [--repeats 15] [--batch 256] [--steps 20] [--seeds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchattacks

from brainalign.attacks.pgd import pgd_linf
from brainalign.config import parse_config
from brainalign.registry import ATTACKS
from brainalign.robustness.metrics import accuracy
from brainalign.train import build_trainee, train_step


def trained_digits_model(train_steps: int, width: int):
    """The project's small CNN on the 8x8 digits, trained for a few seconds; and the test split."""
    config = parse_config({"model": {"name": "small_cnn", "width": width},
                           "train": {"batch_size": 128, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0}})
    trainee = build_trainee(config)
    x, y = trainee.data.train.images, trainee.data.train.labels
    gen = torch.Generator().manual_seed(0)
    trainee.model.train()
    for _ in range(train_steps):
        idx = torch.randint(0, len(y), (128,), generator=gen)
        train_step(trainee, x[idx], y[idx], gen)
    model = trainee.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, trainee.data.test.images, trainee.data.test.labels


def speed(model, x, y, eps: float, steps: int, repeats: int) -> dict[str, float]:
    alpha = 2.5 * eps / steps
    ref = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    gen = torch.Generator().manual_seed(0)

    def ours():
        pgd_linf(model, x, y, eps, steps=steps, step_size=alpha, generator=gen)

    def theirs():
        ref(x, y)

    ours(), theirs()  # warm-up
    t_ours, t_ref = [], []
    for i in range(repeats):
        # Alternate which runs first, so that drifts in machine load cancel; the ratio is per pair.
        order = ((ours, t_ours), (theirs, t_ref)) if i % 2 == 0 else ((theirs, t_ref), (ours, t_ours))
        for fn, times in order:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return {"ours_s": statistics.median(t_ours), "torchattacks_s": statistics.median(t_ref),
            "ratio": statistics.median(r / o for r, o in zip(t_ref, t_ours, strict=True))}


def strength(model, x, y, eps: float, steps: int, restarts: int, seeds: int) -> dict[str, float]:
    """Mean robust accuracy over ``seeds`` random starts, PGD with its default step schedule."""
    ours, apgd = [], []
    for seed in range(seeds):
        x_pgd = pgd_linf(model, x, y, eps, steps=steps, restarts=restarts,
                         generator=torch.Generator().manual_seed(seed))
        x_apgd = ATTACKS.get("apgd_ce_linf")(model, x, y, eps, steps=steps, restarts=restarts,
                                             generator=torch.Generator().manual_seed(seed))
        ours.append(accuracy(model, x_pgd, y))
        apgd.append(accuracy(model, x_apgd, y))
    pgd_acc, apgd_acc = statistics.mean(ours), statistics.mean(apgd)
    return {"pgd": pgd_acc, "apgd_ce": apgd_acc, "points_above_apgd": 100 * (pgd_acc - apgd_acc)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=3, help="random starts averaged in the strength comparison")
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, x_test, y_test = trained_digits_model(args.train_steps, args.width)
    print(f"small_cnn (width {args.width}) on digits 8x8: clean accuracy {accuracy(model, x_test, y_test):.3f} "
          f"on {len(y_test)} test images; torch threads {torch.get_num_threads()}")
    out = {"speed": {}, "strength": {}}
    print(f"\nspeed, {args.steps} steps, constant step 2.5 eps / steps, random start "
          f"(median of {args.repeats} interleaved pairs)")
    for batch, eps in ((args.batch, 0.05), (args.batch, 0.1), (32, 0.1)):
        s = speed(model, x_test[:batch], y_test[:batch], eps, args.steps, args.repeats)
        out["speed"][(batch, eps)] = s
        print(f"  batch {batch:<4d} Linf eps {eps:<5g} ours {1e3 * s['ours_s']:7.1f} ms   "
              f"torchattacks {1e3 * s['torchattacks_s']:7.1f} ms   ratio torchattacks/ours {s['ratio']:.3f}  "
              "(target >= 1.0)", flush=True)
    print(f"\nstrength, all {len(y_test)} test images, {args.steps} iterations x {args.restarts} restart(s), "
          f"mean of {args.seeds} seeds; PGD with its default (cosine) step schedule")
    for eps in (0.05, 0.08, 0.1, 0.12, 0.15):
        s = strength(model, x_test, y_test, eps, args.steps, args.restarts, args.seeds)
        out["strength"][eps] = s
        print(f"  Linf eps {eps:<5g} PGD {s['pgd']:.3f}   APGD-CE {s['apgd_ce']:.3f}   "
              f"PGD - APGD-CE {s['points_above_apgd']:+.1f} points  (target <= +1.0)", flush=True)
    return out


if __name__ == "__main__":
    main()
