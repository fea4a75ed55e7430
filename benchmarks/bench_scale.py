"""Cost growth at the published data sets' shapes: time and peak memory against stimuli, targets and image size.

Each point runs in a fresh process (peak memory = the process's peak resident set above its resident set after
imports), and every curve prints its log-log slope beside the budget of issue 16:

- similarity targets (pairs computed on the fly from the (N, F) rows): N = 10^3 .. 7.3x10^4, F = 512;
  peak <= 2 GB at N = 73,000, memory slope against N <= 1.1;
- ridge predictivity (5-fold, per-target leave-one-out penalties): N = 10^3 .. 16,540 at 512 features x 1,700
  targets, <= 2 minutes and <= 4 GB at 16,540, time slope against N <= 1.2; and targets 10^2 .. 10^5 at
  N = 1,000;
- ridge predictivity at NSD's size, 73,000 stimuli x 10^4 voxels (512 features, blocks of 1,000 targets):
  measured at T = 250 .. 2,000 targets and extrapolated to 10^4 along the measured line (an ESTIMATE,
  printed as such; ``--nsd-full`` also measures the full 73,000 x 10,000, docs/scaling.md has its figure); no budget;
- the NSD-like pipeline: simulate the NSD layout (``brainalign data simulate nsd``) at 10% -> load it with the
  nsd loader -> trial-averaged targets -> ridge from the images' 8 x 8 low-pass; time per stage (no budget);
- training step against image size 8 .. 224 (resnet18, width 16, batch 8);
- image pipeline: images/s of the uint8 cache in a DataLoader after the first epoch vs PIL decoding in the same
  DataLoader (>= 1.5x), same pixels;
- framework step at ResNet50 (ImageNet stem) / 224 px: brainalign's train_step vs a plain PyTorch step (<= 1.05).

    python -m benchmarks.bench_scale [--quick] [--nsd-full] [--plots DIR] [--json FILE] [--skip NAME ...]

``--quick`` runs every pipeline at about 1% of its size (the test does); figures from it are not budgets.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

BUDGETS = {
    "similarity_peak_mb": 2048, "similarity_memory_slope": 1.1,
    "ridge_seconds": 120, "ridge_peak_mb": 4096, "ridge_time_slope": 1.2,
    "pipeline_speedup": 1.5, "step_ratio": 1.05,
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _child(name: str, kwargs: dict, queue) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    fn = WORKLOADS[name]
    try:
        fn(**{**kwargs, "warm": True})  # imports and lazy initialisation outside the measurement
        base = _rss_mb()
        start = time.perf_counter()
        extra = fn(**kwargs) or {}
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put({"seconds": seconds, "peak_mb": max(peak - base, 0.0), **extra})
    except BaseException as exc:  # the parent must never wait for a result that will not come
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def isolated(name: str, **kwargs) -> dict:
    """Run a workload in a fresh process: seconds, peak MB above the post-import baseline, its own figures."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, kwargs, queue))
    proc.start()
    while True:  # a child killed (e.g. out of memory) never answers: do not wait for it
        try:
            out = queue.get(timeout=5)
            break
        except Exception:
            if not proc.is_alive():
                raise RuntimeError(f"{name}({kwargs}): the process died (exit code {proc.exitcode})") from None
    proc.join()
    if "error" in out:
        raise RuntimeError(f"{name}({kwargs}): {out['error']}")
    return out


def similarity_targets(n: int, f: int = 512, steps: int = 50, pairs: int = 2016, warm: bool = False) -> None:
    """A similarity regularizer's target side: unit rows (N, F), then per step the sampled pairs' targets."""
    import torch

    from brainalign.regularizers._similarity import pair_targets, sample_pairs, unit_rows
    from brainalign.regularizers.diagnostics import rows_target, target_diagnostics

    if warm:
        n = 64
    gen = torch.Generator().manual_seed(0)
    targets = torch.randn(n, f, generator=gen)
    rows = unit_rows(targets)
    for _ in range(steps):
        i, j = sample_pairs(n, pairs, gen)
        pair_targets(rows, i, j)
    target_diagnostics(rows_target(targets), seed=0)


