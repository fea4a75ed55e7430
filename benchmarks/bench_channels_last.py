"""What ``train.channels_last`` buys on the demo's model: the attack step and the training step in NHWC memory
format against the default (NCHW), same weights and images, timed interleaved in one process (median of
repeated blocks) so that machine noise hits both.

Target: ratio (channels_last / default) <= 1.0 for both, i.e. the demo's use of it (``brainalign.demo``) does
not cost time. Outcomes must agree to float rounding (max gradient difference printed).

    python -m benchmarks.bench_channels_last [--repeats 15] [--images 240]
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
import torch.nn.functional as F

from benchmarks import seconds_per_call
from brainalign.config import parse_config
from brainalign.train import build_trainee, train_step

TARGET = 1.0



def measure(images: int = 240, batch: int = 64, repeats: int = 15, steps: int = 10) -> dict[str, float]:
    torch.set_num_threads(1)  # as in the demo's workers
    trainees = {cl: build_trainee(parse_config({"model": {"name": "small_cnn", "width": 16},
                                                "train": {"batch_size": batch, "channels_last": cl}}))
                for cl in (False, True)}
    base = trainees[False].model.eval()
    fast = copy.deepcopy(base).to(memory_format=torch.channels_last)
    x, y = trainees[False].data.test.images[:images], trainees[False].data.test.labels[:images]

    def attack_step(model):  # one APGD/PGD iteration's work: forward and the input gradient
        xr = x.clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(xr), y), xr)[0]

    diff = float((attack_step(base) - attack_step(fast)).abs().max())
    gen = torch.Generator().manual_seed(0)
    xt, yt = trainees[False].data.train.images[:batch], trainees[False].data.train.labels[:batch]
    fns = {"attack_default": lambda: attack_step(base), "attack_cl": lambda: attack_step(fast),
           "train_default": lambda: train_step(trainees[False], xt, yt, gen),
           "train_cl": lambda: train_step(trainees[True], xt, yt, gen)}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for key, fn in fns.items():
            times[key].append(seconds_per_call(fn, steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"attack_ratio": med["attack_cl"] / med["attack_default"],
            "train_ratio": med["train_cl"] / med["train_default"],
            "attack_ms": 1e3 * med["attack_default"], "train_ms": 1e3 * med["train_default"], "max_grad_diff": diff}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--images", type=int, default=240)
    args = parser.parse_args(argv)
    r = measure(images=args.images, repeats=args.repeats)
    for kind in ("attack", "train"):
        verdict = "ok" if r[f"{kind}_ratio"] <= TARGET else "OVER"
        print(f"{kind} step, small CNN on digits, one thread: channels_last / default {r[f'{kind}_ratio']:.3f} "
              f"(default {r[f'{kind}_ms']:.2f} ms; target <= {TARGET}) {verdict}")
    print(f"max input-gradient difference between the formats: {r['max_grad_diff']:.1e}")


if __name__ == "__main__":
    main()
