"""Cross-validated predictivity and fit time of the two neural predictors on the simulated recordings.

The trained CNN encoder (``regularizers.encoder``, ``predictor: cnn``) and the random-feature ridge
(``regularizers.predictor``, ``predictor: ridge``) are fitted to the trial-averaged responses of the
``train`` split of ``sim_v1`` / ``sim_it`` (seed 0, scikit-learn digits, 8 x 8: the demo's recordings), with
the same 5 folds. Printed per recording: mean and median out-of-fold Pearson r over neuroids, the share of
neuroids the encoder predicts better, the noise ceiling's mean (Spearman-Brown split-half of the repeats:
how high r can go) and the wall times. The encoder is trained without its cache.

    PYTHONPATH=src .venv/bin/python -m benchmarks.bench_encoder --threads 1
    PYTHONPATH=src .venv/bin/python -m benchmarks.bench_encoder --recordings sim_v1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def measure(name: str, seed: int) -> dict:
    from brainalign.neural import load_recording
    from brainalign.regularizers.encoder import EncoderSettings, fit_encoder
    from brainalign.regularizers.predictor import fit_predictor

    rec = load_recording(name, seed=0).split("train")
    images = torch.from_numpy(np.asarray(rec.load_images(size=8, channels=1), dtype=np.float32))
    y = torch.from_numpy(rec.average().reshape(len(images), -1).astype(np.float32))
    t0 = time.perf_counter()
    enc = fit_encoder(images, y, EncoderSettings(seed=seed), cache=False)
    t1 = time.perf_counter()
    ridge = fit_predictor(images, y, seed=seed)
    t2 = time.perf_counter()
    ceiling = np.nanmean(rec.noise_ceiling("spearman_brown"))
    a, b = enc.heldout_r_per_output, ridge.heldout_r_per_output
    return {"recording": name, "seed": seed, "n": len(images), "cnn_mean": np.nanmean(a), "cnn_median": np.nanmedian(a),
            "ridge_mean": np.nanmean(b), "ridge_median": np.nanmedian(b), "cnn_better": float(np.mean(a > b)),
            "ceiling": float(ceiling), "cnn_s": t1 - t0, "ridge_s": t2 - t1, "epochs": enc.epochs}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", nargs="+", default=["sim_v1", "sim_it"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("recording seed    N  cnn r (mean/median)  ridge r (mean/median)  cnn better  ceiling  cnn s  ridge s")
    for name in args.recordings:
        for seed in args.seeds:
            m = measure(name, seed)
            print(f"{m['recording']:9s} {m['seed']:4d} {m['n']:4d}  {m['cnn_mean']:.3f} / {m['cnn_median']:.3f}"
                  f"        {m['ridge_mean']:.3f} / {m['ridge_median']:.3f}         {m['cnn_better']:6.0%}"
                  f"     {m['ceiling']:.3f}  {m['cnn_s']:5.1f}  {m['ridge_s']:5.1f}   epochs {m['epochs']}",
                  flush=True)


if __name__ == "__main__":
    main()
