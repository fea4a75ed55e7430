"""The embedded study: every condition x several seeds on scikit-learn's digits, then a summary and report.

Everything runs offline on data that ships with the install. Brain data in the demo is SIMULATED
(``brainalign.neural``'s simulated recordings of the digit images); the report says so at the top.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from brainalign.analysis.summary import summarize, summary_table
from brainalign.config import RunConfig, parse_config
from brainalign.headline import threat_model
from brainalign.io import write_json, write_text
from brainalign.reports import write_report
from brainalign.study import run_study
from brainalign.train import train

EXPERIMENT = "demo"


@dataclass(frozen=True)
class Condition:
    """One arm of the study: a name and the regularizers/defences it adds to the baseline config."""

    name: str
    description: str
    regularizers: list[dict[str, Any]] = field(default_factory=list)
    defences: list[dict[str, Any]] = field(default_factory=list)
    train: dict[str, Any] = field(default_factory=dict)  # training settings that differ from the baseline's


# Simulated recordings of the demo's own training images (the simulated brain sees what the model sees).
# One fixed simulated subject (seed 0) for every run, so that targets do not change with the training seed.
SIM_V1 = {"name": "sim_v1", "options": {"seed": 0}}
SIM_IT = {"name": "sim_it", "options": {"seed": 0}}
SIM_EEG = {"name": "sim_eeg", "options": {"seed": 0}}

CONDITIONS: list[Condition] = [
    Condition("baseline", "cross-entropy only"),
    Condition("pixel_similarity", "Attias et al. 2024: thresholded pixel-similarity target (Th 0.4)",
              [{"name": "pixel_similarity", "weight": 1.0, "params": {"threshold": 0.4}}]),
    Condition("neural_similarity_v1", "Li et al. 2019: similarity of simulated V1 responses",
              [{"name": "neural_similarity", "weight": 1.0, "recording": SIM_V1}]),
    Condition("neural_similarity_it", "Li et al. 2019: similarity of simulated IT responses (less pixel-bound)",
              [{"name": "neural_similarity", "weight": 1.0, "recording": SIM_IT}]),
    Condition("neural_similarity_it_shuffled", "control: simulated IT targets permuted across images",
              [{"name": "neural_similarity", "weight": 1.0, "recording": SIM_IT, "control": "shuffled"}]),
    Condition("neural_prediction_eeg", "Guo et al. 2024: dual task predicting simulated EEG (17 ch x time)",
              [{"name": "neural_prediction", "weight": 1.0, "recording": SIM_EEG,
                "params": {"weighting": "uncertainty", "uncertainty_form": "guo", "standardize": True}}]),
    Condition("cka_it", "Dapello et al. 2023: log(1 - CKA) to simulated IT",
              [{"name": "cka", "weight": 0.1, "params": {"warmup_steps": 0}, "recording": SIM_IT}]),
    Condition("spectral", "Nassar et al. 2020: 1/n eigenspectrum penalty on the penultimate layer "
              "(batch 128: the method needs batch > layer width, 64)",
              [{"name": "spectral", "weight": 0.01}], train={"batch_size": 128}),
    Condition("decorrelation", "control: identity target (every image pair toward zero similarity)",
              [{"name": "decorrelation", "weight": 1.0}]),
    Condition("pixel_continuous", "control: unthresholded pixel similarity",
              [{"name": "pixel_continuous", "weight": 1.0}]),
    Condition("noise_augmentation", "reference defence: Gaussian noise augmentation (sigma 0.3)",
              defences=[{"name": "gaussian_noise_augmentation", "params": {"sigma": 0.3}}]),
    Condition("adversarial_training", "reference defence: light PGD adversarial training (Linf 0.1, 3 steps)",
              defences=[{"name": "adversarial_training", "params": {"eps": 0.1, "steps": 3}}]),
]
# --quick keeps the core comparison (baseline, pixel and neural similarity) so that it runs in about a minute.
QUICK = ("baseline", "pixel_similarity", "neural_similarity_it")
# The study relates every run's predictivity of simulated EEG to its robustness gain (400 stimuli keep it fast).
STUDY_RECORDING = {"name": "sim_eeg", "options": {"seed": 0, "n_stimuli": 400}}


def experiment_name(quick: bool) -> str:
    return f"{EXPERIMENT}_quick" if quick else EXPERIMENT


def base_config(quick: bool) -> dict[str, Any]:
    """The demo's training setup: small CNN on native 8x8 digits, seconds per run on a CPU core."""
    return {
        "experiment": experiment_name(quick),
        "data": {"name": "digits"},
        "model": {"name": "small_cnn", "width": 16},
        "train": {"epochs": 8 if quick else 10, "batch_size": 64, "optimizer": "adam", "lr": 0.003,
                  "weight_decay": 0.0, "schedule": "cosine", "threads": 1},
        "eval": {"n_examples": 100 if quick else 240, "attacks": eval_attacks(quick), "selfcheck_examples": 100},
    }


