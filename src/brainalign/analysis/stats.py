"""Small, pure statistics helpers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean and Student-t confidence interval over independent values (e.g. seeds).

    With one value the interval is undefined (NaN bounds, written as null in JSON).
    """
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": 1}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}
