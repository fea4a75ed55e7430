"""Cost of an adversarial-training step relative to a plain training step, in one run.

The budget (issue 9): PGD adversarial training with k inner steps costs at most (k + 1.15) times a plain step
(zero_grad, CE forward, backward, optimiser step): the inner loop may add its k forward + input-gradient
backward passes and nothing else. The script times, interleaved so that load on the machine hits both alike,

- ``plain``: a cross-entropy step;
- ``adversarial_training`` (k inner steps): brainalign's defence step;
- ``unfrozen`` (k inner steps): the same step with the parameters left trainable during the inner loop
  (what the defence avoids), to show what freezing them saves;
- ``trades`` (k inner steps), for reference (its budget is one pass more: clean and adversarial forward);

and prints each time per step and its ratio to the plain step: the best (min) block, as ``timeit`` recommends
(load from other processes only ever adds time), and the median block. On the CPU the default clock is the
process's CPU time (``time.process_time``), which other processes sharing the cores do not inflate; use
``--clock wall`` for wall time (always used on CUDA).

    .venv/bin/python benchmarks/bench_adversarial_training.py                     # digits: 8x8, width 16, batch 64
    .venv/bin/python benchmarks/bench_adversarial_training.py --size 28 --width 32 --batch 128   # MNIST-sized
    .venv/bin/python benchmarks/bench_adversarial_training.py --steps 1 3 10 --repeats 15 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from brainalign.attacks.base import threat_model
from brainalign.attacks.pgd import pgd
from brainalign.defences.adversarial_training import AdversarialTraining
from brainalign.defences.base import clean_logits
from brainalign.defences.trades import Trades
from brainalign.models.small_cnn import SmallCNN


@contextmanager
def eval_only(model):
    """Eval mode for the inner loop but parameters left trainable: the unoptimised variant."""
    model.eval()
    try:
        yield
    finally:
        model.train()


def unfrozen_loss(model, x, y, gen, eps, steps):
    with eval_only(model):
        logits = clean_logits(model, x)
        x_adv = pgd(model, x, y, threat_model("Linf", eps), steps=steps, generator=gen)
    return F.cross_entropy(model(x_adv), y), logits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8, help="image side (default 8: the digits)")
    parser.add_argument("--width", type=int, default=16, help="small_cnn width")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 3, 5, 10], help="inner PGD steps k")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--iters", type=int, default=20, help="training steps per timed block")
    parser.add_argument("--repeats", type=int, default=9, help="timed blocks per variant (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: process CPU time (default on the CPU); wall: elapsed time")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = time.perf_counter if args.clock == "wall" or device.type != "cpu" else time.process_time

    torch.manual_seed(0)
    model = SmallCNN(10, 1, [0.5], [0.25], width=args.width).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)  # tiny lr: the weights barely move while timing
    x = torch.rand(args.batch, 1, args.size, args.size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    gen = torch.Generator().manual_seed(0)

    def step(loss_fn):
        optimizer.zero_grad(set_to_none=True)
        loss, _ = loss_fn()
        loss.backward()
        optimizer.step()

    def plain():
        logits = model(x)
        return F.cross_entropy(logits, y), logits

    variants = {"plain": plain}
    for k in args.steps:
        at = AdversarialTraining(eps=args.eps, steps=k)
        tr = Trades(beta=6.0, eps=args.eps, steps=k)
        variants[f"adversarial_training k={k}"] = lambda at=at: at.loss(model, x, y, gen)
        variants[f"unfrozen k={k}"] = lambda k=k: unfrozen_loss(model, x, y, gen, args.eps, k)
        variants[f"trades k={k}"] = lambda tr=tr: tr.loss(model, x, y, gen)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        for _ in range(3):
            step(fn)
    for _ in range(args.repeats):
        for name, fn in variants.items():
            sync()
            t0 = clock()
            for _ in range(args.iters):
                step(fn)
            sync()
            times[name].append((clock() - t0) / args.iters)

    best, med = min(times["plain"]), statistics.median(times["plain"])
    print(f"images {args.batch}x1x{args.size}x{args.size}, small_cnn width {args.width}, eps {args.eps} Linf, "
          f"torch threads {torch.get_num_threads()}, device {device}; {args.repeats} blocks of {args.iters} steps, "
          f"clock {clock.__name__}")
    print(f"{'variant':28s} {'min ms':>8s} {'ratio':>6s} {'median ms':>10s} {'ratio':>6s} {'budget':>7s}")
    for name, ts in times.items():
        budget = ""
        if name.startswith(("adversarial_training", "unfrozen")):
            budget = f"{int(name.split('k=')[1]) + 1.15:.2f}"
        print(f"{name:28s} {1e3 * min(ts):8.3f} {min(ts) / best:6.2f} {1e3 * statistics.median(ts):10.3f} "
              f"{statistics.median(ts) / med:6.2f} {budget:>7s}")


if __name__ == "__main__":
    main()
