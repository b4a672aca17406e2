"""Average precision (3 modes), its batched form and mAP, against hand answers, a slow
reference written here, and scikit-learn.

``reference_ap`` below follows the interpolated AP of docs/evaluation.md literally, one Python loop per
curve point; ``benchmarks/bench_metrics.py`` times the batched form against it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import highlightzoo.metrics.ap as ap_module
from highlightzoo.errors import MetricInputError, NoPositiveLabelError
from highlightzoo.metrics import (
    AP_MODES,
    BatchedAP,
    average_precision,
    batched_average_precision,
    mean_average_precision,
)

# ---------------------------------------------------------------- slow reference


def reference_curve(labels, scores) -> list[tuple[int, int]]:
    """(tp, k) at each distinct score, highest score first (ties are one threshold)."""
    pairs = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    points, tp = [], 0
    for k, (score, label) in enumerate(pairs, start=1):
        tp += label
        if k == len(pairs) or pairs[k][0] != score:
            points.append((tp, k))
    return points


def reference_ap(labels, scores, mode: str = "interpolated") -> float:
    """The interpolated AP of docs/evaluation.md, literally (plus the exact and 11-point variants)."""
    y = [int(v) for v in labels]
    s = [float(v) for v in scores]
    n_pos = sum(y)
    if n_pos == 0:
        raise ValueError("no positive label")
    if n_pos == len(y):  # step 2
        return 1.0
    points = reference_curve(y, s)
    if mode == "exact":  # sum over thresholds of (recall gain) x precision
        total, prev = 0.0, 0
        for tp, k in points:
            total += (tp - prev) / n_pos * (tp / k)
            prev = tp
        return total
    # step 3: from recall 1 down to recall 0, then the point (R=0, P=1)
    tps = [tp for tp, _ in reversed(points)] + [0]
    precision = [tp / k for tp, k in reversed(points)] + [1.0]
    recall = [np.float32(tp / n_pos) for tp in tps]
    for i in range(1, len(precision)):  # step 4: running max from recall 1 towards 0
        precision[i] = max(precision[i - 1], precision[i])
    if mode == "interpolated":  # step 5: mean where the (float32) recall changes
        terms = [precision[i] for i in range(len(recall) - 1) if recall[i] != recall[i + 1]]
        return sum(terms) / len(terms)
    assert mode == "voc11"
    total = 0.0
    for j in range(11):  # t = j / 10: the last point (lowest recall) with recall >= t
        last = max(i for i in range(len(tps)) if 10 * tps[i] >= j * n_pos)
        total += precision[last]
    return total / 11


def sklearn_interpolated_ap(labels, scores) -> float:
    """The interpolated AP computed from sklearn's precision_recall_curve (docs/evaluation.md)."""
    from sklearn.metrics import precision_recall_curve

    labels = np.asarray(labels)
    if labels.all():
        return 1.0
    precision, recall, _ = precision_recall_curve(labels, np.asarray(scores, dtype=np.float64))
    precision = np.maximum.accumulate(precision)  # recall 1 -> 0 order already
    changes = np.flatnonzero(np.diff(recall.astype(np.float32)))
    return float(precision[changes].mean())


# ---------------------------------------------------------------- random videos


