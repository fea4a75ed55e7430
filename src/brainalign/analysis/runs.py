"""Finished run folders read back for analysis: result.json, per-example flags, roles and baselines.

A *condition* is a run's ``name`` (one arm of a study); its runs differ by seed. Each condition has a
*role*, read from its result.json:

- ``baseline``: the reference arm (by default the condition named ``baseline``, else the only condition
  without regularizers or defences);
- ``defence``: trains with a defence (adversarial training, TRADES, noise augmentation): a robustness
  reference, not a brain-inspired method;
- ``control``: a control regularizer (decorrelation, pixel_continuous, ...) or a data-driven regularizer
  with shuffled or random targets;
- ``regularizer``: a brain-inspired regularizer with its real targets;
- ``other``: neither regularizers nor defences, but not the baseline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brainalign import results
from brainalign.errors import DataError

ROLES = ("baseline", "regularizer", "control", "defence", "other")


def flag_key(attack_key: str, eps: float) -> str:
    """The name of one attack strength's per-example outcomes in flags.safetensors (as evaluate writes it)."""
    return f"{attack_key}@{float(eps):g}"


# Where evaluation writes the output of brainalign.robustness.run_selfchecks in result.json (and an older name).
SELF_CHECK_KEYS = ("selfchecks", "self_checks")


@dataclass
class Run:
    """One finished run folder: its result.json and, loaded on first use, its per-example flags."""

    path: Path
    result: dict[str, Any]
    _flags: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _loaded: tuple[Any, Any, Any] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.result.get("name", self.path.name.split("__seed")[0]))

    @property
    def seed(self) -> int:
        return int(self.result.get("seed", 0))

    @property
    def failed(self) -> bool:
        """A failed seed: its clean accuracy is not a finite number (training diverged; NaN is saved as null).
        Surfaces that leave it out of a mean must count it (``failed_runs``), never drop it silently."""
        clean = self.result.get("clean_accuracy")
        return not isinstance(clean, (int, float)) or not np.isfinite(clean)

    @property
    def robustness(self) -> dict[str, dict[str, Any]]:
        return self.result.get("robustness") or {}

    @property
    def regularizers(self) -> list[dict[str, Any]]:
        return list(self.result.get("regularizers") or [])

    @property
    def defences(self) -> list[dict[str, Any]]:
        return list(self.result.get("defences") or [])

    @property
    def self_checks(self) -> dict[str, Any] | None:
        """The run's self-check summary {"reliable", "reasons", "checks"} (``brainalign.robustness.run_selfchecks``
        as evaluate writes it), or None when none were run."""
        for key in SELF_CHECK_KEYS:
            value = self.result.get(key)
            if isinstance(value, dict) and "reliable" in value:
                return value
        return None

    @property
    def simulated(self) -> bool:
        """Whether any data this run trained with were simulated (result.json or its targets say so)."""
        targets = self.result.get("regularization_targets") or []
        return bool(self.result.get("simulated_data")) or any(
            isinstance(t, dict) and t.get("simulated") for t in targets)

    @property
    def flags(self) -> dict[str, np.ndarray]:
        """Per-example outcomes (True = still correct) keyed ``"<attack key>@<eps>"``; empty if not saved."""
        if self._flags is None:
            path = self.path / results.FLAGS
            if path.exists():
                from brainalign.io import load_checkpoint

                tensors, _ = load_checkpoint(path)
                self._flags = {k: v.numpy().astype(bool) for k, v in tensors.items()}
            else:
                self._flags = {}
        return self._flags

    def outcomes(self, attack_key: str, eps: float) -> np.ndarray | None:
        return self.flags.get(flag_key(attack_key, eps))

    @property
    def clean_accuracy(self) -> float:
        """Clean test accuracy (NaN when result.json has none)."""
        value = self.result.get("clean_accuracy")
        return float("nan") if value is None else float(value)

    @property
    def headline_accuracy(self) -> float | None:
        """Robust accuracy under the one headline attack (:mod:`brainalign.headline`), or None if not run."""
        from brainalign.headline import headline_accuracy

        return headline_accuracy(self)

    @property
    def metrics(self) -> list[dict[str, float]]:
        """metrics.csv: one row per epoch (loss, regularizer terms, learning rate, accuracies)."""
        return results.read_metrics(self.path / results.METRICS)

    def load(self) -> tuple[Any, Any, Any]:
        """(config, data splits, trained model in eval mode on the CPU), built from the run folder; cached."""
        if self._loaded is None:
            from brainalign.train import load_trained_model

            self._loaded = load_trained_model(self.path)
        return self._loaded

    @property
    def config(self):
        """The run's validated :class:`~brainalign.config.RunConfig`, as it was trained."""
        return self.load()[0]

    @property
    def data(self):
        """The run's :class:`~brainalign.data.DataSplits` (train / val / test, the same split as in training)."""
        return self.load()[1]

    @property
    def model(self):
        """The trained model (eval mode, CPU): ``model(x)`` takes images in [0, 1] and returns logits."""
        return self.load()[2]

    def curve(self, attack_key: str) -> tuple[list[float], list[float]] | None:
        """(eps, accuracy) of one attack, or None when this run was not attacked with it."""
        entry = self.robustness.get(attack_key)
        if not entry or not entry.get("eps"):
            return None
        return [float(e) for e in entry["eps"]], [float("nan") if a is None else float(a) for a in entry["accuracy"]]


