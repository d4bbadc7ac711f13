"""Significance between configurations: paired t-tests and bootstrap confidence intervals over lesions.

Both configurations caption the same lesions, so their per-lesion scores are paired; the paper reports a
paired t-test (scipy's ``ttest_rel``) for its "*" marks. Confidence intervals resample lesions with
replacement (scipy's ``bootstrap``, percentile method: robust when scores are 0/1 or nearly constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


class StatsError(ValueError):
    """Inputs a test cannot use (unequal lengths, too few pairs)."""


@dataclass(frozen=True)
class PairedTest:
    mean_diff: float  # mean of (a - b): > 0 when a scores higher
    statistic: float
    p_value: float  # two-sided
    n: int

    def better(self, alpha: float) -> bool:
        """a is significantly better than b (two-sided test at ``alpha``, positive mean difference)."""
        return self.mean_diff > 0 and self.p_value < alpha


def paired_ttest(a, b) -> PairedTest:
    """Paired t-test of per-lesion scores a vs b (NaN pairs dropped). Identical scores give p = 1."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise StatsError(f"paired scores need equal 1-D shapes, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 2:
        raise StatsError(f"a paired t-test needs at least 2 pairs, got {len(a)}")
    diff = a - b
    if np.allclose(diff, diff[0]):  # zero variance: t undefined; no evidence unless the shift is non-zero
        return PairedTest(float(diff.mean()), float("nan"), 1.0 if diff[0] == 0 else 0.0, len(a))
    res = stats.ttest_rel(a, b)
    return PairedTest(float(diff.mean()), float(res.statistic), float(res.pvalue), len(a))


def bootstrap_ci(values, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-lesion ``values`` (NaN dropped)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1 or np.all(v == v[0]):
        return float(v[0]), float(v[0])
    res = stats.bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=level, method="percentile",
                          rng=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def significance_mark(test: PairedTest | None, alpha: float) -> str:
    """'*' when the row's configuration is significantly better than the one it was compared with."""
    return "*" if test is not None and test.better(alpha) else ""
