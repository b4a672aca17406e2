"""Segment-level metrics of one video: nMSD, top-k highlight segments, hit@k and recall@k.

Ground-truth segments are the maximal runs of positive labels
(:func:`positive_runs`); a step ``i`` of a video at ``rate`` steps per second
covers the time span ``[i / rate, (i + 1) / rate)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from highlightzoo.errors import MetricInputError, NoPositiveLabelError
from highlightzoo.metrics._checks import (
    ArrayLike,
    as_labels,
    as_scores,
    count,
    positive_rate,
    real_number,
    video_pair,
)

_EPS = 1e-9  # slack when turning seconds x rate into a whole number of steps


def positive_runs(labels: ArrayLike) -> np.ndarray:
    """(G, 2) int64 ``[start, end)`` step ranges of the maximal runs of 1s in ``labels`` (T,)."""
    y = as_labels(labels)
    edges = np.diff(np.concatenate(([0], y.astype(np.int64), [0])))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def _runs_or_raise(y: np.ndarray) -> np.ndarray:
    runs = positive_runs(y)
    if not len(runs):
        raise NoPositiveLabelError(
            f"the video has no positive label among its {y.size} steps, so it has no "
            "ground-truth segment; skip it and count it"
        )
    return runs


def nmsd(
    labels: ArrayLike,
    scores: ArrayLike,
    mode: Literal["mean", "best"] = "mean",
    min_inclusion: float = 0.5,
) -> float:
    """Normalised Meaningful Summary Duration of one video (Video2GIF); lower is better.

    For each ground-truth segment ``g`` (|g| steps): the threshold ``tau_g`` is
    the ``ceil(a |g|)``-th highest score inside ``g`` (the lowest threshold
    that keeps at least a fraction ``a = min_inclusion`` of it); the summary is
    every step with ``score >= tau_g`` (ties included), ``MSD_g`` its length,
    and ``nMSD_g = (MSD_g - a |g|) / (T - a |g|)``. Returns the mean over the
    segments (``mode="mean"``) or the smallest (``"best"``). A ranking that
    puts the segment first gives ~0 (exactly 0 when ``a |g|`` is whole); one
    that puts it last gives ``(T - |g|) / (T - a |g|)``, near 1.
    """
    if mode not in ("mean", "best"):
        raise MetricInputError(f"unknown nMSD mode {mode!r}; choose 'mean' or 'best'")
    min_inclusion = real_number(min_inclusion, "min_inclusion", 0.0, 1.0)
    y, s = video_pair(labels, scores)
    runs = _runs_or_raise(y)
    ascending = np.sort(s)
    t = s.size
    values = []
    for start, end in runs.tolist():
        size = end - start
        keep = max(1, math.ceil(min_inclusion * size - _EPS))
        tau = np.partition(s[start:end], size - keep)[size - keep]  # keep-th highest in g
        msd = t - int(np.searchsorted(ascending, tau, side="left"))  # steps with score >= tau
        denom = t - min_inclusion * size
        values.append((msd - min_inclusion * size) / denom if denom > 0 else 0.0)
    return float(np.mean(values) if mode == "mean" else np.min(values))


@dataclass(frozen=True)
class Segment:
    """A highlight segment ``[start_s, end_s)`` in seconds and its mean step score."""

    start_s: float
    end_s: float
    score: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _length_range(min_len_s: float, max_len_s: float, rate: float, t: int) -> tuple[int, int]:
    """Allowed segment lengths in steps, clipped to the video (a video shorter than
    ``min_len_s`` gives one segment: the whole video)."""
    min_len_s = real_number(min_len_s, "min_len_s", 0.0, math.inf)
    max_len_s = real_number(max_len_s, "max_len_s", 0.0, math.inf)
    if min_len_s > max_len_s:
        raise MetricInputError(
            f"need 0 < min_len_s <= max_len_s, got min_len_s={min_len_s!r}, max_len_s={max_len_s!r}"
        )
    # clipped to the video before rounding: seconds x rate may overflow to inf (1e200 steps/s)
    lo = max(1, math.ceil(min(min_len_s * rate - _EPS, t)))
    hi = max(lo, math.floor(min(max_len_s * rate + _EPS, t)))
    return min(lo, t), min(hi, t)


def top_k_segments(
    scores: ArrayLike,
    rate: float,
    k: int,
    min_len_s: float = 1.0,
    max_len_s: float = 10.0,
    *,
    baseline: float | None = None,
    max_lengths: int = 64,
) -> list[Segment]:
    """Up to ``k`` non-overlapping highlight segments of one video, in seconds, best first.

    ``scores`` (T,) per step at ``rate`` steps per second. Algorithm (window
    search + greedy non-maximum suppression):

    1. candidates: every window of ``L`` consecutive steps, for each allowed
       length ``L`` from ``min_len_s`` to ``max_len_s`` (in steps, clipped to
       the video; at most ``max_lengths`` lengths, evenly spread, both ends kept);
    2. each window's gain is ``sum_i (s_i - b)`` with ``b = baseline`` (default:
       the median score of the video): a window grows while the steps it adds are
       above the baseline, so one highlight becomes one segment, not several
       adjacent slivers;
    3. greedy NMS: take the best remaining window (ties: shorter, then earlier, so
       steps at exactly the baseline are not added),
       drop every window that overlaps it, repeat until ``k`` are taken or none is
       left. Fewer than ``k`` come back when no more fit (``k > possible``).

    ``Segment.score`` is the window's mean raw score. The list is in selection
    order (highest gain first). Constant scores give consecutive windows of the
    shortest allowed length from the start.
    """
    s = as_scores(scores)
    rate = positive_rate(rate)
    k = count(k, 1, "k")
    max_lengths = count(max_lengths, 1, "max_lengths")
    if baseline is not None:
        baseline = real_number(baseline, "baseline", -math.inf, math.inf)
    lo, hi = _length_range(min_len_s, max_len_s, rate, s.size)
    lengths = np.unique(np.linspace(lo, hi, num=min(max_lengths, hi - lo + 1)).round().astype(int))
    base = float(np.median(s)) if baseline is None else float(baseline)
    prefix = np.concatenate(([0.0], np.cumsum(s - base)))
    raw = np.concatenate(([0.0], np.cumsum(s)))
    starts = np.concatenate([np.arange(s.size - n + 1) for n in lengths])
    sizes = np.concatenate([np.full(s.size - n + 1, n) for n in lengths])
    gains = prefix[starts + sizes] - prefix[starts]
    order = np.lexsort((starts, sizes, -gains))  # gain desc, then shorter, then earlier
    starts, sizes = starts[order], sizes[order]
    alive = np.ones(len(starts), dtype=bool)
    picked: list[Segment] = []
    while len(picked) < k and alive.any():
        j = int(np.argmax(alive))  # first alive in best-first order
        a, n = int(starts[j]), int(sizes[j])
        picked.append(Segment(a / rate, (a + n) / rate, float((raw[a + n] - raw[a]) / n)))
        alive &= (starts >= a + n) | (starts + sizes <= a)
    return picked


def _gt_seconds(runs: np.ndarray, rate: float) -> np.ndarray:
    return runs.astype(np.float64) / rate


def _matched(
    gt: np.ndarray, segments: list[Segment], rule: Literal["center", "iou"], iou_threshold: float
) -> np.ndarray:
    """(G,) bool: is each ground-truth ``[start, end)`` (seconds) matched by a segment?"""
    if not segments:
        return np.zeros(len(gt), dtype=bool)
    pred = np.array([[p.start_s, p.end_s] for p in segments])
    if rule == "center":
        centre = gt.mean(axis=1)[:, None]
        return ((pred[None, :, 0] <= centre) & (centre < pred[None, :, 1])).any(axis=1)
    inter = np.clip(
        np.minimum(gt[:, None, 1], pred[None, :, 1]) - np.maximum(gt[:, None, 0], pred[None, :, 0]),
        0.0,
        None,
    )
    union = (gt[:, 1] - gt[:, 0])[:, None] + (pred[:, 1] - pred[:, 0])[None, :] - inter
    return (inter / union >= iou_threshold).any(axis=1)


def _gt_hits(
    labels: ArrayLike,
    scores: ArrayLike,
    rate: float,
    k: int,
    rule: str,
    iou_threshold: float,
    min_len_s: float,
    max_len_s: float,
) -> np.ndarray:
    if rule not in ("center", "iou"):
        raise MetricInputError(f"unknown matching rule {rule!r}; choose 'center' or 'iou'")
    iou_threshold = real_number(iou_threshold, "iou_threshold", 0.0, 1.0)
    y, s = video_pair(labels, scores)
    runs = _runs_or_raise(y)
    rate = positive_rate(rate)
    segments = top_k_segments(s, rate, k, min_len_s, max_len_s)
    return _matched(_gt_seconds(runs, rate), segments, rule, iou_threshold)  # type: ignore[arg-type]


def hit_at_k(
    labels: ArrayLike,
    scores: ArrayLike,
    rate: float,
    k: int = 5,
    *,
    rule: Literal["center", "iou"] = "center",
    iou_threshold: float = 0.5,
    min_len_s: float = 1.0,
    max_len_s: float = 10.0,
) -> float:
    """1.0 when at least one ground-truth segment is hit by the top-``k`` segments, else 0.0.

    The predicted segments are :func:`top_k_segments` of ``scores`` (T,).
    Matching rule: with ``rule="center"`` (default) a ground-truth segment
    ``[a, b)`` (seconds) is hit when a predicted segment contains its centre
    ``(a + b) / 2``; with ``rule="iou"`` when a predicted segment has temporal
    IoU >= ``iou_threshold`` with it.
    """
    hits = _gt_hits(labels, scores, rate, k, rule, iou_threshold, min_len_s, max_len_s)
    return float(hits.any())


def recall_at_k(
    labels: ArrayLike,
    scores: ArrayLike,
    rate: float,
    k: int = 5,
    *,
    rule: Literal["center", "iou"] = "center",
    iou_threshold: float = 0.5,
    min_len_s: float = 1.0,
    max_len_s: float = 10.0,
) -> float:
    """Fraction of the ground-truth segments hit by the top-``k`` segments (rule of :func:`hit_at_k`)."""
    hits = _gt_hits(labels, scores, rate, k, rule, iou_threshold, min_len_s, max_len_s)
    return float(hits.mean())