def ridge(n: int, t: int = 1700, d: int = 512, warm: bool = False, block: int | None = 2000) -> dict:
    """5-fold ridge predictivity of (N, T) targets from (N, D) features, ``block`` targets at a time."""
    import torch

    from brainalign.alignment.predictivity import predictivity

    if warm:
        n, t = 64, 8
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen)
    k = min(64, d)
    y = torch.randn(n, t, generator=gen)  # noise, then the signal added in place: one (N, T) array
    y.addmm_(x[:, :k], torch.randn(k, t, generator=gen), alpha=1 / np.sqrt(k))
    del gen
    res = predictivity(x, y, n_folds=5, target_block=block)
    return {"median_r": float(np.nanmedian(res.r))}


def image_step(size: int, width: int = 16, batch: int = 8, steps: int = 3, warm: bool = False) -> dict:
    """Training steps of resnet18 (CIFAR stem) at size x size RGB."""
    import torch
    import torch.nn.functional as F

    from brainalign.config import ModelConfig
    from brainalign.models import build_model

    if warm:
        size, steps = 8, 1
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="resnet18", width=width), 10, 3, size, (0.5,) * 3, (0.25,) * 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.rand(batch, 3, size, size), torch.randint(0, 10, (batch,))
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return {"steps": steps}


def _tree(scale: float, size: int) -> Path:
    from brainalign.neural.full_size import write_things_eeg2_tree

    root = Path(tempfile.mkdtemp(prefix="bench_scale_tree_"))
    write_things_eeg2_tree(root, scale=scale, image_size=size)
    return root


def pipeline(root: str, size: int, workers: int = 2, batch: int = 64) -> dict:
    """images/s over one epoch: PIL decoding in a DataLoader vs the uint8 cache (after its first epoch)."""
    import torch

    from brainalign.data.cache import CachedImages, DecodedImages, cached_images, loader
    from brainalign.data.things_eeg2 import image_root, training_files

    files = training_files(image_root(root))[0]

    def epoch(ds) -> tuple[float, torch.Tensor]:
        start = time.perf_counter()
        with torch.no_grad():
            batches = [b for b, _ in loader(ds, batch_size=batch, workers=workers, pin_memory=False)]
        return len(files) / (time.perf_counter() - start), torch.cat(batches)

    start = time.perf_counter()
    array = cached_images(files, size, directory=Path(root) / "cache")
    first_epoch = time.perf_counter() - start
    plain_ips, plain = epoch(DecodedImages(files, size))
    cached_ips, cached = epoch(CachedImages(array))
    return {"n": len(files), "decode_ips": plain_ips, "cached_ips": cached_ips, "cache_build_s": first_epoch,
            "same_pixels": bool(torch.equal(plain, cached))}


def nsd_pipeline(scale: float, image_size: int = 32, root: str | None = None, block: int = 1000) -> dict:
    """Simulate the NSD-like set at ``scale``, load it with the nsd loader, ridge from the images' 8 x 8 low-pass.

    Returns the seconds of each stage, the sizes and the median held-out r over voxels."""
    import shutil

    from brainalign.alignment.predictivity import predictivity
    from brainalign.neural import load_recording
    from brainalign.neural.full_size import write_nsd_tree

    folder = Path(root) if root else Path(tempfile.mkdtemp(prefix="bench_scale_nsd_"))
    try:
        start = time.perf_counter()
        tree = write_nsd_tree(folder / "nsd", scale=scale, image_size=image_size)
        simulate_s = time.perf_counter() - start
        start = time.perf_counter()
        rec = load_recording("nsd", tree, roi="nsdgeneral")
        targets = rec.average()  # (N, V, 1)
        features = rec.images.load(rec.stimulus_ids.tolist(), size=8).reshape(len(rec.stimulus_ids), -1)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        res = predictivity(features, targets, n_folds=5, target_block=block)
        ridge_s = time.perf_counter() - start
    finally:
        if root is None:
            shutil.rmtree(folder, ignore_errors=True)
    return {"scale": scale, "image_size": image_size, "n_images": int(rec.images.shape[0]),
            "n_stimuli": int(targets.shape[0]), "n_voxels": int(targets.shape[1]), "simulate_s": simulate_s,
            "load_s": load_s, "ridge_s": ridge_s, "median_r": float(np.nanmedian(res.r))}


