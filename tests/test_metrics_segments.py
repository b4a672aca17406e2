"""nMSD, top-k segments, hit@k / recall@k, window averaging and segment broadcasting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from highlightzoo.errors import MetricInputError, NoPositiveLabelError
from highlightzoo.metrics import (
    Segment,
    broadcast_segment_scores,
    hit_at_k,
    nmsd,
    positive_runs,
    recall_at_k,
    top_k_segments,
    window_average,
)

# ---------------------------------------------------------------- ground-truth runs


def test_positive_runs_are_maximal_runs_of_ones():
    np.testing.assert_array_equal(
        positive_runs([1, 1, 0, 0, 1, 0, 1, 1, 1]), [[0, 2], [4, 5], [6, 9]]
    )
    assert positive_runs([0, 0]).shape == (0, 2)


# ---------------------------------------------------------------- nMSD


def test_nmsd_perfect_ranking_is_zero_and_reversed_is_near_one():
    t, labels = 100, np.zeros(100, dtype=int)
    labels[40:50] = 1
    perfect = np.where(labels == 1, 2.0, 0.0) + np.linspace(0, 1, t)  # distinct, GT on top
    assert nmsd(labels, perfect) == 0.0
    reversed_ = -perfect  # GT at the bottom
    assert nmsd(labels, reversed_) == pytest.approx((t - 10) / (t - 5))  # 0.947...
    assert nmsd(labels, reversed_) > 0.9


def test_nmsd_hand_computed():
    labels = [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]  # |g| = 4, keep 2 of its steps
    scores = [0.5, 0.85, 0.9, 0.1, 0.8, 0.2, 0.5, 0.5, 0.5, 0.5]
    # threshold = 2nd highest inside g = 0.8; steps >= 0.8: 0.85, 0.9, 0.8 -> MSD = 3
    assert nmsd(labels, scores) == pytest.approx((3 - 2) / (10 - 2))
    # ties with the threshold count in the summary
    tied = [0.8, 0.85, 0.9, 0.1, 0.8, 0.2, 0.8, 0.5, 0.5, 0.5]
    assert nmsd(labels, tied) == pytest.approx((5 - 2) / (10 - 2))
    # an odd-length segment: a |g| = 1.5, keep ceil(1.5) = 2 steps
    assert nmsd([1, 1, 1, 0], [0.9, 0.8, 0.1, 0.0]) == pytest.approx((2 - 1.5) / (4 - 1.5))


def test_nmsd_mean_and_best_over_segments():
    labels = [1, 1, 0, 0, 0, 0, 1, 1]
    scores = [0.9, 0.8, 0.5, 0.5, 0.5, 0.5, 0.1, 0.0]
    first = (1 - 1) / (8 - 1)  # threshold 0.9: only itself
    second = (8 - 1) / (8 - 1)  # threshold 0.1: all but the 0.0 step, 7 steps
    second = (7 - 1) / (8 - 1)
    assert nmsd(labels, scores, "mean") == pytest.approx((first + second) / 2)
    assert nmsd(labels, scores, "best") == pytest.approx(first)


def test_nmsd_min_inclusion_parameter():
    labels = [1, 1, 1, 1, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.6, 0.95, 0.0]
    # a = 1: keep all 4 -> threshold 0.6 -> 5 steps -> (5 - 4) / (6 - 4)
    assert nmsd(labels, scores, min_inclusion=1.0) == pytest.approx(0.5)
    # a = 0.25: keep 1 -> threshold 0.9 -> 2 steps -> (2 - 1) / (6 - 1)
    assert nmsd(labels, scores, min_inclusion=0.25) == pytest.approx(0.2)


def test_nmsd_bad_input():
    with pytest.raises(NoPositiveLabelError):
        nmsd([0, 0], [0.1, 0.2])
    with pytest.raises(MetricInputError, match="mode"):
        nmsd([1, 0], [0.1, 0.2], mode="worst")
    with pytest.raises(MetricInputError, match="min_inclusion"):
        nmsd([1, 0], [0.1, 0.2], min_inclusion=0.0)
    with pytest.raises(MetricInputError, match="non-finite"):
        nmsd([1, 0], [0.1, np.nan])
    with pytest.raises(MetricInputError, match="differ in length"):
        nmsd([1, 0], [0.1])


# ---------------------------------------------------------------- top-k segments


def _check_segments(segs: list[Segment], scores: np.ndarray, rate: float, k: int, lo_s, hi_s):
    """Non-overlapping, inside the video, allowed lengths, at most k, correct mean score."""
    assert len(segs) <= k
    t = len(scores)
    spans = sorted((round(s.start_s * rate), round(s.end_s * rate)) for s in segs)
    for (_, b), (c, _) in zip(spans, spans[1:], strict=False):
        assert b <= c, "segments overlap"
    for seg, (a, b) in zip(sorted(segs, key=lambda s: s.start_s), spans, strict=True):
        assert 0 <= a < b <= t
        if t >= np.ceil(lo_s * rate - 1e-9):
            assert lo_s * rate - 1e-9 <= b - a <= max(hi_s * rate + 1e-9, 1)
        assert seg.score == pytest.approx(scores[a:b].mean())


def _gain(seg: Segment, scores: np.ndarray, rate: float) -> float:
    a, b = round(seg.start_s * rate), round(seg.end_s * rate)
    return float((scores[a:b] - np.median(scores)).sum())


def test_top_k_finds_the_highlights_best_first():
    rate = 2.0
    scores = np.zeros(60)
    scores[10:16] = 1.0  # a 3 s highlight
    scores[40:44] = 0.8  # a 2 s highlight
    segs = top_k_segments(scores, rate, k=2, min_len_s=1.0, max_len_s=5.0)
    assert [(s.start_s, s.end_s) for s in segs] == [(5.0, 8.0), (20.0, 22.0)]
    assert segs[0].score == 1.0 and segs[1].score == pytest.approx(0.8)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 300),
    st.sampled_from([0.5, 1.0, 1.875, 2.0, 5.0]),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
)
def test_top_k_properties(t, rate, k, seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(t), 1)  # many ties
    segs = top_k_segments(scores, rate, k, min_len_s=1.0, max_len_s=4.0)
    assert segs, "a non-empty video always has a segment"
    _check_segments(segs, scores, rate, k, 1.0, 4.0)
    gains = [_gain(s, scores, rate) for s in segs]
    assert all(g >= h - 1e-9 for g, h in zip(gains, gains[1:], strict=False)), "best first"
    lengths = range(min(int(np.ceil(rate - 1e-9)), t), min(int(4 * rate + 1e-9), t) + 1)
    brute = max(
        (scores[a : a + n] - np.median(scores)).sum() for n in lengths for a in range(t - n + 1)
    )
    assert gains[0] == pytest.approx(brute, abs=1e-9)  # the first pick is the best window


def test_top_k_edge_cases():
    one = top_k_segments([0.3], rate=2.0, k=3)  # T = 1: the whole video
    assert one == [Segment(0.0, 0.5, 0.3)]
    flat = top_k_segments(np.full(7, 0.5), rate=1.0, k=10, min_len_s=2.0, max_len_s=3.0)
    assert [(s.start_s, s.end_s) for s in flat] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    short = top_k_segments([0.1, 0.9, 0.2], rate=1.0, k=2, min_len_s=5.0, max_len_s=9.0)
    assert short == [Segment(0.0, 3.0, pytest.approx(0.4))]  # shorter than min_len: all of it
    many = top_k_segments(np.arange(6.0), rate=1.0, k=100, min_len_s=1.0, max_len_s=1.0)
    assert len(many) == 6 and [s.start_s for s in many] == [5, 4, 3, 2, 1, 0]


def test_top_k_bad_input():
    with pytest.raises(MetricInputError, match="k must"):
        top_k_segments([0.1, 0.2], 1.0, k=0)
    with pytest.raises(MetricInputError, match="min_len_s"):
        top_k_segments([0.1, 0.2], 1.0, k=1, min_len_s=3.0, max_len_s=2.0)
    with pytest.raises(MetricInputError, match="rate"):
        top_k_segments([0.1, 0.2], 0.0, k=1)
    with pytest.raises(MetricInputError, match="non-finite"):
        top_k_segments([0.1, np.nan], 1.0, k=1)
    with pytest.raises(MetricInputError, match="empty"):
        top_k_segments([], 1.0, k=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": "2"}, "rate must be a finite number of steps per second > 0, got '2'"),
        ({"rate": None}, "rate must be"),
        ({"k": True}, "k must be an int >= 1, got True"),
        ({"k": 2.5}, "k must be an int >= 1"),
        ({"min_len_s": "1"}, "min_len_s must be a finite number > 0, got '1'"),
        ({"max_len_s": float("inf")}, "max_len_s must be a finite number > 0, got inf"),
        ({"max_lengths": 0}, "max_lengths must be an int >= 1, got 0"),
        ({"baseline": float("nan")}, "baseline must be a finite number, got nan"),
        ({"baseline": "0.5"}, "baseline must be a finite number"),
    ],
)
def test_top_k_refuses_a_scalar_option_of_the_wrong_kind_by_name(kwargs, match):
    # each was a TypeError / ValueError from inside (or, for a NaN baseline, no error at all)
    with pytest.raises(MetricInputError, match=match):
        top_k_segments(**{"scores": [0.1, 0.5, 0.2], "rate": 1.0, "k": 1, **kwargs})


def test_top_k_takes_numpy_and_tensor_scalars():
    expected = top_k_segments([0.1, 0.5, 0.2], 1.0, 1)
    assert top_k_segments([0.1, 0.5, 0.2], np.float32(1.0), np.int64(1)) == expected
    assert top_k_segments([0.1, 0.5, 0.2], torch.tensor(1.0), 1, baseline=np.float64(0.2)) == expected


# ---------------------------------------------------------------- hit@k / recall@k


def test_hit_and_recall_at_k_centre_rule():
    rate = 1.0
    labels = np.zeros(40, dtype=int)
    labels[5:9] = 1  # GT A, centre 7 s
    labels[30:34] = 1  # GT B, centre 32 s
    scores = np.zeros(40)
    scores[6:9] = 1.0  # a prediction covering A's centre
    assert hit_at_k(labels, scores, rate, k=1, max_len_s=3.0) == 1.0
    assert recall_at_k(labels, scores, rate, k=1, max_len_s=3.0) == 0.5
    scores[30:33] = 0.9
    assert recall_at_k(labels, scores, rate, k=2, max_len_s=3.0) == 1.0
    miss = np.zeros(40)
    miss[15:20] = 1.0
    assert hit_at_k(labels, miss, rate, k=1, max_len_s=5.0) == 0.0


def test_hit_at_k_iou_rule_uses_the_threshold():
    labels = np.zeros(20, dtype=int)
    labels[4:8] = 1  # [4, 8) s
    scores = np.zeros(20)
    scores[5:8] = 1.0  # predicted [5, 8): IoU 3/4
    kwargs = dict(rate=1.0, k=1, rule="iou", min_len_s=3.0, max_len_s=3.0)
    assert hit_at_k(labels, scores, iou_threshold=0.75, **kwargs) == 1.0
    assert hit_at_k(labels, scores, iou_threshold=0.76, **kwargs) == 0.0


def test_hit_at_k_bad_input():
    with pytest.raises(NoPositiveLabelError):
        hit_at_k([0, 0], [0.1, 0.2], rate=1.0)
    with pytest.raises(MetricInputError, match="matching rule"):
        hit_at_k([1, 0], [0.1, 0.2], rate=1.0, rule="overlap")
    with pytest.raises(MetricInputError, match="iou_threshold"):
        recall_at_k([1, 0], [0.1, 0.2], rate=1.0, rule="iou", iou_threshold=0.0)
    with pytest.raises(MetricInputError, match="binary"):
        hit_at_k([0.2, 0.9], [1, 0], rate=1.0)


# ---------------------------------------------------------------- window averaging


def test_window_average_hand_computed():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    # 2 steps/s, 1.5 s windows = 3 steps: [1,2,3] [4,5,6] [7]
    np.testing.assert_allclose(window_average(scores, 2.0, 1.5), [2, 2, 2, 5, 5, 5, 7])
    # 1.875 steps/s x 2 s = 3.75 steps: steps 0-3 | 4-7 -> windows of 4 here
    np.testing.assert_allclose(window_average(np.arange(8.0), 1.875, 2.0), [1.5] * 4 + [5.5] * 4)
    # 10 steps/s, 0.3 s windows: boundaries at 3, 6 despite 0.3 * 10 = 3.0000000000000004
    np.testing.assert_allclose(window_average(np.arange(7.0), 10.0, 0.3), [1, 1, 1, 4, 4, 4, 6])


def test_window_average_batched_keeps_padding_device_and_dtype():
    x = torch.tensor([[1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 99.0, float("nan")]])
    out = window_average(x, torch.tensor([1.0, 1.0]), 2.0, lengths=torch.tensor([4, 2]))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out[0].numpy(), [2, 2, 6, 6])
    np.testing.assert_allclose(out[1, :2].numpy(), [3, 3])
    assert out[1, 2] == 99.0 and torch.isnan(out[1, 3])  # padding is returned unchanged
    rows = window_average(np.array([[1.0, 3.0], [5.0, 9.0]]), [1.0, 2.0], 1.0)
    np.testing.assert_allclose(rows, [[1, 3], [7, 7]])  # per-row rates


def test_window_average_bad_input():
    with pytest.raises(MetricInputError, match="window_s"):
        window_average([1.0, 2.0], 1.0, 0.0)
    with pytest.raises(MetricInputError, match="rate"):
        window_average([1.0, 2.0], -1.0)
    with pytest.raises(MetricInputError, match="NaN"):
        window_average([1.0, np.nan], 1.0)
    with pytest.raises(MetricInputError, match=r"\(T,\) or \(B, T\)"):
        window_average(np.zeros((2, 2, 2)), 1.0)


# ---------------------------------------------------------------- segment broadcasting


def test_broadcast_segment_scores():
    out = broadcast_segment_scores(np.array([0.2, 0.9]), np.array([0, 0, 1, 1, -1]))
    np.testing.assert_allclose(out, [0.2, 0.2, 0.9, 0.9, 0.0])
    seg = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    idx = torch.tensor([[2, 1, 0], [0, 1, -1]])
    got = broadcast_segment_scores(seg, idx, fill=-1.0)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), [[3, 2, 1], [4, 5, -1]])


def test_broadcast_segment_scores_bad_input():
    with pytest.raises(MetricInputError, match="is not a segment"):
        broadcast_segment_scores([0.1, 0.2], [0, 2])
    with pytest.raises(MetricInputError, match="integers"):
        broadcast_segment_scores([0.1, 0.2], [0.0, 1.0])
    with pytest.raises(MetricInputError, match="agree on B"):
        broadcast_segment_scores(np.zeros((2, 3)), np.zeros((3, 4), dtype=int))


@pytest.mark.parametrize("kwargs, match", [
    ({"lengths": [4, 2]}, r"lengths must be \(1,\) integers"),  # a mask IndexError before
    ({"lengths": np.array([2.7])}, r"lengths must be \(1,\) integers"),  # cut to 2 steps
    ({"lengths": [9]}, r"lengths must lie in \[0, 4\]"),
    ({"lengths": [-1]}, r"lengths must lie in \[0, 4\]"),
    ({"window_s": None}, "window_s .* must be a finite number"),  # a TypeError before
    ({"window_s": "5"}, "window_s .* must be a finite number"),
    ({"rate": "x"}, "rate must be real numbers"),  # torch's TypeError before
    ({"rate": [1.0, 2.0]}, r"rate must be one number or \(1,\)"),
])
def test_window_average_refuses_lengths_and_windows_it_cannot_use(kwargs, match):
    with pytest.raises(MetricInputError, match=match):
        window_average(np.arange(4.0)[None], **{"rate": 1.0, **kwargs})
    np.testing.assert_allclose(window_average(np.arange(4.0)[None], 1.0, 2.0, lengths=[3]),
                               [[0.5, 0.5, 2.0, 3.0]])  # the padding step is returned as is


def test_broadcast_refuses_a_fill_that_is_not_a_number():
    with pytest.raises(MetricInputError, match="fill must be a number, got 'x'"):
        broadcast_segment_scores(np.ones(2), np.array([0, -1]), fill="x")  # torch's TypeError
    with pytest.raises(MetricInputError, match="fill inf does not fit scores of dtype torch.int64"):
        broadcast_segment_scores(np.ones(2, dtype=np.int64), np.array([0, -1]), fill=float("inf"))
    out = broadcast_segment_scores(np.ones(2), np.array([0, -1]), fill=float("nan"))
    assert out[0] == 1.0 and np.isnan(out[1])
