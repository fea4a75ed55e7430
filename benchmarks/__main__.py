"""Run every benchmark in turn: ``python -m benchmarks`` (or ``make bench``).

Each benchmark reports ratios against a reference measured in the same run (plain PyTorch step,
torchattacks, scikit-learn, np.load, sequential runs); none is a timed test.
"""

import importlib
import sys

MODULES = [
    "bench_train_step",
    "bench_channels_last",
    "bench_pgd",
    "bench_apgd",
    "bench_regularizers",
    "bench_adversarial_training",
    "bench_predictivity",
    "bench_neural_load",
    "bench_encoder",
    "bench_sweep",
    "bench_demo",
    "bench_scale",
]

if __name__ == "__main__":
    for name in MODULES:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        module.main([])
    sys.exit(0)
