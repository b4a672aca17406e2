"""The A-VHD evaluation protocol (``avhd_protocol_ap``) against hand answers and against a
deliberately literal re-implementation of the reference test pipeline written here.

``literal_avhd_ap`` follows the reference's steps one by one, as plainly as possible:
``torch.nn.functional.interpolate(mode="nearest")`` on a (1, 1, T) tensor, a Python loop
over 5-second windows of frames, frame ground truth as the max over one array per
highlight segment, and the Video2GIF interpolated AP as explicit loops. The one
intended difference from the reference is the window mean: an exact sum (``math.fsum``)
instead of float32 ``np.mean``, so that equal windows stay tied (docs/evaluation.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from highlightzoo.errors import MetricInputError, NoPositiveLabelError
from highlightzoo.metrics import PROTOCOLS, avhd_protocol_ap
from highlightzoo.metrics.protocols import (
    frame_labels,
    frame_windows,
    nearest_source_steps,
    window_means,
)

# ---------------------------------------------------------------- literal reference


def literal_get_ap(y_true: list[int], y_score: list[float]) -> float:
    """Video2GIF's interpolated AP, explicitly: one curve point per distinct score."""
    if all(v == 1 for v in y_true):
        return 1.0
    if not any(y_true):
        raise ValueError("True labels cannot all be zero")
    n_pos = sum(y_true)
    thresholds = sorted(set(y_score), reverse=True)
    recall, precision = [], []
    for tau in thresholds:
        picked = [y for y, s in zip(y_true, y_score, strict=True) if s >= tau]
        recall.append(sum(picked) / n_pos)
        precision.append(sum(picked) / len(picked))
    # interpolate: best precision at this recall or any higher one
    interp = [max(precision[i:]) for i in range(len(precision))]
    # one term per recall level reached (the first threshold that reaches it)
    terms, last = [], 0.0
    for r, p in zip(recall, interp, strict=True):
        if r > last:
            terms.append(p)
            last = r
    return sum(terms) / len(terms)


def literal_avhd_ap(probs, duration_s, segments, fps=30.0, window_s=5.0) -> float:
    """The reference's test.py + postprocess_prediction + average_precision, literally."""
    n_frames = round(duration_s * fps)
    # float32, like the reference's softmax output (torch picks the scale's precision from
    # the dtype: a float64 tensor would be up-sampled with a float64 scale)
    x = torch.tensor(np.asarray(probs, dtype=np.float32)).view(1, 1, -1)
    frames = torch.nn.functional.interpolate(x, size=n_frames, mode="nearest").view(-1)
    frames = frames.double().numpy()
    width = int(fps * window_s)
    for start in range(0, n_frames, width):
        chunk = frames[start : start + width]
        frames[start : start + width] = math.fsum(chunk) / len(chunk)
    per_gif = []
    for start, end in segments:
        per_gif.append([1 if start <= f / fps < end else 0 for f in range(n_frames)])
    gt = np.array(per_gif).max(axis=0).tolist()
    return literal_get_ap(gt, frames.tolist())


# ---------------------------------------------------------------- known answers


def test_protocol_names():
    assert PROTOCOLS == ("avhd", "steps")


def test_two_steps_aligned_with_windows():
    # 10 s at 30 fps = 300 frames; step 0 -> frames 0-149, step 1 -> 150-299
    assert avhd_protocol_ap([0.2, 0.8], 0.2, 10.0, [(5.0, 10.0)]) == 1.0
    assert avhd_protocol_ap([0.8, 0.2], 0.2, 10.0, [(5.0, 10.0)]) == pytest.approx(0.5)


def test_segment_across_a_window_edge():
    # positives: frames 75-224; window means 0.2 (0-149), 0.8 (150-299)
    # threshold 0.8: tp 75 of k 150 (P .5, R .5); 0.2: tp 150 of 300 (P .5, R 1)
    assert avhd_protocol_ap([0.2, 0.8], 0.2, 10.0, [(2.5, 7.5)]) == pytest.approx(0.5)