WORKLOADS = {"similarity": similarity_targets, "ridge": ridge, "image_step": image_step}


def slope(xs, ys) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(xs, float)), np.log(np.maximum(np.asarray(ys, float), 1e-9)), 1)[0])


def _verdict(value: float, budget: float, higher_is_better: bool = False) -> str:
    ok = value >= budget if higher_is_better else value <= budget
    return "ok" if ok else "ABOVE BUDGET" if not higher_is_better else "BELOW BUDGET"


def nsd_ridge_estimate(ts: list[int], points: list[dict], n: int, target: int = 10_000) -> dict:
    """Extrapolate ridge time and peak memory at ``n`` stimuli to ``target`` targets from points at fewer.

    Time is a fixed cost plus a cost per target (the blocked fit is linear in T; at a few hundred targets the
    fixed cost of the features' spectra dominates, so a log-log slope over these points would understate
    the growth): the least-squares line through the points, read at ``target``. Peak memory is the largest
    point's plus the float32 responses of the extra targets (4 bytes x n x (target - T)): the blocked fit's
    working set does not grow with T, the response array does."""
    secs = [p["seconds"] for p in points]
    per_target, fixed = np.polyfit(np.asarray(ts, float), np.asarray(secs, float), 1)
    peak_mb = points[-1]["peak_mb"] + 4 * n * (target - ts[-1]) / 2**20
    return {"time_slope": slope(ts, secs), "seconds_per_1000_targets": 1000 * float(per_target),
            "fixed_seconds": float(fixed), "seconds": float(fixed + per_target * target), "peak_mb": peak_mb,
            "estimate": True}


