"""Cost of each regularizer's own computation, relative to a baseline training step.

Target (issue 4): the regularizer's own computation, excluding the forward/backward of its extra stimuli,
adds at most 10% to a baseline training step, for the small CNN and for ResNet18.

For each model and registered regularizer, timed interleaved in one process (the fastest of repeated
blocks: on a shared machine the minimum tracks the code's own cost, a median the neighbours' load):

- ``base``: a baseline step (CE forward/backward + SGD step on a classification batch of 64);
- ``own``: the regularizer's own work on one step: ``sample``, the term from the layer features of its
  stimuli, and the term's backward down to those features (and into its own parameters), i.e. everything
  but the network's forward/backward of the extra stimuli. The features are leaf copies of a real forward.

``own / base`` is the reported overhead (target <= 0.10). With ``--in-step`` the script also times whole steps:
``stream`` (the extra stimuli's forward/backward with a trivial term) and ``full`` (the real term), and prints
``(full - stream) / base``, the same quantity measured inside a step (noisier on a busy machine).

Spectral reads the classification batch, whose size must exceed the layer's width: its rows use batch =
width + 64 for ``base`` too. Its per-epoch eigenvector refresh (a forward pass over the training images of an
epoch, ``--refresh-steps`` steps' worth) is reported separately, amortised per step.

    python -m benchmarks.bench_regularizers [--repeats 15] [--models small_cnn resnet18] [--in-step]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks import seconds_per_call
from brainalign.config import ModelConfig
from brainalign.models import build_model
from brainalign.registry import MODELS, REGULARIZERS
from brainalign.regularizers.base import RegularizationSet
from brainalign.regularizers.diagnostics import pixel_rows

MODELS_BENCH = {"small_cnn": (32, 1, 8), "resnet18": (64, 3, 32)}  # width, channels, image side
N_STIMULI = 1024
N_TARGETS = 128
REG_BATCH = 32



def _regularizer(name: str, model_name: str, model, images: torch.Tensor, gen: torch.Generator):
    info = REGULARIZERS.info(name)
    targets = None
    if info.target == "recording":
        targets = torch.rand(len(images), N_TARGETS, generator=gen) + 0.1
    elif info.target == "pixels":
        rows = pixel_rows(images)
        targets = rows - rows.mean(0)
    reg_set = None
    if info.target != "none":
        reg_set = RegularizationSet(images, [f"s{i}" for i in range(len(images))], targets)
    params = {"warmup_steps": 0} if name == "cka" else {}
    if info.stream == "regularization":
        params["batch_size"] = REG_BATCH
    reg = REGULARIZERS.get(name)(**params)
    reg.resolve_layers(model, MODELS.info(model_name).penultimate)
    reg.setup(model, reg_set, probe=images[:2])
    return reg


def measure(model_name: str, reg_name: str, batch: int, repeats: int, steps: int, in_step: bool,
            refresh_steps: int = 17) -> dict:
    width, channels, side = MODELS_BENCH[model_name]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = build_model(ModelConfig(name=model_name, width=width), 10, channels, side)
    model.train()
    images = torch.rand(N_STIMULI, channels, side, side, generator=gen)
    reg = _regularizer(reg_name, model_name, model, images, gen)
    classification = reg.stream == "classification"
    if classification:  # spectral: the batch must exceed the layer's width
        batch = max(batch, max(reg.widths.values()) + 64)
        reg.on_epoch_start(model, images[: 2 * batch], 0)
    optimizer = torch.optim.SGD(list(model.parameters()) + list(reg.parameters()), lr=1e-3, momentum=0.9)
    x = torch.rand(batch, channels, side, side, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)

    def base():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    index0 = None if classification else reg.sample(len(images), gen)
    with torch.no_grad():
        feats0 = model.features(x if classification else images[index0], reg.layers)

    def own():
        index = None if classification else reg.sample(len(images), gen)
        feats = {k: v.detach().requires_grad_(True) for k, v in feats0.items()}
        reg(feats, index if index is None else index0).backward()

    fns = {"base": base, "own": own}
    if in_step:
        def whole(real: bool):
            def run():
                optimizer.zero_grad(set_to_none=True)
                if classification:
                    logits, feats = model.forward_features(x, reg.layers)
                    loss, index = F.cross_entropy(logits, y), None
                else:
                    loss = F.cross_entropy(model(x), y)
                    index = reg.sample(len(images), gen)
                    feats = model.features(images[index], reg.layers)
                if real:
                    loss = reg.transform_ce(loss) + reg(feats, index)
                else:
                    loss = loss + sum(f.sum() for f in feats.values()) * 0.0
                loss.backward()
                optimizer.step()
            return run
        fns.update(stream=whole(False), full=whole(True))
    for fn in fns.values():
        seconds_per_call(fn, 2)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(seconds_per_call(fn, steps))
    t = {k: min(v) for k, v in times.items()}
    out = {"batch": batch, "base_ms": 1e3 * t["base"], "own_ms": 1e3 * t["own"], "overhead": t["own"] / t["base"]}
    if in_step:
        out["stream"] = t["stream"] / t["base"]
        out["in_step"] = (t["full"] - t["stream"]) / t["base"]
    if classification:
        # One forward pass over an epoch's images, per step of that epoch (independent of the epoch's length).
        train_images = torch.rand(refresh_steps * batch, channels, side, side, generator=gen)
        refresh = min(seconds_per_call(lambda: reg.on_epoch_start(model, train_images, 0), 1) for _ in range(2))
        out["refresh_per_step"] = refresh / refresh_steps / t["base"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=list(MODELS_BENCH))
    parser.add_argument("--regularizers", nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--in-step", action="store_true", help="also time whole steps (noisier)")
    parser.add_argument("--refresh-steps", type=int, default=17,
                        help="steps per epoch whose images the spectral refresh passes over (digits: 17)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.regularizers or REGULARIZERS.names()
    for model_name in args.models:
        width, channels, side = MODELS_BENCH[model_name]
        print(f"{model_name} (width {width}, {channels}x{side}x{side}), regularization batch {REG_BATCH}, "
              f"{args.threads} thread(s)")
        for name in names:
            r = measure(model_name, name, args.batch, args.repeats, args.steps, args.in_step, args.refresh_steps)
            verdict = "ok" if r["overhead"] <= 0.10 else "ABOVE TARGET"
            line = (f"  {name:18s} batch {r['batch']:4d}  base {r['base_ms']:8.1f} ms  own {r['own_ms']:7.2f} ms  "
                    f"own/base {r['overhead']:.3f} (target <= 0.10) {verdict}")
            if "in_step" in r:
                line += f"  | in-step {r['in_step']:+.3f}, extra stream {r['stream']:.2f}x"
            if "refresh_per_step" in r:
                line += f"  | eigenvector refresh {r['refresh_per_step']:.3f} of a step, amortised"
            print(line, flush=True)


if __name__ == "__main__":
    main()
