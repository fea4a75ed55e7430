"""How much a Ray Tune sweep adds per trial: 8 quick digits trials, one after another in one process vs. a sweep.

    .venv/bin/python benchmarks/bench_sweep.py [--epochs 5] [--trials 8] [--concurrent 2]

Prints the time of the 8 trials run one after another in this process (``train`` with one thread each),
Ray's start-up, and the sweep's time without the start-up, with ``max_concurrent`` = 1 (the engine's own
cost per trial: worker start-up, imports, scheduling, reporting) and = ``--concurrent`` (what a user gets on
this machine). The target: sweep time minus start-up <= 1.3 x the sequential time. Results depend on what
else runs on the machine; the script prints the load average next to the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import yaml


class CpuMeter:
    """CPU seconds (user + system) used by this process and all its descendants (Ray's processes) meanwhile.

    Linux only (reads /proc). A thread samples once a second, so a process that exits is counted up to its
    last sample; the thread's own CPU is subtracted. Other jobs on the machine stretch wall time much more
    than CPU time, so the CPU ratio is the steadier measure of what the engine adds.
    """

    def __init__(self):
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")

    def _sample(self, initial: bool = False) -> None:
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / self._tick
        mine, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            pid = frontier.pop()
            for child, parent in parents.items():
                if parent == pid and child not in mine:
                    mine.add(child)
                    frontier.append(child)
        for pid in mine & cpu.keys():
            self.first.setdefault(pid, cpu[pid] if initial else 0.0)  # a process born meanwhile counts from 0
            self.last[pid] = cpu[pid]

    def _run(self) -> None:
        start = time.thread_time()
        while not self._stop.wait(1.0):
            self._sample()
        self.own = time.thread_time() - start  # the meter's own CPU, not the workload's

    def __enter__(self) -> CpuMeter:
        self._sample(initial=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = sum(self.last[p] - self.first[p] for p in self.last) - self.own


def sweep_file(folder: Path, experiment: str, epochs: int, trials: int, concurrent: int) -> Path:
    seeds = list(range(trials // 2))
    data = {
        "experiment": experiment,
        "out_dir": str(folder / "runs"),
        "base": {
            "model": {"name": "small_cnn", "width": 16},
            "train": {"epochs": epochs, "optimizer": "adam", "lr": 0.003, "weight_decay": 0.0, "threads": 1},
            "eval": {"n_examples": 200, "attacks": [{"name": "pgd_linf", "eps": [0.0, 0.1], "params": {"steps": 10}}]},
        },
        "grid": {"seed": seeds, "train.lr": [0.003, 0.01]},
        "sweep": {"max_concurrent": concurrent, "cpus_per_trial": 1, "retries": 1},
    }
    path = folder / f"{experiment}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--trials", type=int, default=8, help="an even number (seeds x 2 learning rates)")
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args(argv)

    import ray
    import torch

    from brainalign.sweep import load_sweep, run_sweep
    from brainalign.train import train

    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="bench_sweep-"))
    try:
        sequential = sweep_file(folder, "sequential", args.epochs, args.trials, 1)
        trials = load_sweep(sequential).trials
        train(trials[0].config.model_copy(update={"out_dir": str(folder / "warmup")}), progress=False)  # imports
        with CpuMeter() as cpu:
            start = time.perf_counter()
            for trial in trials:
                train(trial.config, progress=False)
            t_seq = time.perf_counter() - start
        c_seq = cpu.seconds

        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        t_init = time.perf_counter() - start
        timings = {}
        for concurrent in sorted({1, args.concurrent}):
            path = sweep_file(folder, f"ray_c{concurrent}", args.epochs, args.trials, concurrent)
            with CpuMeter() as cpu:
                start = time.perf_counter()
                result = run_sweep(path, progress=False)
                seconds = time.perf_counter() - start
            timings[concurrent] = (seconds, cpu.seconds)
            assert result.complete, [(t.name, t.status, t.error) for t in result.trials]
        ray.shutdown()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"(1 / 5 / 15 min)")
    print(f"{args.trials} trials of {args.epochs} epochs, one after another in one process: wall {t_seq:6.1f} s, "
          f"CPU {c_seq:6.1f} s")
    print(f"Ray start-up (ray.init): wall {t_init:.1f} s")
    for concurrent, (seconds, cpu_s) in timings.items():
        print(f"sweep, max_concurrent={concurrent}, without start-up: wall {seconds:6.1f} s, CPU {cpu_s:6.1f} s "
              f"(all Ray processes)  wall ratio {seconds / t_seq:.2f} (target <= 1.30)  CPU ratio {cpu_s / c_seq:.2f}  "
              f"engine CPU {(cpu_s - c_seq) / args.trials:+.1f} s per trial")


if __name__ == "__main__":
    main()
