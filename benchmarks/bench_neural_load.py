"""Time and peak memory of loading a THINGS-EEG2 training file into a ``NeuralRecording``.

The script writes a THINGS-EEG2-sized ``preprocessed_eeg_training.npy`` (a pickled dict, float64
(16540, 4, 17, 100) = 0.9 GB, as the published files) into a temporary folder, then, each in a fresh
process so that peak memory is its own:

- reference: ``np.load(path, allow_pickle=True).item()``, the authors' way of reading it (acceptable here
  only because this script wrote the file; brainalign never unpickles with numpy);
- brainalign: ``load_recording("things_eeg2", path=...)``: restricted unpickler, float64 read from disk
  in chunks into float32 (stimulus, repetition, channel, time), validated, NaN channels checked.

It prints the median wall time of each over ``--repeats`` runs, their ratio (target <= 2), and the peak
resident memory growth of the brainalign load as a multiple of the float32 array (target <= 1.5).
The file is read once first so both start from a warm page cache. Linux only (/proc/self/status).

    .venv/bin/python benchmarks/bench_neural_load.py               # full size
    .venv/bin/python benchmarks/bench_neural_load.py --scale 0.1   # 1,654 conditions
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (16540, 4, 17, 100)
CHANNELS = ["P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8",
            "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2"]


def write_file(folder: Path, n_conditions: int) -> Path:
    sub = folder / "sub-01"
    sub.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((n_conditions, *SHAPE[1:]))  # float64, as published
    path = sub / "preprocessed_eeg_training.npy"
    np.save(path, {"preprocessed_eeg_data": data, "ch_names": list(CHANNELS),
                   "times": np.round(np.arange(-20, 80) / 100, 2)})
    return path


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def child(mode: str, path: str) -> None:
    """Run one load in this (fresh) process and print JSON: seconds, peak RSS growth in bytes, array bytes.

    Peak RSS is Linux's VmHWM, reset after the imports (``clear_refs`` 5); ``ru_maxrss`` would not do:
    Linux carries it over from the parent across fork and exec.
    """
    if mode == "brainalign":
        from brainalign.neural import NeuralRecording, load_recording

        # First use of pandas string columns imports pyarrow (~0.5 s): an import, not part of reading the file.
        NeuralRecording(responses=np.zeros((1, 1, 1, 1)), stimulus_ids=np.array(["a"]))
    before = _status_kib("VmRSS") * 1024
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = time.perf_counter()
    if mode == "numpy":
        array = np.load(path, allow_pickle=True).item()["preprocessed_eeg_data"]
    else:
        array = load_recording("things_eeg2", path=Path(path).parent).responses
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") * 1024
    print(json.dumps({"seconds": seconds, "peak_growth": peak - before, "nbytes": int(array.nbytes),
                      "dtype": str(array.dtype), "shape": list(array.shape)}))


def run(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 16,540 conditions (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file (default: a temp folder)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    n = max(2, int(round(SHAPE[0] * args.scale)))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = write_file(Path(tmp), n)
        size = path.stat().st_size
        with open(path, "rb") as f:  # warm the page cache for both contenders
            while f.read(64 << 20):
                pass
        results: dict[str, list[dict]] = {"numpy": [], "brainalign": []}
        for _ in range(args.repeats):
            for mode in results:
                results[mode].append(run(mode, path))
    f32 = n * int(np.prod(SHAPE[1:])) * 4
    t_np = statistics.median(r["seconds"] for r in results["numpy"])
    t_ba = statistics.median(r["seconds"] for r in results["brainalign"])
    m_np = statistics.median(r["peak_growth"] for r in results["numpy"])
    m_ba = statistics.median(r["peak_growth"] for r in results["brainalign"])
    shape = results["brainalign"][0]["shape"]
    print(f"THINGS-EEG2 training file: {n} x 4 x 17 x 100 float64, {size / 2**30:.2f} GiB on disk; "
          f"float32 array {f32 / 2**30:.2f} GiB; median of {args.repeats} fresh processes")
    print(f"  np.load(allow_pickle=True).item(): {t_np:7.2f} s   peak RSS growth {m_np / 2**30:.2f} GiB "
          f"({m_np / f32:.2f} x float32)")
    print(f"  load_recording('things_eeg2'):      {t_ba:7.2f} s   peak RSS growth {m_ba / 2**30:.2f} GiB "
          f"({m_ba / f32:.2f} x float32)   -> {results['brainalign'][0]['dtype']} {shape}")
    print(f"  time ratio brainalign / np.load: {t_ba / t_np:.2f}  (target <= 2.0)")
    print(f"  peak memory / float32 array:     {m_ba / f32:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
