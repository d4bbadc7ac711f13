"""Paired t-test and bootstrap CI on constructed data with known answers."""

import numpy as np
import pytest
from scipy import stats

from tasks.evaluate.stats import (
    StatsError,
    bootstrap_ci,
    paired_ttest,
    significance_mark,
)


def test_paired_ttest_known_shift_is_significant_and_equals_scipy():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.7, 80)
    a, b = base + 0.05 + rng.normal(0, 0.02, 80), base
    t = paired_ttest(a, b)
    ref = stats.ttest_rel(a, b)
    assert t.statistic == pytest.approx(ref.statistic) and t.p_value == pytest.approx(ref.pvalue)
    assert t.mean_diff == pytest.approx(np.mean(a - b)) and t.mean_diff > 0
    assert t.p_value < 0.05 and t.better(0.05) and significance_mark(t, 0.05) == "*"
    rev = paired_ttest(b, a)  # same p, opposite sign: b is not "better"
    assert rev.p_value == pytest.approx(t.p_value) and rev.mean_diff < 0 and not rev.better(0.05)


def test_paired_ttest_pure_noise_is_not_significant():
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 1, 60)
    t = paired_ttest(base + rng.normal(0, 0.1, 60), base + rng.normal(0, 0.1, 60))
    assert t.p_value > 0.05 and significance_mark(t, 0.05) == ""


def test_paired_ttest_degenerate_and_bad_input():
    x = np.array([0.2, 0.4, 0.6])
    assert paired_ttest(x, x).p_value == 1.0
    assert paired_ttest(x + 0.1, x).better(0.05)  # a constant, non-zero shift
    assert paired_ttest(np.array([1.0, np.nan, 0.0, 1.0]), np.array([0.0, 1.0, 0.0, 0.0])).n == 3
    with pytest.raises(StatsError):
        paired_ttest(x, x[:2])
    with pytest.raises(StatsError):
        paired_ttest(x[:1], x[:1])


def test_bootstrap_ci_covers_mean_and_narrows_with_n():
    rng = np.random.default_rng(3)
    small, large = rng.binomial(1, 0.7, 40).astype(float), rng.binomial(1, 0.7, 1000).astype(float)
    lo, hi = bootstrap_ci(small, 1000, 0.95, seed=0)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(large, 1000, 0.95, seed=0)
    assert lo2 < 0.7 < hi2 and (hi2 - lo2) < (hi - lo) / 3
    assert bootstrap_ci(np.ones(5)) == (1.0, 1.0)
    assert bootstrap_ci(small, seed=5) == bootstrap_ci(small, seed=5)  # reproducible