def test_partial_last_window_and_max_over_segments():
    # 6 s = 180 frames, steps of 60 frames; windows 0-149 (mean 30/150 = 0.2) and 150-179 (1.0)
    assert avhd_protocol_ap([0.0, 0.0, 1.0], 0.5, 6.0, [(5.0, 6.0)]) == 1.0
    # frames 120-149 are positive but sit in the low window: one threshold, P = 30/180
    assert avhd_protocol_ap([0.0, 0.0, 1.0], 0.5, 6.0, [(4.0, 5.0)]) == pytest.approx(1 / 6)
    both = avhd_protocol_ap([0.0, 0.0, 1.0], 0.5, 6.0, [(4.0, 5.0), (5.0, 6.0)])
    # threshold 1.0: 30 of 30 (P 1, R .5); 0.2: 60 of 180 (P 1/3, R 1)
    assert both == pytest.approx((1.0 + 1 / 3) / 2)


def test_end_is_open_and_rounding_of_frames():
    # [0, 5) s holds frames 0-149 exactly; frame 150 (t = 5.0) is not in it
    labels = frame_labels(300, 30.0, np.array([[0.0, 5.0]]))
    assert labels[:150].all() and not labels[150:].any()
    assert frame_labels(10, 30.0, np.zeros((0, 2))).sum() == 0
    # 10.01 s * 30 = 300.3 -> 300 frames; 10.02 s -> 300.6 -> 301 frames
    assert avhd_protocol_ap([0.2, 0.8], 0.2, 10.01, [(5.0, 11.0)]) == 1.0


def test_windows_and_means():
    assert frame_windows(7, 1.0, 3.0).tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert frame_windows(5, 1.0, 1.5).tolist() == [0, 0, 1, 2, 2]  # edges at 1.5, 3.0
    out = window_means(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([0, 0, 1, 1, 1]))
    assert out.tolist() == [1.5, 1.5, 4.0, 4.0, 4.0]
    # the same values in another order give bit-identical means (exact sums)
    a = window_means(np.array([0.1, 0.2, 0.3, 0.3, 0.2, 0.1]), np.array([0, 0, 0, 1, 1, 1]))
    assert a[0] == a[3]


@pytest.mark.parametrize("n_steps", [1, 2, 3, 7, 31, 64, 97, 180, 1000])
def test_nearest_steps_match_torch(n_steps):
    for n_frames in [1, 2, 5, 29, 150, 151, 299, 300, 1799, 4097, 12345]:
        x = torch.arange(n_steps, dtype=torch.float32).view(1, 1, -1)
        torch_steps = torch.nn.functional.interpolate(x, size=n_frames, mode="nearest")
        assert nearest_source_steps(n_steps, n_frames).tolist() == (
            torch_steps.view(-1).long().tolist()
        ), (n_steps, n_frames)


def test_nearest_steps_follow_float32_not_exact_division():
    # pairs where float32 scale and exact floor(f * T / n) disagree exist; we follow torch
    differs = [
        (t, n)
        for t in range(1, 40)
        for n in range(1, 400)
        if (nearest_source_steps(t, n) != (np.arange(n) * t) // n).any()
    ]
    assert differs, "expected some size pairs where float32 nearest differs from exact"


def test_float32_frame_mapping_changes_the_ap():
    # 2 steps over 82 frames: torch (float32 input) maps frame 41 to step 0, exact division
    # (and torch on a float64 tensor) to step 1.
    # One-frame windows (1 fps, 1 s) and a highlight on frame 41 only make that visible.
    args = ([1.0, 0.0], 1.0, 82.0, [(41.0, 42.0)], 1.0, 1.0)
    assert avhd_protocol_ap(*args) == pytest.approx(1 / 42)  # 42 frames share the top score
    assert literal_avhd_ap([1.0, 0.0], 82.0, [(41.0, 42.0)], 1.0, 1.0) == pytest.approx(1 / 42)


def test_bad_input_is_a_typed_error():
    with pytest.raises(NoPositiveLabelError):
        avhd_protocol_ap([0.1, 0.2], 1.0, 2.0, [])
    with pytest.raises(NoPositiveLabelError):
        avhd_protocol_ap([0.1, 0.2], 1.0, 2.0, [(5.0, 6.0)])  # after the end
    for kwargs, match in [
        ({"step_probs": [0.1, float("nan")]}, "non-finite"),
        ({"step_probs": []}, "empty"),
        ({"rate": 0.0}, "rate"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"duration_s": 0.001}, "frames"),
        ({"segments_s": [(1.0, 1.0)]}, r"segments_s\[0\]"),
        ({"segments_s": [(1.0, 2.0, 3.0)]}, "pairs"),
        ({"fps": float("inf")}, "fps"),
        ({"window_s": 0}, "window_s"),
        ({"window_s": None}, "window_s must be a finite number > 0, got None"),  # a TypeError before
        ({"fps": "30"}, "fps must be a finite number > 0, got '30'"),  # was converted before
    ]:
        args = {"step_probs": [0.1, 0.2], "rate": 1.0, "duration_s": 2.0, "segments_s": [(0, 1)]}
        with pytest.raises(MetricInputError, match=match):
            avhd_protocol_ap(**{**args, **kwargs})


