"""Evaluation beyond single attacks: robustness metrics and the self-checks that guard against weak
evaluation and gradient masking."""

from brainalign.robustness.metrics import (
    accuracy,
    accuracy_from_distances,
    auc,
    correct_flags,
    high_strengths,
    mcnemar,
    median_minimal_perturbation,
    robustness_gain,
)
from brainalign.robustness.minimal import minimal_curve
from brainalign.robustness.selfchecks import CHECKS, run_selfchecks

__all__ = [
    "CHECKS",
    "accuracy",
    "accuracy_from_distances",
    "auc",
    "correct_flags",
    "high_strengths",
    "mcnemar",
    "median_minimal_perturbation",
    "minimal_curve",
    "robustness_gain",
    "run_selfchecks",
]