def eval_attacks(quick: bool) -> list[dict[str, Any]]:
    """PGD and FGSM curves, a noise curve, and the strong attacks behind the headline number.

    Full AutoAttack (four attacks, nine targets each) does not fit the demo's budget; APGD-CE plus APGD-T
    at a few strengths does, and the report says so.
    """
    linf = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2]
    strong_eps = [0.0, threat_model("digits").eps]
    steps = 10 if quick else 25
    attacks = [
        {"name": "fgsm", "eps": linf},
        {"name": "pgd_linf", "eps": linf, "params": {"steps": 10}},
        {"name": "apgd_ce_linf", "eps": strong_eps, "params": {"steps": steps}},
        {"name": "apgd_t_linf", "eps": strong_eps, "params": {"steps": steps}},
    ]
    if not quick:
        attacks.append({"name": "noise_gaussian", "eps": [0.0, 0.1, 0.2, 0.3, 0.5]})
    return attacks


def condition_config(condition: Condition, seed: int, out_dir: Path, quick: bool) -> RunConfig:
    data = base_config(quick)
    data["train"].update(condition.train)
    data.update({"name": condition.name, "seed": seed, "out_dir": str(out_dir),
                 "regularizers": condition.regularizers, "defences": condition.defences})
    return parse_config(data)


def _train_one(config_dict: dict[str, Any]) -> tuple[str, int, float]:
    """Worker: one run, single-threaded (the workers share the machine's cores)."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    config = parse_config(config_dict)
    train(config, progress=False)
    return config.name, config.seed, time.perf_counter() - start


def run_demo(out_dir: str | Path = "runs", quick: bool = False, seeds: int | None = None,
             workers: int | None = None, progress: bool = True) -> Path:
    """Run the embedded study and write ``summary.json`` and ``report.md``; returns the experiment folder.

    Runs are spread over ``workers`` processes (default: one per CPU core, at most 4), each with one
    thread. Finished runs are skipped, so an interrupted demo resumes where it stopped.
    """
    out_dir = Path(out_dir)
    n_seeds = seeds or 3  # 5 seeds do not fit the 5-minute budget on 2 cores; --seeds 5 runs them
    conditions = [c for c in CONDITIONS if c.name in QUICK] if quick else CONDITIONS
    configs = [condition_config(c, s, out_dir, quick) for c in conditions for s in range(n_seeds)]
    workers = workers or min(4, os.cpu_count() or 1)
    if workers == 1:
        done = map(_train_one, [c.to_dict() for c in configs])
    else:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        futures = [pool.submit(_train_one, c.to_dict()) for c in configs]
        done = (f.result() for f in as_completed(futures))
    try:
        for i, (name, seed, seconds) in enumerate(done, 1):
            if progress:
                print(f"[{i}/{len(configs)}] {name} seed {seed}: {seconds:.1f} s", file=sys.stderr)
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    experiment_dir = out_dir / experiment_name(quick)
    summary = summarize(experiment_dir)
    write_json(experiment_dir / "summary.json", summary)
    write_text(experiment_dir / "summary.md", summary_table(summary))
    # Alignment of every run with the simulated EEG, then the report (reads only run folders and study.json).
    run_study(experiment_dir, STUDY_RECORDING, layers=["conv3"], progress=progress)
    write_report(experiment_dir)
    return experiment_dir