def random_video(rng: np.random.Generator, length: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels with >= 1 positive and scores with a random tie pattern.

    ``kind``: "f32" float32 scores, "f64" float64 with odd mantissas (the argsort path),
    "pool" a few distinct values (heavy ties, incl. 0.0 and -0.0).
    """
    labels = (rng.random(length) < rng.uniform(0.01, 0.9)).astype(np.int64)
    labels[rng.integers(length)] = 1
    n_values = int(rng.integers(1, length + 1))
    if kind == "pool":
        pool = np.concatenate([[0.0, -0.0], rng.normal(size=max(1, min(n_values, 6)))])
        scores = rng.choice(pool, size=length)
    else:
        scores = rng.integers(0, n_values, size=length) / n_values - 0.5
        scores = (
            scores.astype(np.float32) if kind == "f32" else scores + rng.normal(size=length) * 1e-3
        )
    return labels, scores


video_params = st.tuples(
    st.integers(1, 2000), st.sampled_from(["f32", "f64", "pool"]), st.integers(0, 2**32 - 1)
)


# ---------------------------------------------------------------- known answers (by hand)

HAND = [
    # labels, scores, interpolated, exact, voc11
    ([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6], 5 / 6, 5 / 6, 28 / 33),
    # precision rises at the end: interpolation lifts the early points to 0.6
    ([0, 1, 0, 1, 1], [0.9, 0.8, 0.7, 0.6, 0.5], 0.6, 1.6 / 3, 7 / 11),
    # a tie holding two positives is one threshold and one recall level
    (
        [1, 1, 0, 1, 0],
        [0.9, 0.9, 0.5, 0.3, 0.1],
        (1 + 0.75) / 2,
        2 / 3 + 0.75 / 3,
        (1 + 6 + 4 * 0.75) / 11,
    ),
    # a tie of a positive with negatives
    ([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.1], 2 / 3, 2 / 3, (1 + 10 * 2 / 3) / 11),
    # a single positive ranked third
    ([0, 0, 1, 0], [0.4, 0.3, 0.2, 0.1], 1 / 3, 1 / 3, 13 / 33),
    # every score tied
    ([1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], 0.25, 0.25, (1 + 2.5) / 11),
    # a single step, positive
    ([1], [3.0], 1.0, 1.0, 1.0),
    # all positive: 1 by convention, whatever the scores
    ([1, 1, 1], [0.1, 0.9, 0.1], 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize(("labels", "scores", "interp", "exact", "voc11"), HAND)
def test_hand_computed_answers(labels, scores, interp, exact, voc11):
    for mode, expected in (("interpolated", interp), ("exact", exact), ("voc11", voc11)):
        assert average_precision(labels, scores, mode) == pytest.approx(expected, abs=1e-12)
        assert reference_ap(labels, scores, mode) == pytest.approx(expected, abs=1e-12)


def test_interpolated_is_the_default_and_ties_differ_from_the_exact_mode():
    labels, scores = [1, 1, 0, 1, 0], [0.9, 0.9, 0.5, 0.3, 0.1]
    assert average_precision(labels, scores) == average_precision(labels, scores, "interpolated")
    assert average_precision(labels, scores) != pytest.approx(
        average_precision(labels, scores, "exact")
    )


def test_negative_zero_and_zero_are_one_threshold():
    # +0.0 and -0.0 are equal scores: one threshold holding both steps
    assert average_precision([0, 1, 0], [0.0, -0.0, -1.0]) == pytest.approx(0.5)
    assert average_precision([0, 1, 0], np.array([0.0, -0.0, -1.0], dtype=np.float32)) == 0.5


def test_accepts_lists_numpy_bool_and_torch():
    labels, scores = [0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8]
    expected = average_precision(labels, scores)
    assert average_precision(np.array(labels, dtype=bool), np.array(scores)) == expected
    assert (
        average_precision(torch.tensor(labels), torch.tensor(scores, dtype=torch.float64))
        == expected
    )
    assert (
        average_precision(torch.tensor(labels).float(), torch.tensor(scores).bfloat16()) == expected
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_give_the_cpu_values():
    rng = np.random.default_rng(3)
    videos = [random_video(rng, int(n), "f32") for n in rng.integers(1, 300, size=20)]
    ys = [torch.as_tensor(y).cuda() for y, _ in videos]
    ss = [torch.as_tensor(s).cuda() for _, s in videos]
    got = batched_average_precision(ys, ss).values
    want = [average_precision(y, s) for y, s in videos]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert average_precision(ys[0], ss[0]) == want[0]


# ---------------------------------------------------------------- properties vs the reference


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(video_params)
def test_every_mode_matches_the_reference(params):
    length, kind, seed = params
    labels, scores = random_video(np.random.default_rng(seed), length, kind)
    for mode in AP_MODES:
        assert (
            abs(average_precision(labels, scores, mode) - reference_ap(labels, scores, mode))
            <= 1e-12
        )


@settings(max_examples=25, deadline=None)
@given(video_params)
def test_interpolated_matches_sklearn_curve_and_exact_matches_sklearn_ap(params):
    from sklearn.metrics import average_precision_score

    length, kind, seed = params
    labels, scores = random_video(np.random.default_rng(seed), length, kind)
    assert abs(average_precision(labels, scores) - sklearn_interpolated_ap(labels, scores)) <= 1e-12
    if not labels.all():
        exact = average_precision_score(labels, np.asarray(scores, dtype=np.float64))
        assert abs(average_precision(labels, scores, "exact") - exact) <= 1e-12


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 40), st.sampled_from(["f32", "f64", "pool"]), st.integers(0, 2**32 - 1))
def test_batched_equals_per_video_for_lists_padded_and_torch(n_videos, kind, seed):
    rng = np.random.default_rng(seed)
    videos = [random_video(rng, int(n), kind) for n in rng.integers(1, 400, size=n_videos)]
    negatives = rng.random(n_videos) < 0.2  # some videos without a positive: skipped
    for i in np.flatnonzero(negatives):
        videos[i] = (np.zeros_like(videos[i][0]), videos[i][1])
    lengths = np.array([len(y) for y, _ in videos])
    t = int(lengths.max())
    padded_y = np.zeros((n_videos, t))
    padded_s = np.full((n_videos, t), np.nan)  # padding is ignored, even NaN
    for i, (y, s) in enumerate(videos):
        padded_y[i, : len(y)], padded_s[i, : len(s)] = y, s
    for mode in AP_MODES:
        want = np.array(
            [np.nan if not y.any() else average_precision(y, s, mode) for y, s in videos]
        )
        as_list = batched_average_precision(
            [y for y, _ in videos], [s for _, s in videos], mode=mode
        )
        padded = batched_average_precision(padded_y, padded_s, lengths, mode=mode)
        tensors = batched_average_precision(
            torch.as_tensor(padded_y),
            torch.as_tensor(padded_s),
            torch.as_tensor(lengths),
            mode=mode,
        )
        for got in (as_list, padded, tensors):
            np.testing.assert_allclose(got.values, want, rtol=0, atol=1e-12)
            assert got.skipped == int(negatives.sum())
            np.testing.assert_array_equal(got.skipped_index, np.flatnonzero(negatives))
        for i in range(min(n_videos, 3)):
            if videos[i][0].any():
                assert abs(as_list.values[i] - reference_ap(*videos[i], mode)) <= 1e-12


def test_batched_with_no_positive_anywhere_skips_every_video():
    res = batched_average_precision([np.zeros(3), np.zeros(1)], [np.arange(3.0), np.ones(1)])
    assert np.isnan(res.values).all() and res.skipped == 2
    np.testing.assert_array_equal(res.skipped_index, [0, 1])
    single = batched_average_precision(np.zeros((1, 4)), np.ones((1, 4)))
    assert single.skipped == 1 and len(single) == 1


def test_batched_blocks_do_not_change_values(monkeypatch):
    rng = np.random.default_rng(7)
    videos = [random_video(rng, int(n), "f64") for n in rng.integers(1, 500, size=60)]
    ys, ss = [y for y, _ in videos], [s for _, s in videos]
    whole = batched_average_precision(ys, ss).values
    monkeypatch.setattr(ap_module, "_BLOCK_ELEMENTS", 1)  # one video per block
    np.testing.assert_array_equal(batched_average_precision(ys, ss).values, whole)


# ---------------------------------------------------------------- mAP


def test_map_over_pairs_and_over_users():
    res = mean_average_precision(["a", "a", "b", "c"], ["x", "y", "x", "z"], [0.5, 1.0, 0.2, None])
    assert res.map == pytest.approx(100 * (0.5 + 1.0 + 0.2) / 3)
    assert res.user_map == pytest.approx(100 * (0.75 + 0.2) / 2)
    assert (res.n_pairs, res.n_skipped, res.n_users) == (3, 1, 2)
    assert res.skipped == (("c", "z"),)
    assert res.user_aps == {"a": pytest.approx(75.0), "b": pytest.approx(20.0)}


def test_map_takes_a_batched_result_and_counts_its_skips():
    batch = batched_average_precision(
        [[1, 0], [0, 0], [0, 1]], [[0.9, 0.1], [0.5, 0.4], [0.9, 0.1]]
    )
    res = mean_average_precision(["u1", "u2", "u3"], ["v", "v", "v"], batch)
    assert isinstance(batch, BatchedAP) and batch.skipped == 1
    assert res.map == pytest.approx(100 * (1.0 + 0.5) / 2)
    assert res.n_skipped == 1 and res.skipped == (("u2", "v"),)


@pytest.mark.parametrize(
    ("users", "videos", "aps", "match"),
    [
        (["a"], ["x", "y"], [0.5, 0.5], "differ in length"),
        (["a", "a"], ["x", "x"], [0.5, 0.6], "appears twice"),
        (["a"], ["x"], [50.0], "fractions, not percent"),
        (["a"], ["x"], [math.inf], r"\[0, 1\]"),
        ([], [], [], "no \\(user, video\\) pairs"),
    ],
)
def test_map_rejects_bad_input(users, videos, aps, match):
    with pytest.raises(MetricInputError, match=match):
        mean_average_precision(users, videos, aps)


def test_map_with_every_pair_skipped_raises_the_no_positive_error():
    with pytest.raises(NoPositiveLabelError, match="all 2"):
        mean_average_precision(["a", "b"], ["x", "x"], [None, float("nan")])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("labels", "scores", "error", "match"),
    [
        ([0, 0, 0], [0.1, 0.2, 0.3], NoPositiveLabelError, "no positive label"),
        ([1, 0], [0.1, float("nan")], MetricInputError, "non-finite"),
        ([1, 0], [0.1, float("inf")], MetricInputError, "non-finite"),
        ([1, 0, 1], [0.1, 0.2], MetricInputError, "differ in length"),
        ([1, 2, 0], [0.1, 0.2, 0.3], MetricInputError, "binary"),
        ([1, 0.5, 0], [0.1, 0.2, 0.3], MetricInputError, "binary"),
        ([], [], MetricInputError, "empty"),
        ([[1, 0]], [[0.1, 0.2]], MetricInputError, "1-D"),
        (["a", "b"], [0.1, 0.2], MetricInputError, "0/1 numbers"),
        ([1, 0], [1 + 1j, 0.2], MetricInputError, "real"),
    ],
)
def test_per_video_bad_input(labels, scores, error, match):
    with pytest.raises(error, match=match):
        average_precision(labels, scores)


def test_swapped_arguments_are_caught_with_a_hint():
    with pytest.raises(MetricInputError, match="Labels come first"):
        average_precision([0.2, 0.9, 0.4], [0, 1, 0])


def test_unknown_mode():
    with pytest.raises(MetricInputError, match="unknown AP mode"):
        average_precision([1, 0], [0.2, 0.1], mode="auc")


def test_batched_bad_input_names_the_video():
    ys, ss = [[1, 0], [1, 0, 0]], [[0.1, 0.2], [0.3, float("nan"), 0.1]]
    with pytest.raises(MetricInputError, match="'clip-b'"):
        batched_average_precision(ys, ss, ids=["clip-a", "clip-b"])
    with pytest.raises(MetricInputError, match=r"index 1\).*binary"):
        batched_average_precision([[1, 0], [1, 3]], [[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(MetricInputError, match="index 0.*differ in length"):
        batched_average_precision([[1, 0]], [[0.1, 0.2, 0.3]])
    with pytest.raises(MetricInputError, match="2 label arrays but 1"):
        batched_average_precision([[1], [1]], [[0.1]])
    with pytest.raises(MetricInputError, match="empty"):
        batched_average_precision([[1], []], [[0.1], []])
    with pytest.raises(MetricInputError, match="no videos"):
        batched_average_precision([], [])
    with pytest.raises(MetricInputError, match="for one video use average_precision"):
        batched_average_precision([1, 0], [0.2, 0.1])
    with pytest.raises(MetricInputError, match="only for padded"):
        batched_average_precision([[1, 0]], [[0.2, 0.1]], lengths=[2])


def test_batched_padded_bad_input():
    y, s = np.array([[1, 0, 0], [0, 1, 0]]), np.array([[0.1, 0.2, 0.3], [0.3, np.inf, 0.2]])
    with pytest.raises(MetricInputError, match=r"index 1\).*non-finite"):
        batched_average_precision(y, s)
    assert not np.isnan(batched_average_precision(y, s, lengths=[3, 1]).values).all()
    with pytest.raises(MetricInputError, match="must be in 1..3"):
        batched_average_precision(y, s, lengths=[3, 0])
    with pytest.raises(MetricInputError, match="must be in 1..3"):
        batched_average_precision(y, s, lengths=[3, 4])
    with pytest.raises(MetricInputError, match="2 integers"):
        batched_average_precision(y, s, lengths=[3.0, 1.0])
    with pytest.raises(MetricInputError, match="one shape"):
        batched_average_precision(y, s[:, :2])


@pytest.mark.parametrize("users, videos, aps, match", [
    (None, ["v"], [0.5], "user_ids must be a sequence of ids"),  # a TypeError before
    ("uv", ["v", "w"], [0.5, 0.5], "user_ids must be a sequence of ids"),  # its letters as ids
    (["u"], ["v"], np.array(["a"]), "aps must be numbers"),  # NumPy's ValueError before
    (["u"], ["v"], ["0.5"], "aps must be numbers"),  # read as 0.5 before
])
def test_map_refuses_ids_and_aps_of_the_wrong_kind(users, videos, aps, match):
    with pytest.raises(MetricInputError, match=match):
        mean_average_precision(users, videos, aps)
    assert mean_average_precision(np.array(["u"]), ("v",), [np.float32(0.5)]).map == 50.0


def test_batched_ap_of_a_list_and_a_number_is_named():
    with pytest.raises(MetricInputError, match="scores must be a list of videos"):
        batched_average_precision([np.array([0, 1])], 3.0)  # a TypeError before
