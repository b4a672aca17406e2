"""How sure a number is: bootstrap intervals over videos, paired tests, intervals over seeds.

Every comparison in the zoo reports a mean with a 95 % interval over videos
(:func:`bootstrap_ci`), over training seeds (:func:`aggregate_seeds`), and a
paired test between two models scored on the same videos (:func:`paired_test`).
All randomness is seeded, so a report can be regenerated exactly.
"""

from __future__ import annotations

import inspect
import math
from typing import Literal, NamedTuple

import numpy as np

from highlightzoo.errors import MetricInputError
from highlightzoo.metrics._checks import ArrayLike, check_finite, count, real_number, to_numpy


def scipy_stats():  # noqa: ANN202 - a module
    """``scipy.stats``, imported on first use: its import takes about half a second, which
    ``highlightzoo predict``, ``Detector`` and training (no intervals) do not need."""
    from scipy import stats

    return stats

_RESAMPLE_ELEMENTS = 1 << 22  # memory cap of one vectorised bootstrap batch (resamples x n)


def _values(x: ArrayLike, name: str, min_size: int) -> np.ndarray:
    arr = to_numpy(x, name)
    if arr.dtype.kind not in "biuf":
        raise MetricInputError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64).reshape(-1)
    if arr.size < min_size:
        raise MetricInputError(f"{name} needs at least {min_size} value(s), got {arr.size}")
    check_finite(arr, name, " (drop skipped videos explicitly before)")
    return arr


def _check_confidence(confidence: float) -> float:
    return real_number(confidence, "confidence", 0.0, 1.0, open_high=True)


def _check_resampling(n_resamples: int, seed: int) -> tuple[int, int]:
    """The resample count (>= 1) and seed (>= 0, what NumPy's generators take)."""
    return count(n_resamples, 1, "n_resamples"), count(seed, 0, "seed")


class ConfidenceInterval(NamedTuple):
    """``(low, high)`` bounds of an interval; unpacks like a tuple."""

    low: float
    high: float


def bootstrap_ci(
    values: ArrayLike,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    method: Literal["percentile", "basic", "BCa"] = "percentile",
) -> ConfidenceInterval:
    """Bootstrap interval of ``mean(values)`` (e.g. per-video APs), by ``scipy.stats.bootstrap``.

    ``values`` (n,) finite, n >= 2 (NaN, e.g. a skipped video, raises: drop
    skips explicitly). All-equal values give ``(v, v)``.
    """
    v = _values(values, "values", 2)
    confidence = _check_confidence(confidence)
    n_resamples, seed = _check_resampling(n_resamples, seed)
    if not isinstance(method, str) or method.lower() not in ("percentile", "basic", "bca"):
        raise MetricInputError(f"unknown bootstrap method {method!r}; choose percentile, basic or BCa")
    if np.ptp(v) == 0.0:
        return ConfidenceInterval(float(v[0]), float(v[0]))
    stats = scipy_stats()
    seeded = {
        "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state": (
            np.random.default_rng(seed)
        )
    }
    res = stats.bootstrap(
        (v,),
        np.mean,
        n_resamples=n_resamples,
        batch=max(1, _RESAMPLE_ELEMENTS // v.size),
        vectorized=True,
        confidence_level=confidence,
        method=method,
        **seeded,
    )
    return ConfidenceInterval(
        float(res.confidence_interval.low), float(res.confidence_interval.high)
    )


class PairedTest(NamedTuple):
    """Model ``a`` vs model ``b`` on the same videos.

    ``mean_diff`` = mean(a - b); ``p_value``: two-sided Wilcoxon signed-rank
    p-value; ``ci_low``/``ci_high``: percentile bootstrap interval of
    ``mean_diff``; ``bootstrap_p``: two-sided paired bootstrap p-value of
    ``mean_diff == 0``; ``n`` pairs.
    """

    mean_diff: float
    p_value: float
    ci_low: float
    ci_high: float
    bootstrap_p: float
    n: int


def _bootstrap_means(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of ``d``, in memory-capped batches."""
    out = np.empty(n_resamples)
    step = max(1, _RESAMPLE_ELEMENTS // d.size)
    for i in range(0, n_resamples, step):
        m = min(step, n_resamples - i)
        out[i : i + m] = d[rng.integers(0, d.size, size=(m, d.size))].mean(axis=1)
    return out


def paired_test(
    a: ArrayLike,
    b: ArrayLike,
    seed: int = 0,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
) -> PairedTest:
    """Paired comparison of two models' per-video scores ``a`` (n,) and ``b`` (n,), same videos.

    Wilcoxon signed-rank (scipy defaults: zero differences dropped, exact for
    small n); paired bootstrap over videos: the interval is the percentile
    interval of resampled ``mean(a - b)``, and the p-value is
    ``(1 + #{|m* - mean| >= |mean|}) / (1 + R)`` over the R resampled means
    ``m*`` (the resampling distribution shifted to the null). When every
    difference is 0 the test has nothing to reject: ``p_value = bootstrap_p = 1``.
    """
    x, y = _values(a, "a", 2), _values(b, "b", 2)
    if x.shape != y.shape:
        raise MetricInputError(f"a and b must pair up one to one, got {x.size} and {y.size} values")
    confidence = _check_confidence(confidence)
    n_resamples, seed = _check_resampling(n_resamples, seed)
    d = x - y
    mean = float(d.mean())
    if not np.any(d):
        return PairedTest(0.0, 1.0, 0.0, 0.0, 1.0, int(d.size))
    p_wilcoxon = float(scipy_stats().wilcoxon(d).pvalue)
    means = _bootstrap_means(d, n_resamples, np.random.default_rng(seed))
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    p_boot = (1 + int(np.sum(np.abs(means - mean) >= abs(mean)))) / (1 + n_resamples)
    return PairedTest(mean, p_wilcoxon, float(low), float(high), float(p_boot), int(d.size))


class SeedSummary(NamedTuple):
    """Mean over training seeds, sample std (ddof=1) and Student-t interval of the mean.

    With one seed ``std``, ``ci_low`` and ``ci_high`` are NaN (undefined).
    """

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int


def aggregate_seeds(values_per_seed: ArrayLike, confidence: float = 0.95) -> SeedSummary:
    """``mean +- t_{(1+c)/2, n-1} * std / sqrt(n)`` over the per-seed results (n,)."""
    v = _values(values_per_seed, "values_per_seed", 1)
    confidence = _check_confidence(confidence)
    n, mean = v.size, float(v.mean())
    if n == 1:
        return SeedSummary(mean, math.nan, math.nan, math.nan, 1)
    std = float(v.std(ddof=1))
    half = float(scipy_stats().t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return SeedSummary(mean, std, mean - half, mean + half, n)