def run(quick: bool = False, skip: tuple[str, ...] = (), nsd_full: bool = False) -> dict:
    s = 0.01 if quick else 1.0
    out: dict = {"quick": quick}
    if "similarity" not in skip:
        ns = [int(round(n * s)) or 10 for n in (1000, 3000, 10_000, 30_000, 73_000)]
        pts = [isolated("similarity", n=max(n, 10), f=512 if not quick else 32) for n in ns]
        mem_slope = slope(ns[1:], [p["peak_mb"] for p in pts[1:]])
        out["similarity"] = {"n": ns, "points": pts, "memory_slope": mem_slope,
                             "time_slope": slope(ns, [p["seconds"] for p in pts])}
        print(f"similarity targets: N={ns[-1]}: {pts[-1]['seconds']:.2f} s, peak {pts[-1]['peak_mb']:.0f} MB "
              f"(budget <= {BUDGETS['similarity_peak_mb']} MB) {_verdict(pts[-1]['peak_mb'], 2048)}; "
              f"memory slope vs N {mem_slope:.2f} (budget <= 1.1) {_verdict(mem_slope, 1.1)}; "
              f"time slope {out['similarity']['time_slope']:.2f}", flush=True)
    if "ridge" not in skip:
        ns = [int(round(n * s)) for n in (1000, 2000, 4000, 8000, 16_540)]
        ns = [max(n, 40) for n in ns]
        t = 1700 if not quick else 17
        pts = [isolated("ridge", n=n, t=t, d=512 if not quick else 16) for n in ns]
        t_slope = slope(ns, [p["seconds"] for p in pts])
        last = pts[-1]
        out["ridge_stimuli"] = {"n": ns, "t": t, "points": pts, "time_slope": t_slope,
                                "memory_slope": slope(ns, [p["peak_mb"] for p in pts])}
        print(f"ridge predictivity {ns[-1]} x {t}: {last['seconds']:.1f} s (budget <= 120 s) "
              f"{_verdict(last['seconds'], 120)}, peak {last['peak_mb']:.0f} MB (budget <= 4096 MB) "
              f"{_verdict(last['peak_mb'], 4096)}; time slope vs N {t_slope:.2f} (budget <= 1.2) "
              f"{_verdict(t_slope, 1.2)}; memory slope {out['ridge_stimuli']['memory_slope']:.2f}", flush=True)
        ts = [int(round(x * s)) or 2 for x in (100, 1000, 10_000, 100_000)]
        n = 1000 if not quick else 40
        pts = [isolated("ridge", n=n, t=max(x, 2), d=512 if not quick else 16) for x in ts]
        out["ridge_targets"] = {"t": ts, "n": n, "points": pts, "time_slope": slope(ts, [p["seconds"] for p in pts]),
                                "memory_slope": slope(ts, [p["peak_mb"] for p in pts])}
        print(f"ridge predictivity vs targets {ts[0]}..{ts[-1]} at N={n}: {pts[-1]['seconds']:.1f} s, "
              f"peak {pts[-1]['peak_mb']:.0f} MB at T={ts[-1]}; time slope {out['ridge_targets']['time_slope']:.2f}, "
              f"memory slope {out['ridge_targets']['memory_slope']:.2f} (no budget)", flush=True)
    if "nsd_ridge" not in skip:
        n, block, d = (73_000, 1000, 512) if not quick else (730, 10, 16)
        ts = [250, 500, 1000, 2000] if not quick else [5, 10, 20]
        pts = [isolated("ridge", n=n, t=t, d=d, block=block) for t in ts]
        est = nsd_ridge_estimate(ts, pts, n, 10_000 if not quick else 100)
        out["nsd_ridge"] = {"n": n, "t": ts, "block": block, "points": pts,
                            "memory_slope": slope(ts, [p["peak_mb"] for p in pts]), **est}
        print(f"ridge predictivity at NSD size {n} x {10_000 if not quick else 100} ({d} features, blocks of "
              f"{block}): ESTIMATE {est['seconds'] / 60:.1f} min, peak ~{est['peak_mb']:.0f} MB, from the measured "
              f"{n} x {ts[0]}..{ts[-1]} ({pts[-1]['seconds']:.1f} s, {pts[-1]['peak_mb']:.0f} MB at T={ts[-1]}; "
              f"{est['fixed_seconds']:.0f} s + {est['seconds_per_1000_targets']:.0f} s per 1,000 targets; "
              f"log-log time slope {est['time_slope']:.2f}) (no budget)", flush=True)
        if nsd_full:
            full = isolated("ridge", n=n, t=10_000 if not quick else 100, d=d, block=block)
            out["nsd_ridge"]["full"] = full
            print(f"ridge predictivity at NSD size, measured: {full['seconds'] / 60:.1f} min, peak "
                  f"{full['peak_mb']:.0f} MB (no budget)", flush=True)
    if "nsd_pipeline" not in skip:
        p = nsd_pipeline(0.1 if not quick else 0.01, 32 if not quick else 16)
        out["nsd_pipeline"] = p
        print(f"NSD-like pipeline at scale {p['scale']:g} ({p['n_images']} images at {p['image_size']} px, "
              f"{p['n_stimuli']} stimuli x {p['n_voxels']} voxels): simulate {p['simulate_s']:.1f} s, load + "
              f"targets {p['load_s']:.1f} s, ridge {p['ridge_s']:.1f} s; median r {p['median_r']:.2f} "
              f"(no budget)", flush=True)
    if "image_step" not in skip:
        sizes = (8, 16, 32, 64, 128, 224) if not quick else (8, 16)
        pts = [isolated("image_step", size=z) for z in sizes]
        out["image_size"] = {"size": list(sizes), "points": pts,
                             "time_slope": slope(sizes[1:], [p["seconds"] for p in pts[1:]]),
                             "memory_slope": slope(sizes[1:], [p["peak_mb"] for p in pts[1:]])}
        print(f"training step vs image size {sizes[0]}..{sizes[-1]} (resnet18 w16, batch 8, 3 steps): "
              f"{pts[-1]['seconds']:.2f} s at {sizes[-1]} px; time slope {out['image_size']['time_slope']:.2f}, "
              f"memory slope {out['image_size']['memory_slope']:.2f} (no budget; 2 = pixels)", flush=True)
    if "pipeline" not in skip:
        root = _tree(0.02 if not quick else 0.002, 500 if not quick else 64)
        p = pipeline(str(root), 64 if not quick else 16)
        p["speedup"] = p["cached_ips"] / p["decode_ips"]
        out["pipeline"] = p
        print(f"image pipeline ({p['n']} JPEGs, {'500' if not quick else '64'} px -> "
              f"{64 if not quick else 16} px, 2 workers): cache {p['cached_ips']:.0f} images/s vs PIL "
              f"{p['decode_ips']:.0f} images/s = {p['speedup']:.1f}x (budget >= 1.5) "
              f"{_verdict(p['speedup'], 1.5, True)}; same pixels: {p['same_pixels']}; first epoch (decode + "
              f"write) {p['cache_build_s']:.1f} s", flush=True)
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    if "step" not in skip:
        from benchmarks.bench_train_step import measure

        size, batch = (224, 4) if not quick else (32, 2)
        r = measure("resnet50_imagenet", 64 if not quick else 8, size, batch, repeats=3 if not quick else 1,
                    steps=1)
        out["step"] = r
        print(f"framework step resnet50_imagenet {size} px batch {batch}: ours {r['ours_ms']:.0f} ms, plain "
              f"{r['plain_ms']:.0f} ms, ratio {r['ratio']:.3f} (budget <= 1.05) {_verdict(r['ratio'], 1.05)}",
              flush=True)
    return out


