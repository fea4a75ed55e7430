"""Statistics over runs: means with confidence intervals, paired tests, effect sizes."""

from brainalign.analysis.stats import mean_ci

__all__ = ["mean_ci"]
