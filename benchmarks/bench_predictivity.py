"""Speed and agreement of brainalign's ridge predictivity against scikit-learn's RidgeCV.

Both fit a ridge regression from features to targets on a training split, choose one penalty per target
from the same grid by the same closed-form leave-one-out error (``RidgeCV(alphas, alpha_per_target=True)``,
its default ``cv=None``), and predict the held-out split. The script prints the wall times, their ratio and
the largest difference between the two sets of predictions.

Default size is the THINGS-EEG2 training set: 16,540 stimuli x 1,000 features (e.g. 1,000 PCs) to
17 channels x 100 time bins = 1,700 targets, split 14,886 / 1,654, with 8 penalties.

    .venv/bin/python benchmarks/bench_predictivity.py              # full size
    .venv/bin/python benchmarks/bench_predictivity.py --scale 0.25 # quick: every dimension x 0.25
    .venv/bin/python benchmarks/bench_predictivity.py --device cuda
    .venv/bin/python benchmarks/bench_predictivity.py --threads 1   # fairer on a machine shared with others

Measured at full size, on the 2-core development machine shared with other jobs (load average 6-14, so
absolute times are inflated and noisy; medians of 3 interleaved runs; scikit-learn 1.9.1, torch 2.13 MKL):

    threads  brainalign  sklearn RidgeCV  speed-up  max |prediction difference|
    2         46.5 s      114.7 s          2.47x     7e-13   (all 1,700 penalties identical)
    2         47.9 s      144.1 s          3.01x     7e-13
    1         68.4 s      192.3 s          2.81x     7e-13

Where the time goes: per penalty, one (n x k) @ (k x T) product in float32 for the leave-one-out residuals
(scikit-learn's "cov" mode does (n x p) @ (p x T) plus (n x p) @ (p x p) in float64); once per fit, the
float64 Gram matrix, its eigendecomposition and U'Y; and float64 recomputation of near-tie choices (37 of
1,700 targets here).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from threadpoolctl import threadpool_limits

from brainalign.alignment.predictivity import ridge_loo_fit_predict


def simulate(n: int, d: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """CNN-like features (power-law spectrum, non-zero mean) and targets with graded signal-to-noise."""
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.arange(1, d + 1) ** 0.5
    x = (rng.standard_normal((n, d)) * spectrum) @ np.linalg.qr(rng.standard_normal((d, d)))[0] + 0.3
    w = rng.standard_normal((d, t)) / np.sqrt(d)
    signal = x @ w
    signal /= signal.std(0)
    snr = np.geomspace(0.05, 3.0, t)  # EEG-like: most targets weakly predictable
    y = signal * snr + rng.standard_normal((n, t))
    return x, y


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every dimension (default 1 = full)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each method (median)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loo-dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/torch threads for both methods (default: the libraries' defaults)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    n, d, t = (max(8, round(v * args.scale)) for v in (16_540, 1_000, 1_700))
    n_test = max(2, round(n * 1_654 / 16_540))
    alphas = np.logspace(-1, 6, 8)
    x, y = simulate(n, d, t)
    x_tr, y_tr, x_te = x[n_test:], y[n_test:], x[:n_test]
    print(f"train {x_tr.shape} -> {y_tr.shape}, test {x_te.shape[0]}, {alphas.size} penalties; "
          f"torch threads {torch.get_num_threads()}, device {args.device}")

    def ours() -> tuple[np.ndarray, np.ndarray, int]:
        dev = torch.device(args.device)
        fit = ridge_loo_fit_predict(torch.as_tensor(x_tr, device=dev), torch.as_tensor(y_tr, device=dev),
                                    torch.as_tensor(x_te, device=dev), alphas,
                                    loo_dtype=getattr(torch, args.loo_dtype))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return fit.predictions.cpu().numpy(), alphas[fit.alpha_index.cpu().numpy()], fit.n_refined

    def sklearn() -> tuple[np.ndarray, np.ndarray]:
        model = RidgeCV(alphas=alphas, alpha_per_target=True).fit(x_tr, y_tr)
        return model.predict(x_te), model.alpha_

    # Untimed warm-up on a slice: the first torch linear-algebra calls load kernels and start threads.
    small = slice(0, min(200, len(x_tr)))
    ridge_loo_fit_predict(torch.as_tensor(x_tr[small], device=args.device),
                          torch.as_tensor(y_tr[small, :10], device=args.device),
                          torch.as_tensor(x_te, device=args.device), alphas)
    RidgeCV(alphas=alphas, alpha_per_target=True).fit(x_tr[small], y_tr[small, :10])

    times: dict[str, list[float]] = {"brainalign": [], "sklearn": []}
    for _ in range(args.repeats):  # interleaved, so that load from other processes hits both alike
        t0 = time.perf_counter()
        pred, alpha, n_refined = ours()
        times["brainalign"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pred_sk, alpha_sk = sklearn()
        times["sklearn"].append(time.perf_counter() - t0)

    ours_s, sk_s = statistics.median(times["brainalign"]), statistics.median(times["sklearn"])
    diff = np.abs(pred - pred_sk)
    print(f"brainalign  {ours_s:8.2f} s  (runs: {', '.join(f'{v:.2f}' for v in times['brainalign'])})")
    print(f"sklearn     {sk_s:8.2f} s  (runs: {', '.join(f'{v:.2f}' for v in times['sklearn'])})")
    print(f"speed-up    {sk_s / ours_s:8.2f} x")
    print(f"max |prediction difference| {diff.max():.2e} (targets have std {y.std():.2f}); "
          f"same penalty for {np.mean(alpha == alpha_sk):.4f} of targets; "
          f"{n_refined} near-tie choices refined in float64")
    print(f"penalties chosen: {dict(zip(*np.unique(alpha, return_counts=True), strict=True))}")


if __name__ == "__main__":
    main()
