"""Framework overhead of one training step: brainalign's ``train_step`` versus a hand-written PyTorch step.

Target (issue 2): within 5% (ratio <= 1.05) for the small CNN and for ResNet18, same model and batch.
Both loops are timed interleaved in one process, median of repeated blocks, so machine noise hits both.

    python -m benchmarks.bench_train_step [--repeats 30] [--batch 64]
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from benchmarks import seconds_per_call
from brainalign.config import parse_config
from brainalign.train import build_trainee, train_step


def measure(model_name: str, width: int, size: int, batch: int, repeats: int, steps: int) -> dict[str, float]:
    config = parse_config({"model": {"name": model_name, "width": width}, "data": {"image_size": size},
                           "train": {"batch_size": batch, "optimizer": "sgd", "lr": 0.01}})
    trainee = build_trainee(config)
    model, optimizer = trainee.model, trainee.optimizer
    model.train()
    x = trainee.data.train.images[:batch]
    y = trainee.data.train.labels[:batch]
    gen = torch.Generator().manual_seed(0)

    def ours():
        train_step(trainee, x, y, gen)

    def plain():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    for fn in (ours, plain):  # warm-up
        seconds_per_call(fn, 3)
    ours_t, plain_t = [], []
    for _ in range(repeats):
        ours_t.append(seconds_per_call(ours, steps))
        plain_t.append(seconds_per_call(plain, steps))
    o, p = statistics.median(ours_t), statistics.median(plain_t)
    return {"ours_ms": 1e3 * o, "plain_ms": 1e3 * p, "ratio": o / p}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    for name, width, size in (("small_cnn", 32, 8), ("resnet18", 64, 32)):
        r = measure(name, width, size, args.batch, args.repeats, args.steps)
        verdict = "ok" if r["ratio"] <= 1.05 else "ABOVE TARGET"
        print(f"train step {name:9s} (width {width}, {size}x{size}, batch {args.batch}): "
              f"ours {r['ours_ms']:.2f} ms, plain {r['plain_ms']:.2f} ms, ratio {r['ratio']:.3f} "
              f"(target <= 1.05) {verdict}")


if __name__ == "__main__":
    main()