def plot(results: dict, folder: str | Path) -> list[Path]:
    """Log-log curves (time and peak memory) as PNG files in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    curves = [("similarity", "n", "stimuli N (similarity targets, F = 512)"),
              ("nsd_ridge", "t", "targets T (ridge, N = 73,000, 512 features)"),
              ("ridge_stimuli", "n", "stimuli N (ridge, 512 features x 1,700 targets)"),
              ("ridge_targets", "t", "targets T (ridge, N = 1,000)"),
              ("image_size", "size", "image side (resnet18 step)")]
    written = []
    for key, axis, label in curves:
        if key not in results:
            continue
        r = results[key]
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
        for ax, what, unit in ((axes[0], "seconds", "time (s)"), (axes[1], "peak_mb", "peak memory (MB)")):
            ys = [max(p[what], 1e-3) for p in r["points"]]
            ax.loglog(r[axis], ys, "o-")
            ax.set_xlabel(label, fontsize=8)
            ax.set_ylabel(unit)
            ax.set_title(f"slope {slope(r[axis], ys):.2f}", fontsize=9)
        fig.tight_layout()
        path = folder / f"scaling_{key}.png"
        from brainalign.io import atomic_path

        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every pipeline at about 1%% of its size")
    parser.add_argument("--plots", help="folder for the PNG curves")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--nsd-full", action="store_true", help="also measure ridge at 73,000 x 10,000 (minutes)")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="similarity ridge nsd_ridge nsd_pipeline image_step pipeline step")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    results = run(quick=args.quick, skip=tuple(args.skip), nsd_full=args.nsd_full)
    if args.plots:
        plot(results, args.plots)
    if args.json:
        from brainalign.io import write_json

        write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
