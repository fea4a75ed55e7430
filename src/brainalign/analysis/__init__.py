"""Statistics over runs: means with confidence intervals, paired tests, effect sizes, comparisons.

- ``stats``: pure functions of arrays, from scipy.stats and statsmodels (CIs, McNemar, BCa bootstrap, Holm / BH,
  correlation, MixedLM) plus what they lack (hierarchical bootstrap, partial correlation, Cohen's h).
- ``runs``: finished run folders read back as ``Run`` records (result.json + per-example flags), roles and
  baselines.
- ``comparisons``: gains over the baseline, paired tests against it, structure-specific gains of a
  regularizer over its matched controls, and the PGD-versus-strong-attack check.
"""

from brainalign.analysis.comparisons import (
    matched_controls,
    paired_difference,
    paired_tests,
    run_gain,
    strong_attack_check,
    structure_specific_gains,
)
from brainalign.analysis.runs import Run, by_condition, find_baseline, headline_attack, load_runs
from brainalign.analysis.stats import (
    adjust_pvalues,
    benjamini_hochberg,
    cohens_h,
    correlation,
    hierarchical_bootstrap,
    high_eps_gain,
    holm,
    mcnemar,
    mean_ci,
    mixed_model,
    paired_bootstrap,
    partial_correlation,
    pooled_mcnemar,
)

__all__ = [
    "Run", "by_condition", "find_baseline", "headline_attack", "load_runs", "matched_controls", "paired_difference",
    "paired_tests", "run_gain", "strong_attack_check", "structure_specific_gains",
    "adjust_pvalues", "benjamini_hochberg", "cohens_h", "correlation", "high_eps_gain", "holm",
    "mcnemar", "mean_ci", "paired_bootstrap", "pooled_mcnemar", "hierarchical_bootstrap", "mixed_model",
    "partial_correlation",
]
