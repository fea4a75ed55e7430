"""The embedded study: every condition x several seeds on scikit-learn's digits, then a summary and report.

Everything runs offline on data that ships with the install. Brain data in the demo is SIMULATED
(``brainalign.neural``'s simulated recordings of the digit images); the report says so at the top.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from brainalign import __version__, console, results
from brainalign.analysis.runs import by_condition, load_runs
from brainalign.analysis.summary import STORED_CHECK, summarize, summary_table
from brainalign.config import RunConfig, parse_config, read_yaml
from brainalign.errors import BrainAlignError, ConfigError
from brainalign.headline import HEADLINE_ATTACKS, headline_attack_specs
from brainalign.io import read_json, write_json, write_text
from brainalign.reports import write_report
from brainalign.study import align_run, run_study
from brainalign.train import train
from brainalign.tune import MANIFEST as TUNING_MANIFEST

EXPERIMENT = "demo"


@dataclass(frozen=True)
class Condition:
    """One arm of the study: a name and the regularizers/defences it adds to the baseline config."""

    name: str
    description: str
    regularizers: list[dict[str, Any]] = field(default_factory=list)
    defences: list[dict[str, Any]] = field(default_factory=list)
    train: dict[str, Any] = field(default_factory=dict)  # training settings that differ from the baseline's
    tuned: dict[str, Any] = field(default_factory=dict)  # how the setting was chosen (method, setting, status)


# Every condition runs at the settings selected by `brainalign tune configs/sweep_tune_digits.yaml` (the one
# rule of brainalign.tune, on the validation split): <method>.yaml and manifest.json in brainalign/tuned/, package
# data, so an installed wheel has them (a wheel installs as files, so the resource is a real folder).
TUNED_DIR = Path(str(resources.files("brainalign") / "tuned"))
# --quick keeps the core comparison (baseline, pixel and neural similarity) so that it runs in about a minute.
QUICK = ("baseline", "pixel_similarity", "neural_similarity_it")
QUICK_EPOCHS = 8  # --quick is a smoke run of the pipeline: fewer epochs than the tuned schedule
# The study relates every run's predictivity of simulated EEG to its robustness gain (400 stimuli keep it fast).
# The study's recording is calibrated to THINGS-EEG2's noise ceiling and predictivity ranges (preset
# "things_eeg2", docs/neural-data.md), so its sensitivity is as hard as the real data's; 400 stimuli keep it fast.
STUDY_RECORDING = {"name": "sim_eeg", "options": {"seed": 0, "n_stimuli": 400, "preset": "things_eeg2"}}
STUDY_LAYERS = ("conv3",)

# How the demo's runs execute (not what they compute): one thread per worker; channels_last (``base_config``);
# no checkpoint in the first minute (a demo run trains in 2-15 s, so a kill reruns it from the start, and dcca's
# 60 MB checkpoints are not written 15 times a run).
RUN_OPTIONS = {"threads": 1, "channels_last": True, "checkpoint_every_s": 60.0}
SEEDS = 5
QUICK_SEEDS = 3
# Evaluation: the headline attack (at the headline eps only) and PGD-10's curve (0, 0.05, 0.1, 0.2) on 240 test
# images. The self-checks (re-attacking the first 60 test images) run on one seed per condition, seed 0. The
# headline check (APGD-T on all 9 targets, FAB-T and Square on 16 sampled images that survived the headline;
# 20-30 s a run here, Square's 5,000 queries the most of it) is the "stored check": `brainalign demo
# --check` runs it on seed 0 of the baseline, every regularizer and every defence (not the controls) and writes
# headline_check.json, committed in brainalign/tuned/ beside the tuning manifest; a plain demo cites that file
# for every condition whose model and headline config are unchanged (by digest), and says which are not. A
# check tests how a method's models are evaluated (gradient masking, a weak attack), a property of the method
# and its training, not of one run.
EVAL_EXAMPLES, QUICK_EVAL_EXAMPLES = 240, 100
SELFCHECK_EXAMPLES = 60
CHECKED_SEEDS = (0,)
HEADLINE_CHECK_SAMPLE = 16
HEADLINE_CHECK_ROLES = ("baseline", "regularizer", "defence")
CHECK_COMMAND = "brainalign demo --check"


def _sections(path: Path) -> list[Any]:
    config = read_yaml(path)
    return [config.get(k) for k in ("train", "regularizers", "defences")]


def load_conditions(tuned_dir: str | Path = TUNED_DIR) -> tuple[list[Condition], dict[str, Any]]:
    """The demo's conditions from a tuning output folder, and its train section (the tuned schedule).

    Regularizers and defences run at their selected setting under their method name; each control twice:
    ``<control>_own_best`` (its own selected setting) and ``<control>_matched`` (at its regularizer's
    selected weight, layers and pairs); where the two coincide, once, as ``<control>_matched``.
    """
    tuned_dir = Path(tuned_dir)
    try:
        manifest = read_json(tuned_dir / TUNING_MANIFEST)
    except BrainAlignError:
        raise ConfigError(f"{tuned_dir / TUNING_MANIFEST}: no tuning manifest; run `brainalign tune "
                          f"configs/sweep_tune_digits.yaml --out {tuned_dir}` first") from None
    conditions, schedule = [], None
    for method, entry in manifest["methods"].items():
        selected = entry["selected"]
        files = [(method, manifest["configs"][method], selected)]
        if entry["role"] == "control":
            files = [(f"{method}_own_best", manifest["configs"][method], selected)]
            if f"{method}_matched" in manifest["configs"]:
                files.append((f"{method}_matched", manifest["configs"][f"{method}_matched"],
                              {"setting": "matched", "status": "matched"}))
        if len(files) == 2 and _sections(tuned_dir / files[0][1]) == _sections(tuned_dir / files[1][1]):
            # The control's own best is its matched setting: one condition, named for both.
            files = [(f"{method}_matched", files[1][1], {**selected, "status": f"matched = own best "
                                                                              f"[{selected['status']}]"})]
        for name, file, sel in files:
            config = read_yaml(tuned_dir / file)
            if method == "baseline":
                schedule = config["train"]
            note = f"{sel['setting']} [{sel['status']}]"
            conditions.append(Condition(
                name, f"{entry.get('description') or method}; tuned: {note}",
                regularizers=config.get("regularizers") or [], defences=config.get("defences") or [],
                train=config["train"], tuned={"method": method, "role": entry["role"], **sel}))
    if schedule is None:
        raise ConfigError(f"{tuned_dir / TUNING_MANIFEST}: the tuning has no baseline")
    return conditions, schedule


def tuning_note(tuned_dir: str | Path, conditions: list[Condition]) -> dict[str, Any]:
    """How every condition's setting was chosen: the rule, the manifest, and per condition its setting and status
    (``accepted``, ``no accepted setting (fallback: ...)``, ``matched``, ``baseline``)."""
    manifest = read_json(Path(tuned_dir) / TUNING_MANIFEST)
    return {"rule": manifest["rule"], "manifest": str(Path(tuned_dir) / TUNING_MANIFEST),
            "tuning_file": manifest.get("tuning_file"), "git_commit": manifest.get("git_commit"),
            "seeds": manifest.get("seeds"),
            "conditions": {c.name: c.tuned for c in conditions}}


def schedule_note(experiment_dir: Path, train_section: dict[str, Any]) -> dict[str, Any]:
    """The training schedule and whether the baseline converged: its final training loss per seed."""
    losses = {r.seed: r.result.get("final_train_loss") for r in by_condition(load_runs(experiment_dir))
              .get("baseline", [])}
    keep = ("epochs", "optimizer", "lr", "schedule", "batch_size", "weight_decay")
    return {**{k: train_section.get(k) for k in keep}, "baseline_final_train_loss": losses}


def experiment_name(quick: bool) -> str:
    return f"{EXPERIMENT}_quick" if quick else EXPERIMENT


def base_config(quick: bool, schedule: dict[str, Any]) -> dict[str, Any]:
    """The demo's setup: small CNN on native 8x8 digits with the tuned schedule, seconds per run on a core.
    Runs train and are attacked in channels_last memory format (``brainalign.speed``; less time here:
    ``benchmarks.bench_channels_last``); the tuning ran in the default format, and the two differ only by
    float rounding."""
    train_section = {**schedule, **RUN_OPTIONS}
    if quick:
        train_section["epochs"] = QUICK_EPOCHS
    return {
        "experiment": experiment_name(quick),
        "data": {"name": "digits"},
        "model": {"name": "small_cnn", "width": 16},
        "train": train_section,
        "eval": {"n_examples": QUICK_EVAL_EXAMPLES if quick else EVAL_EXAMPLES, "attacks": eval_attacks(quick),
                 "selfcheck_examples": SELFCHECK_EXAMPLES},
    }


def eval_attacks(quick: bool) -> list[dict[str, Any]]:
    """The headline attack (brainalign.headline: APGD-CE + APGD-T, 100 steps, at the headline eps), PGD-10
    beside it over a curve of strengths, FGSM, and a noise curve. --quick runs the headline attack with 10 steps.

    The curve has four points, half the headline eps, the headline eps and twice it: each PGD point costs 10
    steps on every image (about 0.17 s of CPU on a digits run, in one profile), so 0.02 and 0.15 were dropped."""
    linf = [0.0, 0.05, 0.1, 0.2]
    attacks = [
        {"name": "fgsm", "eps": linf},
        {"name": "pgd_linf", "eps": linf, "params": {"steps": 10}},
        *headline_attack_specs("digits", **({"steps": 10} if quick else {})),
    ]
    if not quick:
        attacks.append({"name": "noise_gaussian", "eps": [0.0, 0.1, 0.2, 0.3, 0.5]})
    return attacks


def condition_config(condition: Condition, seed: int, out_dir: Path, quick: bool,
                     schedule: dict[str, Any] | None = None, check: bool = False) -> RunConfig:
    """One run of the demo. ``check``: run the headline check on it where the demo checks (seed 0 of the
    baseline, the regularizers and the defences; never in --quick)."""
    data = base_config(quick, schedule or condition.train)
    train_section = {**condition.train, **RUN_OPTIONS}
    if quick:
        train_section["epochs"] = QUICK_EPOCHS
    data["train"].update(train_section)
    data.update({"name": condition.name, "seed": seed, "out_dir": str(out_dir),
                 "regularizers": condition.regularizers, "defences": condition.defences})
    data["eval"]["selfchecks"] = seed in CHECKED_SEEDS
    if check and not quick and seed in CHECKED_SEEDS and condition.tuned.get("role") in HEADLINE_CHECK_ROLES:
        data["eval"]["headline_check"] = HEADLINE_CHECK_SAMPLE
    return parse_config(data)


def config_digest(config: RunConfig) -> str:
    """What a stored headline check must share with a run to speak for it: everything that makes the model and
    its headline outcomes (the config, with the headline attacks alone of the eval attacks), not where the run
    is written, how often it checkpoints, the other attacks or which checks it runs."""
    data = config.to_dict()
    data.pop("out_dir", None)
    data["train"].pop("checkpoint_every_s", None)
    data["eval"]["attacks"] = [a for a in data["eval"]["attacks"] if a["name"] in HEADLINE_ATTACKS]
    for key in ("headline_check", "selfchecks", "selfcheck_examples"):
        data["eval"].pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def write_headline_check(path: Path, summary: dict[str, Any], digests: dict[str, str]) -> dict[str, Any]:
    """The demo's headline checks (per condition, as ``summarize`` sums them) with the config digest of each
    checked condition and how they were made; written to ``path`` and returned."""
    record = {"format": "brainalign.headline_check", "version": 1, "command": CHECK_COMMAND,
              "git_commit": results.git_commit(), "package_version": __version__,
              "created": time.strftime("%Y-%m-%d"), "seeds": list(CHECKED_SEEDS), "sample": HEADLINE_CHECK_SAMPLE,
              "conditions": {name: {"config_digest": digests[name], **c["headline_check"]}
                             for name, c in summary["conditions"].items()
                             if c.get("headline_check") and not c["headline_check"].get("stored")}}
    write_json(path, record)
    return record


def cite_headline_check(stored: Path, experiment_dir: Path, digests: dict[str, str]) -> dict[str, Any]:
    """Write the citation of a stored headline check into the experiment folder (where ``summarize`` reads it):
    the stored record with only the conditions whose config digest it matches, and which it does not speak
    for (``stale``: config changed since; ``missing``: never checked)."""
    record = read_json(stored) if stored.exists() else {"found": False, "conditions": {}}
    checks = record.get("conditions", {})
    citation = {**record, "cited_from": str(stored),
                "conditions": {n: c for n, c in checks.items() if digests.get(n) == c.get("config_digest")},
                "stale": sorted(n for n, c in checks.items() if n in digests and digests[n] != c.get("config_digest")),
                "missing": sorted(n for n in digests if n not in checks)}
    write_json(experiment_dir / STORED_CHECK, citation)
    return citation


def _train_one(config_dict: dict[str, Any]) -> tuple[str, int, float]:
    """Worker: one run, single-threaded (the workers share the machine's cores), then its alignment with the
    study's recording (``study.align_run``, cached in the run folder), so that the study at the end only
    aggregates instead of aligning every run in the parent while the other cores idle."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    config = parse_config(config_dict)
    run_dir = train(config, progress=False)
    align_run(run_dir, STUDY_RECORDING, STUDY_LAYERS)
    return config.name, config.seed, time.perf_counter() - start


def run_demo(out_dir: str | Path = "runs", quick: bool = False, seeds: int | None = None,
             workers: int | None = None, progress: bool = True, tuned_dir: str | Path = TUNED_DIR,
             check: bool = False) -> Path:
    """Run the embedded study and write ``summary.json`` and ``report.md``; returns the experiment folder.

    Every condition runs at its tuned setting (``tuned_dir``: src/brainalign/tuned, shipped with the package).
    Runs are spread over ``workers`` processes (default: one per CPU core, at most 4), each with one thread.
    Finished runs are skipped, so an interrupted demo resumes where it stopped.
    ``check``: run the headline check (on seed 0 of the baseline, the regularizers and the defences) and write
    it to ``headline_check.json`` in the experiment folder; otherwise the summary cites the stored one
    (``tuned_dir``/headline_check.json) for the conditions whose config it matches. Not in --quick.
    """
    if quick and check:
        raise ConfigError("--check runs the headline check on the full demo's models; drop --quick or --check")
    out_dir = Path(out_dir)
    n_seeds = seeds or (QUICK_SEEDS if quick else SEEDS)
    conditions, schedule = load_conditions(tuned_dir)
    if quick:
        conditions = [c for c in conditions if c.name in QUICK]
    configs = [condition_config(c, s, out_dir, quick, schedule, check) for c in conditions for s in range(n_seeds)]
    # Longest first, so no long run starts last while the other workers idle: adversarial training, then the
    # runs that carry the headline check, then those with the self-checks, then the rest in order.
    configs.sort(key=lambda c: (not c.defences or c.defences[0].name != "adversarial_training",
                                not c.eval.headline_check, not c.eval.selfchecks))
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
                console.LOGGER.info("[%d/%d] %s seed %d: %.1f s", i, len(configs), name, seed, seconds)
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    experiment_dir = out_dir / experiment_name(quick)
    # The headline check (full demo only): cite the stored one before summarizing, or store this run's after.
    digests = {} if quick else {c.name: config_digest(condition_config(c, CHECKED_SEEDS[0], out_dir, quick, schedule))
                                for c in conditions if c.tuned.get("role") in HEADLINE_CHECK_ROLES}
    if digests and not check:
        cite_headline_check(Path(tuned_dir) / STORED_CHECK, experiment_dir, digests)
    summary = summarize(experiment_dir)
    if digests and check:
        write_headline_check(experiment_dir / STORED_CHECK, summary, digests)
    summary["tuning"] = tuning_note(tuned_dir, conditions)
    summary["schedule"] = schedule_note(experiment_dir, configs[0].train.model_dump() if configs else schedule)
    write_json(experiment_dir / "summary.json", summary)
    write_text(experiment_dir / "summary.md", summary_table(summary))
    # The study (every run's alignment with the simulated EEG is cached by its worker), then the report (reads
    # only run folders and study.json).
    run_study(experiment_dir, STUDY_RECORDING, layers=list(STUDY_LAYERS), progress=progress)
    write_report(experiment_dir)
    return experiment_dir