# ---------------------------------------------------------------- against the literal reference

_FPS_WINDOW = st.sampled_from([(30.0, 5.0), (30.0, 1.0), (25.0, 2.0), (10.0, 5.0), (24.0, 0.5)])


@st.composite
def videos(draw):
    fps, window_s = draw(_FPS_WINDOW)
    duration = draw(
        st.one_of(
            st.floats(0.2, 90.0, allow_nan=False),
            st.integers(1, 18).map(lambda k: 5.0 * k),  # exactly on window edges
        )
    )
    rate = draw(st.sampled_from([0.5, 1.0, 1.875, 2.0, 7.5]))
    n_steps = draw(st.integers(1, 60))
    prob = st.floats(0.0, 1.0, allow_nan=False, width=32)  # float32, as a model gives them
    tie_pool = draw(st.lists(prob, min_size=1, max_size=3))
    probs = draw(
        st.lists(
            st.one_of(st.sampled_from(tie_pool), prob),
            min_size=n_steps,
            max_size=n_steps,
        )
    )
    edge = st.integers(0, 20).map(lambda k: k * window_s)  # segment ends on window edges
    anywhere = st.floats(0.0, duration + 1.0, allow_nan=False)
    segments = []
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.one_of(edge, anywhere))
        length = draw(st.one_of(st.floats(0.01, 30.0, allow_nan=False), edge.filter(bool)))
        segments.append((start, start + length))
    return probs, rate, duration, segments, fps, window_s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(videos())
def test_agrees_with_literal_reference(video):
    probs, rate, duration, segments, fps, window_s = video
    try:
        expected = literal_avhd_ap(probs, duration, segments, fps, window_s)
    except ValueError:  # no positive frame: the zoo raises its typed error instead
        with pytest.raises(NoPositiveLabelError):
            avhd_protocol_ap(probs, rate, duration, segments, fps, window_s)
        return
    got = avhd_protocol_ap(probs, rate, duration, segments, fps, window_s)
    assert abs(got - expected) <= 1e-9


def test_steps_of_float32_probabilities_from_torch():
    # model output as it arrives: a float32 tensor; result equals the float64 path
    probs = torch.rand(37, generator=torch.Generator().manual_seed(3))
    got = avhd_protocol_ap(probs, 1.0, 37.4, [(3.0, 9.5), (20.0, 31.0)])
    expected = literal_avhd_ap(probs.double().numpy(), 37.4, [(3.0, 9.5), (20.0, 31.0)])
    assert got == pytest.approx(expected, abs=1e-12)


def test_a_duration_of_more_frames_than_the_protocol_lays_out_is_refused():
    """1e300 s at 30 fps was NumPy's "Maximum allowed size exceeded"; 4e6 s, 1.2e8 frames of
    labels and scores."""
    for duration in (1e300, 4e6):
        with pytest.raises(MetricInputError, match="frames, over the 1e\\+08"):
            avhd_protocol_ap(np.full(10, 0.5), 1.875, duration, [(0.0, 1.0)])
    assert 0 < avhd_protocol_ap(np.linspace(0, 1, 10), 1.875, 5.0, [(0.0, 1.0)]) <= 1


def test_a_window_longer_than_the_video_is_the_whole_video():
    """window_s = 1e21 s overflowed the integer frame division (an OverflowError)."""
    probs, segments = np.linspace(0, 1, 38), [(0.0, 1.0)]
    assert avhd_protocol_ap(probs, 1.875, 20.0, segments, window_s=1e21) == avhd_protocol_ap(
        probs, 1.875, 20.0, segments, window_s=20.0)  # one window of the whole video
