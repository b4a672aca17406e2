"""Label conversion (seconds -> steps) and history step ranges: known answers and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from highlightzoo.data.labels import merge_segments, segment_steps, segments_to_step_labels
from highlightzoo.errors import ConfigError, DataFormatError


def test_half_coverage_rule_known_answer():
    # rate 2: step i spans [i/2, (i+1)/2); [0.25, 1.6) covers step 0 half, 1 and 2 fully, 3 by 0.1/0.5
    labels = segments_to_step_labels([(0.25, 1.6)], n_steps=5, rate=2.0)
    assert labels.dtype == np.float32
    assert labels.tolist() == [1, 1, 1, 0, 0]
    strict = segments_to_step_labels([(0.25, 1.6)], n_steps=5, rate=2.0, min_fraction=0.6)
    assert strict.tolist() == [0, 1, 1, 0, 0]


def test_union_of_segments_not_double_counted():
    # two identical 0.3 s pieces of a 1 s step: union covers 0.3 < 0.5
    assert segments_to_step_labels([(0.0, 0.3), (0.0, 0.3)], 2, 1.0).tolist() == [0, 0]
    # two disjoint pieces that together cover 0.6 of the step
    assert segments_to_step_labels([(0.0, 0.3), (0.5, 0.8)], 2, 1.0).tolist() == [1, 0]


def test_segments_outside_the_video_are_ignored_and_bad_args_raise():
    assert segments_to_step_labels([(10.0, 12.0)], 3, 1.0).sum() == 0
    with pytest.raises(ValueError):
        segments_to_step_labels([(0, 1)], 3, 1.0, min_fraction=0.0)
    for bad in ("0.5", float("nan"), True):  # "0.5" was a TypeError; True was taken as 1
        with pytest.raises(ConfigError, match="min_fraction .* must be a number in \\(0, 1\\]"):
            segments_to_step_labels([(0, 1)], 3, 1.0, min_fraction=bad)
    with pytest.raises(ValueError):
        segments_to_step_labels([(0, 1)], 3, 0.0)


seg = st.tuples(st.floats(0, 60, allow_nan=False), st.floats(0.01, 20, allow_nan=False))
rates = st.sampled_from([0.5, 1.0, 1.875, 2.0, 3.75])


@settings(max_examples=60, deadline=None)
@given(st.lists(seg, max_size=6), rates, st.integers(1, 150), st.floats(0.05, 1.0))
def test_labels_match_a_slow_reference(raw, rate, n, frac):
    segments = [(s, s + d) for s, d in raw]
    labels = segments_to_step_labels(segments, n, rate, frac)
    # reference: fine time grid, a step is positive when enough of its sub-samples are covered
    fine = 2000
    for i in range(n):
        t = (i + (np.arange(fine) + 0.5) / fine) / rate
        covered = np.zeros(fine, bool)
        for s, e in segments:
            covered |= (t >= s) & (t < e)
        ref = covered.mean()
        if abs(ref - frac) > 2e-3:  # away from the boundary the two must agree
            assert labels[i] == float(ref >= frac), (i, ref, frac)


@settings(max_examples=60, deadline=None)
@given(st.lists(seg, max_size=6), rates, st.integers(1, 150))
def test_labels_monotone_in_fraction_and_segments(raw, rate, n):
    segments = [(s, s + d) for s, d in raw]
    loose = segments_to_step_labels(segments, n, rate, 0.25)
    half = segments_to_step_labels(segments, n, rate, 0.5)
    assert np.all(loose >= half)  # a lower threshold never removes a positive
    more = segments_to_step_labels([*segments, (0.0, 1.0)], n, rate, 0.5)
    assert np.all(more >= half)  # adding a segment never removes a positive
    assert len(merge_segments(segments)) <= len(segments)


@settings(max_examples=80, deadline=None)
@given(st.floats(0, 100), st.floats(0.01, 30), rates, st.integers(1, 300))
def test_segment_steps_properties(start, dur, rate, n):
    first, stop = segment_steps(start, start + dur, rate, n)
    assert 0 <= first < stop <= n  # at least one step, inside the video
    if dur * rate >= 1.0 and (start + dur) * rate <= n:
        # a segment of at least one step: exactly the steps the 0.5 label rule marks
        labels = segments_to_step_labels([(start, start + dur)], n, rate, 0.5)
        idx = np.flatnonzero(labels)
        if len(idx):
            assert (first, stop) == (int(idx[0]), int(idx[-1]) + 1)


def test_segment_steps_known_answers():
    assert segment_steps(1.0, 3.0, 2.0, 100) == (2, 6)
    assert segment_steps(1.0, 1.1, 2.0, 100) == (2, 3)  # shorter than a step: one step
    assert segment_steps(80.0, 90.0, 2.0, 100) == (99, 100)  # clipped to the video


@pytest.mark.parametrize("segment, message", [
    ((3.0, 1.0), "must not end before it starts, got \\(3.0, 1.0\\)"),
    ((float("nan"), 1.0), "two finite numbers of seconds"),
    ((0.0, float("inf")), "two finite numbers of seconds"),
    (("1", 2.0), "two finite numbers of seconds"),
    ((True, 2.0), "two finite numbers of seconds"),
])
def test_a_reversed_or_non_finite_segment_is_refused_not_dropped_or_moved(segment, message):
    # a reversed segment labelled nothing (dropped) and got its "midpoint" step as history
    with pytest.raises(DataFormatError, match=message):
        segments_to_step_labels([(0.0, 1.0), segment], 10, 1.0)
    with pytest.raises(DataFormatError, match=message):
        segment_steps(*segment, 1.0, 10)
    with pytest.raises(DataFormatError, match="a \\(start, end\\) pair"):
        merge_segments([(0.0, 1.0, 2.0)])


def test_an_empty_segment_still_labels_nothing_and_numpy_or_torch_seconds_are_taken():
    torch = pytest.importorskip("torch")
    assert segments_to_step_labels([(2.0, 2.0)], 4, 1.0).sum() == 0
    assert segment_steps(torch.tensor(1.0), np.float32(3.0), 2.0, 100) == (2, 6)
    assert segments_to_step_labels(np.array([[0.0, 2.0]]), 4, 1.0).tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("call, match", [
    (lambda: segments_to_step_labels([(0, 1)], 3, None), "feature rate must be a positive"),
    (lambda: segments_to_step_labels([(0, 1)], 3, "x"), "feature rate must be a positive"),
    (lambda: segments_to_step_labels([(0, 1)], None, 1.0), "n_steps must be an int >= 0"),
    (lambda: segments_to_step_labels([(0, 1)], 2.5, 1.0), "n_steps must be an int >= 0"),
    (lambda: segment_steps(0.0, 1.0, 1.0, "x"), "n_steps must be an int >= 0"),
    (lambda: segment_steps(0.0, 1.0, 1.0, 0), "a video needs at least one step"),
    (lambda: merge_segments(None), "segments must be .* pairs"),
])
def test_bad_rates_step_counts_and_segment_lists_are_data_format_errors(call, match):
    """None or text as a rate or a step count was a comparison's TypeError; a step count of
    2.5 made a float array size error; each is a DataFormatError (still a ValueError)."""
    with pytest.raises(DataFormatError, match=match):
        call()


def test_huge_times_and_rates_do_not_overflow_and_keep_the_same_steps():
    """1e300 s at a float32 rate, or at 1e300 steps/s, is inf steps: int() raised an
    OverflowError. Positions are clipped to the video, which gives the same steps."""
    assert segment_steps(1e300, 1e300, np.float32(2.0), 4) == (3, 4)  # the last step
    assert segment_steps(0.0, 1e300, 1e300, 4) == (0, 4)
    assert segments_to_step_labels([(5.0, 2.0**40)], 5, 1e300).tolist() == [0, 0, 0, 0, 0]
    assert segments_to_step_labels([(1.0, 1e300)], 4, 2.0).tolist() == [0, 0, 1, 1]
    assert segment_steps(1.2, 3.7, 1.875, 40) == (2, 7)  # ordinary segments as before
