"""Bootstrap intervals, paired tests and intervals over training seeds, on known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from highlightzoo.errors import MetricInputError
from highlightzoo.metrics import aggregate_seeds, bootstrap_ci, paired_test


def test_bootstrap_ci_matches_the_normal_interval_for_a_large_sample():
    values = np.random.default_rng(0).normal(loc=0.3, scale=0.1, size=2000)
    low, high = bootstrap_ci(values, n_resamples=4000)
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert low < values.mean() < high
    assert low == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.15 * half)


def test_bootstrap_ci_is_seeded_attribute_access_and_narrows_with_confidence():
    values = np.random.default_rng(1).random(50)
    ci = bootstrap_ci(values, n_resamples=2000, seed=3)
    assert ci == bootstrap_ci(values, n_resamples=2000, seed=3)
    assert ci != bootstrap_ci(values, n_resamples=2000, seed=4)
    assert (ci.low, ci.high) == tuple(ci)
    narrow = bootstrap_ci(values, confidence=0.5, n_resamples=2000, seed=3)
    assert ci.low < narrow.low < narrow.high < ci.high
    bca = bootstrap_ci(values, n_resamples=2000, method="BCa")
    assert bca.low < values.mean() < bca.high


def test_bootstrap_ci_of_equal_values_is_a_point():
    assert bootstrap_ci([0.4, 0.4, 0.4]) == (0.4, 0.4)


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ([0.1, np.nan, 0.3], {}, "non-finite"),
        ([0.1], {}, "at least 2"),
        ([0.1, 0.2], {"confidence": 1.0}, "confidence"),
        (["a", "b"], {}, "real numbers"),
        ([0.1, 0.2], {"confidence": "0.9"}, "confidence must be a finite number in \\(0, 1\\)"),
        # scipy's own ValueErrors before
        ([0.1, 0.2], {"n_resamples": 0}, "n_resamples must be an int >= 1, got 0"),
        ([0.1, 0.2], {"seed": -1}, "seed must be an int >= 0, got -1"),
        ([0.1, 0.2], {"method": "bootstrap"}, "unknown bootstrap method 'bootstrap'"),
    ],
)
def test_bootstrap_ci_bad_input(values, kwargs, match):
    with pytest.raises(MetricInputError, match=match):
        bootstrap_ci(values, **kwargs)


def test_paired_test_finds_a_clear_difference():
    rng = np.random.default_rng(2)
    b = rng.random(60)
    a = b + 0.05 + rng.normal(scale=0.01, size=60)
    res = paired_test(a, b, n_resamples=2000)
    assert res.mean_diff == pytest.approx(float(np.mean(a - b)))
    assert res.p_value == pytest.approx(stats.wilcoxon(a - b).pvalue)
    assert res.p_value < 1e-6 and res.bootstrap_p < 1e-3
    assert 0 < res.ci_low < res.mean_diff < res.ci_high
    assert res.n == 60
    swapped = paired_test(b, a, n_resamples=2000)
    assert swapped.mean_diff == pytest.approx(-res.mean_diff)
    assert swapped.p_value == pytest.approx(res.p_value)


def test_paired_test_of_symmetric_differences_has_p_one():
    b = np.zeros(8)
    a = np.array([1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0])
    res = paired_test(a, b, n_resamples=500)
    assert res.mean_diff == 0.0
    assert res.p_value == pytest.approx(1.0)
    assert res.bootstrap_p == 1.0
    assert res.ci_low < 0 < res.ci_high


def test_paired_test_of_identical_inputs_does_not_crash():
    a = np.array([0.2, 0.5, 0.7])
    assert paired_test(a, a.copy()) == (0.0, 1.0, 0.0, 0.0, 1.0, 3)


def test_paired_test_bad_input():
    with pytest.raises(MetricInputError, match="pair up"):
        paired_test([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(MetricInputError, match="non-finite"):
        paired_test([0.1, np.inf], [0.1, 0.2])


def test_aggregate_seeds_t_interval():
    res = aggregate_seeds([1.0, 2.0, 3.0])
    half = 4.302652729749464 / math.sqrt(3)  # t_{0.975, 2} x std 1 / sqrt(3)
    assert (res.mean, res.std, res.n) == (2.0, 1.0, 3)
    assert res.ci_low == pytest.approx(2.0 - half) and res.ci_high == pytest.approx(2.0 + half)
    wider = aggregate_seeds([1.0, 2.0, 3.0], confidence=0.99)
    assert wider.ci_low < res.ci_low


def test_aggregate_seeds_with_one_seed_has_no_spread():
    res = aggregate_seeds([17.5])
    assert res.mean == 17.5 and res.n == 1
    assert math.isnan(res.std) and math.isnan(res.ci_low) and math.isnan(res.ci_high)
    with pytest.raises(MetricInputError, match="at least 1"):
        aggregate_seeds([])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_resamples": 2.5}, "n_resamples must be an int"), ({"seed": "0"}, "seed must be an int"),
     ({"confidence": None}, "confidence must be a finite number")],
)
def test_paired_test_refuses_bad_resampling_options_by_name(kwargs, match):
    with pytest.raises(MetricInputError, match=match):
        paired_test([0.1, 0.2, 0.4], [0.2, 0.1, 0.3], **kwargs)
