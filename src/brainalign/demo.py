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

from brainalign import results
from brainalign.analysis import mean_ci
from brainalign.config import RunConfig, parse_config
from brainalign.io import write_json, write_text
from brainalign.train import train

EXPERIMENT = "demo"


@dataclass(frozen=True)
class Condition:
    """One arm of the study: a name and the regularizers/defences it adds to the baseline config."""

    name: str
    description: str
    regularizers: list[dict[str, Any]] = field(default_factory=list)
    defences: list[dict[str, Any]] = field(default_factory=list)


CONDITIONS: list[Condition] = [
    Condition("baseline", "cross-entropy only"),
]

# The headline robustness number of the summary: attack key and strength.
HEADLINE = ("pgd_linf[steps=10]", 0.1)


def experiment_name(quick: bool) -> str:
    return f"{EXPERIMENT}_quick" if quick else EXPERIMENT


def base_config(quick: bool) -> dict[str, Any]:
    """The demo's training setup: small CNN on native 8x8 digits, seconds per run on a CPU core."""
    return {
        "experiment": experiment_name(quick),
        "data": {"name": "digits"},
        "model": {"name": "small_cnn", "width": 16},
        "train": {"epochs": 8 if quick else 20, "batch_size": 64, "optimizer": "adam", "lr": 0.003,
                  "weight_decay": 0.0, "schedule": "cosine", "threads": 1},
        "eval": {"suite": "quick", "n_examples": 200 if quick else None},
    }


def condition_config(condition: Condition, seed: int, out_dir: Path, quick: bool) -> RunConfig:
    data = base_config(quick)
    data.update({"name": condition.name, "seed": seed, "out_dir": str(out_dir),
                 "regularizers": condition.regularizers, "defences": condition.defences})
    return parse_config(data)


def summarize(experiment_dir: Path, headline: tuple[str, float] = HEADLINE) -> dict[str, Any]:
    """One entry per condition: mean and 95% CI over seeds of clean and headline robust accuracy."""
    by_condition: dict[str, list[dict[str, Any]]] = {}
    for run in results.find_runs(experiment_dir):
        result = results.read_result(run)
        by_condition.setdefault(result["name"], []).append(result)
    key, eps = headline
    conditions = {}
    for name, runs in by_condition.items():
        robust = []
        for r in runs:
            entry = r["robustness"].get(key)
            robust.append(entry["accuracy"][entry["eps"].index(eps)] if entry and eps in entry["eps"] else None)
        conditions[name] = {
            "n_seeds": len(runs),
            "seeds": sorted(r["seed"] for r in runs),
            "clean_accuracy": mean_ci([r["clean_accuracy"] for r in runs]),
            "robust_accuracy": mean_ci(robust),
            "simulated_data": any(r.get("simulated_data") for r in runs),
        }
    return {"experiment": experiment_dir.name, "headline_attack": key, "headline_eps": eps,
            "eps_units": "native [0, 1] pixel units", "conditions": conditions}


def _fmt(ci: dict[str, float]) -> str:
    if ci["n"] < 2:
        return f"{ci['mean']:.3f}"
    return f"{ci['mean']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def write_report_md(summary: dict[str, Any], path: Path) -> None:
    lines = ["# brainalign demo", ""]
    simulated = [n for n, c in summary["conditions"].items() if c["simulated_data"]]
    if simulated:
        lines += [f"> **Simulated brain data** in: {', '.join(simulated)}. No real neural recordings were used.", ""]
    else:
        lines += ["> No neural data were used in these conditions.", ""]
    lines += [
        "Data: scikit-learn digits (real images, 8x8). Model: small CNN. "
        f"Headline: accuracy under `{summary['headline_attack']}` at eps {summary['headline_eps']} "
        f"({summary['eps_units']}). Mean [95% CI] over seeds.",
        "",
        "| condition | seeds | clean accuracy | robust accuracy |",
        "|---|---|---|---|",
    ]
    for name, c in summary["conditions"].items():
        lines.append(f"| {name} | {c['n_seeds']} | {_fmt(c['clean_accuracy'])} | {_fmt(c['robust_accuracy'])} |")
    write_text(path, "\n".join(lines) + "\n")


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
    n_seeds = seeds or (3 if quick else 5)
    configs = [condition_config(c, s, out_dir, quick) for c in CONDITIONS for s in range(n_seeds)]
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
    write_report_md(summary, experiment_dir / "report.md")
    return experiment_dir