def load_run(path: str | Path) -> Run:
    """One finished run folder as a :class:`Run`: results, per-example outcomes, metrics, and (loaded on
    first use) its config, data splits and trained model.

    Example::

        import brainalign
        run = brainalign.load_run("runs/demo/baseline__seed0")
        run.clean_accuracy, run.headline_accuracy
        logits = run.model(run.data.test.images[:8])
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; give a run folder such as runs/demo/baseline__seed0")
    if not (path / results.CONFIG).is_file():
        raise DataError(f"{path}: not a run folder (no {results.CONFIG})")
    return Run(path, results.read_result(path))


def load_runs(source: str | Path | Iterable[Run]) -> list[Run]:
    """The finished runs of an experiment folder (or a list of ``Run`` as it is), sorted by name and seed."""
    if not isinstance(source, (str, Path)):
        runs = list(source)
        if not runs:
            raise DataError("no runs given")
        return runs
    root = Path(source)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    runs = [Run(path, results.read_result(path)) for path in results.find_runs(root)]
    if not runs:
        raise DataError(f"{root}: no finished runs (no run folder with a result.json below it); "
                        f"train some first with `brainalign train` or `brainalign demo`")
    return sorted(runs, key=lambda r: (r.name, r.seed, str(r.path)))


def failed_runs(runs: Iterable[Run]) -> dict[str, list[int]]:
    """Failed seeds (``Run.failed``) per condition, for the sentence that says what a table left out."""
    out: dict[str, list[int]] = {}
    for run in runs:
        if run.failed:
            out.setdefault(run.name, []).append(run.seed)
    return {name: sorted(seeds) for name, seeds in out.items()}


def by_condition(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs grouped by condition name, each group sorted by seed; conditions in first-seen order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    return {name: sorted(group, key=lambda r: r.seed) for name, group in groups.items()}


def _is_control_regularizer(name: str) -> bool:
    from brainalign.registry import REGULARIZERS

    try:
        return bool(getattr(REGULARIZERS.info(name), "is_control", False))
    except Exception:  # a regularizer this installation does not know: judge by its spec only
        return False


def role(run: Run, baseline: str | None) -> str:
    """The role of a run's condition (see the module docstring)."""
    if baseline is not None and run.name == baseline:
        return "baseline"
    if run.defences:
        return "defence"
    regs = run.regularizers
    if not regs:
        return "other"
    if any(r.get("control", "none") != "none" or _is_control_regularizer(str(r.get("name"))) for r in regs):
        return "control"
    return "regularizer"


def find_baseline(runs: Iterable[Run], baseline: str | None = None) -> str | None:
    """The baseline condition: ``baseline`` if given (it must exist), else the condition named "baseline",
    else the only condition with neither regularizers nor defences; None when there is no such condition."""
    groups = by_condition(runs)
    if baseline is not None:
        if baseline not in groups:
            raise DataError(f"baseline condition {baseline!r} has no finished runs; conditions: {', '.join(groups)}")
        return baseline
    if "baseline" in groups:
        return "baseline"
    plain = [name for name, group in groups.items() if not group[0].regularizers and not group[0].defences]
    return plain[0] if len(plain) == 1 else None


def attack_keys(runs: Iterable[Run]) -> list[str]:
    """Every attack key found in any run, in first-seen order."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.robustness))
    return list(keys)


# Headline numbers come from the strongest attack that was run, never from PGD alone when a stronger one
# exists (AutoAttack, then APGD-T, then APGD-CE, then PGD with the most steps), Linf before L2.
_PREFERRED = ("autoattack_linf", "apgd_ce_t_linf", "apgd_t_linf", "apgd_ce_linf", "pgd_linf",
              "autoattack_l2", "apgd_ce_t_l2", "apgd_t_l2", "apgd_ce_l2", "pgd_l2", "fgsm")
PGD_ATTACKS = ("pgd_linf", "pgd_l2")


def headline_attack(runs: Iterable[Run], attack: str | None = None,
                    preferred: tuple[str, ...] = _PREFERRED) -> str | None:
    """The attack key a summary leads with: ``attack`` if given (it must exist), else the first of
    ``preferred`` that was run (with the most steps among its keys), else the first key; None if no run
    was attacked."""
    runs = list(runs)
    keys = attack_keys(runs)
    if attack is not None:
        if attack not in keys:
            raise DataError(f"attack {attack!r} is in no run's result.json; attacks: {', '.join(keys) or 'none'}")
        return attack
    if not keys:
        return None
    entries = {k: next(r.robustness[k] for r in runs if k in r.robustness) for k in keys}
    for name in preferred:
        matching = [k for k in keys if entries[k].get("attack", k.split("[")[0]) == name]
        if matching:
            return max(matching, key=lambda k: (int((entries[k].get("params") or {}).get("steps", 0) or 0),
                                                -keys.index(k)))
    return keys[0]
