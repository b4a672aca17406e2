"""AP speed: the batched form against a per-video loop, 10,000 videos of 50..2,000 steps.

Side by side in one run (group ``ap-10k``):

- ``reference-loop``: the slow, obviously-correct ``reference_ap`` of
  ``tests/test_metrics_ap.py`` (the AP of docs/evaluation.md in plain Python), once
  per video; one round (it takes seconds);
- ``per-video``: :func:`average_precision` called once per video;
- ``batched-f32``: :func:`batched_average_precision` on float32 scores (what
  models output; the label rides in a spare mantissa bit through one value sort);
- ``batched-f64``: the same on float64 scores with full mantissas (argsort path).

Every timed form must give the reference's values (to 1e-12, same skipped
videos); the float32 batched form must be >= 20x faster than the reference
loop (target of issue 3). ``extra_info`` records the speed-ups.

Run: ``python -m pytest benchmarks/bench_metrics.py --benchmark-only``
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from highlightzoo.errors import NoPositiveLabelError
from highlightzoo.metrics import average_precision, batched_average_precision

N_VIDEOS, MIN_STEPS, MAX_STEPS = 10_000, 50, 2_000
TARGET_SPEEDUP = 20.0
_TIMES: dict[str, float] = {}  # best seconds of each form in this run
_VALUES: dict[str, np.ndarray] = {}


def _load_reference():
    """``reference_ap`` from the tests (one definition of "obviously correct")."""
    path = Path(__file__).resolve().parents[1] / "tests" / "test_metrics_ap.py"
    spec = importlib.util.spec_from_file_location("_metrics_ap_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_ap


def _videos(dtype) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Seeded videos: 1-3 highlight runs of 2-20 steps (~4 % positive), 1 % with none."""
    rng = np.random.default_rng(0)
    labels, scores = [], []
    for t in rng.integers(MIN_STEPS, MAX_STEPS + 1, size=N_VIDEOS):
        y = np.zeros(t, dtype=np.int8)
        if rng.random() > 0.01:
            for _ in range(rng.integers(1, 4)):
                start = rng.integers(0, t - 1)
                y[start : start + rng.integers(2, 21)] = 1
        s = rng.random(t) + 0.3 * y  # informative but imperfect
        labels.append(y)
        scores.append(s.astype(dtype))
    return labels, scores


@pytest.fixture(scope="module")
def videos_f32():
    return _videos(np.float32)


@pytest.fixture(scope="module")
def videos_f64():
    return _videos(np.float64)


def _timed(name: str, fn, *args) -> np.ndarray:
    start = time.perf_counter()
    out = fn(*args)
    _TIMES[name] = min(_TIMES.get(name, np.inf), time.perf_counter() - start)
    return out


def _reference_loop(labels, scores) -> np.ndarray:
    reference_ap = _load_reference()
    out = np.full(len(labels), np.nan)
    for i, (y, s) in enumerate(zip(labels, scores, strict=True)):
        if y.any():
            out[i] = reference_ap(y, s)
    return out


def _per_video_loop(labels, scores) -> np.ndarray:
    out = np.full(len(labels), np.nan)
    for i, (y, s) in enumerate(zip(labels, scores, strict=True)):
        try:
            out[i] = average_precision(y, s)
        except NoPositiveLabelError:
            pass
    return out


def _reference_values(name: str, labels, scores) -> np.ndarray:
    if name not in _VALUES:
        _VALUES[name] = _timed(name, _reference_loop, labels, scores)
    return _VALUES[name]


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.max(np.abs(got[ok] - want[ok])) <= 1e-12


@pytest.mark.benchmark(group="ap-10k")
def test_reference_loop(benchmark, videos_f32):
    values = benchmark.pedantic(
        lambda: _timed("reference-f32", _reference_loop, *videos_f32), rounds=1, iterations=1
    )
    _VALUES["reference-f32"] = values


@pytest.mark.benchmark(group="ap-10k")
def test_per_video(benchmark, videos_f32):
    values = benchmark.pedantic(
        lambda: _timed("per-video", _per_video_loop, *videos_f32), rounds=1, iterations=1
    )
    _assert_same(values, _reference_values("reference-f32", *videos_f32))
    benchmark.extra_info["speedup_vs_reference"] = _TIMES["reference-f32"] / _TIMES["per-video"]


@pytest.mark.benchmark(group="ap-10k")
def test_batched_f32(benchmark, videos_f32):
    result = benchmark.pedantic(
        lambda: _timed("batched-f32", batched_average_precision, *videos_f32),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    want = _reference_values("reference-f32", *videos_f32)
    _assert_same(result.values, want)
    assert result.skipped == int(np.isnan(want).sum()) > 0
    speedup = _TIMES["reference-f32"] / _TIMES["batched-f32"]
    benchmark.extra_info["speedup_vs_reference"] = speedup
    print(f"\nbatched (float32) vs reference loop: {speedup:.1f}x")
    assert speedup >= TARGET_SPEEDUP, f"only {speedup:.1f}x faster than the reference loop"


@pytest.mark.benchmark(group="ap-10k")
def test_batched_f64(benchmark, videos_f64):
    result = benchmark.pedantic(
        lambda: _timed("batched-f64", batched_average_precision, *videos_f64),
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    _assert_same(result.values, _reference_values("reference-f64", *videos_f64))
    speedup = _TIMES["reference-f64"] / _TIMES["batched-f64"]
    benchmark.extra_info["speedup_vs_reference"] = speedup
    print(f"\nbatched (float64, argsort path) vs reference loop: {speedup:.1f}x")
