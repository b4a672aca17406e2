"""Average precision per video, as the personalized-highlight literature computes it, and mAP.

The PHD-GIFs / Video2GIF evaluation (reused by A-VHD and PR-Net) scores one
video at a time (docs/evaluation.md, "Average precision"):

1. labels ``y`` (T,) in {0, 1} and scores ``s`` (T,), same length;
2. every label 1 -> AP = 1; no label 1 -> no AP (:class:`NoPositiveLabelError`);
3. the precision-recall curve has one point per *distinct* score ``tau``
   (tied scores are one threshold): ``tp(tau) = #{y=1, s>=tau}``,
   ``k(tau) = #{s>=tau}``, ``P(tau) = tp/k``, ``R(tau) = tp/n_pos``, plus the
   point (R=0, P=1);
4. interpolation: ``P~(tau) = max{P(tau') : R(tau') >= R(tau)}``;
5. AP = mean of ``P~`` over the recall levels reached (one term per distinct
   recall > 0, taken at the highest threshold reaching it).

``mode="exact"`` is the step-wise AP ``sum_j (R_j - R_{j-1}) P_j`` (what
``sklearn.metrics.average_precision_score`` computes); ``mode="voc11"`` is the
11-point VOC AP ``(1/11) sum_{t in {0, .1, .., 1}} max{P : R >= t}`` on the
same curve (so the t = 0 term is always 1), with ``R >= t`` decided exactly.

The batched form evaluates many videos without a Python loop per threshold:
videos are grouped by length into padded blocks, each row is sorted once,
and the curve is read off at the runs that hold a positive (see
:func:`_ap_rows`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from highlightzoo.checks import is_real
from highlightzoo.errors import MetricInputError, NoPositiveLabelError
from highlightzoo.metrics._checks import (
    ArrayLike,
    binary,
    check_finite,
    to_numpy,
    video_pair,
    where,
)

APMode = Literal["interpolated", "exact", "voc11"]
AP_MODES: tuple[str, ...] = get_args(APMode)

# Elements per padded block of the batched kernel: big enough to amortise the
# per-block overhead, small enough to stay in cache (benchmarks/bench_metrics.py).
_BLOCK_ELEMENTS = 1 << 16


def _check_mode(mode: str) -> None:
    if mode not in AP_MODES:
        raise MetricInputError(f"unknown AP mode {mode!r}; choose one of {', '.join(AP_MODES)}")


def _segmented_reverse_cummax(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """``out[i] = max(values[j] for j >= i with group[j] == group[i])``; ``group`` sorted, values >= 0.

    Exact (no offsets added to floats): the groups are laid out as rows of a
    zero-padded 2-D array and each row is accumulated from its end.
    """
    counts = np.bincount(group, minlength=n_groups)
    first = np.cumsum(counts) - counts
    col = np.arange(len(values)) - first[group]
    grid = np.zeros((n_groups, int(counts.max()) if len(values) else 0))
    grid[group, col] = values
    grid = np.maximum.accumulate(grid[:, ::-1], axis=1)[:, ::-1]
    return grid[group, col]


def _sorted_runs(key: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row of ``key`` ascending; flat positions of run ends and of positives.

    A run is a maximal group of equal keys (one threshold); its end is its last
    column. Fast path: when every key has its lowest mantissa bit clear (always
    true for float32 scores held in float64), the label is stored in that bit
    and a plain value sort carries it along: distinct keys keep their order and
    equal keys stay adjacent. Otherwise an argsort moves the labels.
    """
    rows, m = key.shape
    last = np.empty((rows, m), dtype=bool)
    last[:, -1] = True
    bits = key.view(np.int64)
    if not (bits & 1).any():
        packed = np.sort((bits | labels).view(np.float64), axis=1).view(np.int64)
        differ = (packed[:, 1:] ^ packed[:, :-1]).view(np.uint64)
        np.greater(differ, 1, out=last[:, :-1])  # the keys differ above bit 0
        positives = packed & 1
    else:
        order = np.argsort(key, axis=1)
        key = np.take_along_axis(key, order, axis=1)
        np.not_equal(key[:, 1:], key[:, :-1], out=last[:, :-1])
        positives = np.take_along_axis(labels, order, axis=1)
    return np.flatnonzero(last), np.flatnonzero(positives)


def _ap_rows(key: np.ndarray, labels: np.ndarray, lengths: np.ndarray, mode: str) -> np.ndarray:
    """AP of each row of a padded block; NaN for rows without a positive label.

    ``key`` (R, M) is minus the scores (no -0.0), +inf on padding; ``labels``
    (R, M) int8, 0 on padding; row ``r`` has ``lengths[r]`` real steps. After
    one sort per row (descending score), a curve point is the last column of a
    run of tied scores; only runs holding a positive change the recall, and the
    interpolated precision there is the best precision at or after it (a run of
    negatives after a positive run has the same ``tp`` and a larger ``k``, so it
    never wins). Everything after the sort works on the positives alone.
    """
    rows, m = key.shape
    # a row's last real step always ends a run (the padding after it is +inf)
    run_ends, pos = _sorted_runs(key, labels)
    n_pos = np.bincount(pos // m, minlength=rows)

    end_of_pos = run_ends[np.searchsorted(run_ends, pos)]  # the run (curve point) of each positive
    is_last = np.ones(len(pos), dtype=bool)
    np.not_equal(end_of_pos[1:], end_of_pos[:-1], out=is_last[:-1])
    change = end_of_pos[is_last]  # one per recall level, sorted by row then by threshold
    row = change // m
    k = change % m + 1  # steps at or above the threshold
    first_pos = np.cumsum(n_pos) - n_pos  # index in ``pos`` of each row's first positive
    tp = np.flatnonzero(is_last) + 1 - first_pos[row]
    tp_before = np.zeros_like(tp)
    tp_before[1:] = tp[:-1]
    tp_before[np.flatnonzero(np.diff(row, prepend=-1))] = 0  # a row's first level starts at 0
    precision = tp / k

    with np.errstate(invalid="ignore", divide="ignore"):
        if mode == "exact":  # sum_j (R_j - R_{j-1}) P_j
            ap = np.bincount(row, (tp - tp_before) * precision, rows) / n_pos
        else:
            interp = _segmented_reverse_cummax(precision, row, rows)  # step 4
            if mode == "interpolated":  # step 5: mean over recall levels
                ap = np.bincount(row, interp, rows) / np.bincount(row, minlength=rows)
            else:  # voc11: t = j/10 (j = 1..10) takes the first point with 10 tp >= j n_pos
                n = np.maximum(n_pos, 1)[row]
                served = (10 * tp) // n - (10 * tp_before) // n
                ap = (1.0 + np.bincount(row, served * interp, rows)) / 11.0
    ap = np.where(n_pos == lengths, 1.0, ap)  # step 2: all-positive video
    return np.where(n_pos == 0, np.nan, ap)


def average_precision(labels: ArrayLike, scores: ArrayLike, mode: APMode = "interpolated") -> float:
    """AP of one video (float in [0, 1]); see the module docstring for the three modes.

    ``labels`` (T,) in {0, 1}, ``scores`` (T,) finite, higher = more highlight;
    numpy, torch (CPU or CUDA) or lists. Raises :class:`NoPositiveLabelError`
    when no label is 1 and :class:`MetricInputError` on bad input.
    """
    _check_mode(mode)
    y, s = video_pair(labels, scores)
    if not y.any():
        raise NoPositiveLabelError(
            f"the video has no positive label among its {y.size} steps, so it has no AP; "
            "skip it and count it (batched_average_precision does)"
        )
    return float(_ap_rows(0.0 - s[None, :], y[None, :], np.array([y.size]), mode)[0])


@dataclass(frozen=True)
class BatchedAP:
    """AP of each video of a batch.

    ``values`` (B,) float64, NaN where the video was skipped (no positive
    label); ``skipped`` the number of such videos; ``skipped_index``
    (skipped,) their indices.
    """

    values: np.ndarray
    skipped: int
    skipped_index: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])


def _real_dtype(arr: np.ndarray, name: str, at: str) -> None:
    if arr.dtype.kind not in "biuf":  # bool, int, uint, float
        raise MetricInputError(f"{name}{at} must be real numbers, got dtype {arr.dtype}")


@dataclass
class _Videos:
    """B videos as given, either a list of 1-D arrays or padded (B, T) arrays.

    ``lengths`` (B,) real steps per video. Nothing is concatenated up front:
    :meth:`block` copies a group of videos straight into a padded block and
    checks it there, so the data is read about once.
    """

    labels: list[np.ndarray] | np.ndarray
    scores: list[np.ndarray] | np.ndarray
    lengths: np.ndarray
    padded: bool
    ids: Sequence[str] | None = None

    def block(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Checked (key = -scores with +inf padding, int8 labels with 0 padding) of ``rows``."""
        lens = self.lengths[rows]
        m = int(lens.max())
        if self.padded:
            real = np.arange(m)[None, :] < lens[:, None]
            key = np.where(real, 0.0 - self.scores[rows, :m].astype(np.float64), np.inf)
            y = np.where(real, self.labels[rows, :m], 0)
        else:
            key = np.full((len(rows), m), -np.inf)  # negated below: padding becomes +inf
            dtype = np.result_type(*(self.labels[i].dtype for i in rows.tolist()))
            y = np.zeros((len(rows), m), dtype=dtype)
            for r, i in enumerate(rows.tolist()):
                key[r, : lens[r]] = self.scores[i]
                y[r, : lens[r]] = self.labels[i]
            np.subtract(0.0, key, out=key)  # 0 - s: negates and turns -0.0 into +0.0
        if np.count_nonzero(np.isfinite(key)) != lens.sum():  # padding is +-inf, real steps finite
            r = int(np.flatnonzero(np.isfinite(key).sum(axis=1) != lens)[0])
            check_finite(-key[r, : lens[r]], "scores", where(int(rows[r]), self.ids))
        if y.dtype != bool and ((y != 0) & (y != 1)).any():
            r = int(np.flatnonzero(((y != 0) & (y != 1)).any(axis=1))[0])
            binary(y[r, : lens[r]], "labels", where(int(rows[r]), self.ids))  # raises
        return key, y.astype(np.int8, copy=False)


def _from_list(labels: Sequence, scores: Sequence, ids: Sequence[str] | None) -> _Videos:
    """Per-video 1-D arrays: check shapes and dtypes here, values block by block."""
    if len(labels) != len(scores):
        raise MetricInputError(
            f"got {len(labels)} label arrays but {len(scores)} score arrays; one pair per video"
        )
    ys = [to_numpy(v, "labels") for v in labels]
    ss = [to_numpy(v, "scores") for v in scores]
    for i, (y, s) in enumerate(zip(ys, ss, strict=True)):
        if y.ndim != 1 or s.ndim != 1:
            raise MetricInputError(
                f"labels and scores{where(i, ids)} must be 1-D, got shapes {y.shape} and {s.shape}"
            )
        if y.shape != s.shape:
            raise MetricInputError(
                f"labels and scores{where(i, ids)} differ in length: {y.size} vs {s.size}"
            )
        _real_dtype(y, "labels", where(i, ids))
        _real_dtype(s, "scores", where(i, ids))
    lengths = np.fromiter((y.size for y in ys), dtype=np.int64, count=len(ys))
    return _Videos(ys, ss, lengths, padded=False, ids=ids)


def _from_padded(
    labels: np.ndarray, scores: np.ndarray, lengths: ArrayLike | None, ids: Sequence[str] | None
) -> _Videos:
    """Padded (B, T) labels/scores; only the first ``lengths[b]`` steps of row b count."""
    if labels.ndim == 1:
        raise MetricInputError(
            "batched_average_precision takes a list of videos or padded (B, T) arrays; "
            "for one video use average_precision"
        )
    if labels.ndim != 2 or scores.ndim != 2 or labels.shape != scores.shape:
        raise MetricInputError(
            "padded labels and scores must both be (B, T) of one shape, "
            f"got {labels.shape} and {scores.shape}"
        )
    _real_dtype(labels, "labels", "")
    _real_dtype(scores, "scores", "")
    b, t = scores.shape
    lens = np.full(b, t, dtype=np.int64) if lengths is None else to_numpy(lengths, "lengths")
    if lens.shape != (b,) or not np.issubdtype(lens.dtype, np.integer):
        raise MetricInputError(
            f"lengths must be {b} integers (one per row), got {lens.dtype} {lens.shape}"
        )
    lens = lens.astype(np.int64)
    out = np.flatnonzero((lens < 1) | (lens > t))
    if out.size:
        i = int(out[0])
        raise MetricInputError(f"lengths{where(i, ids)} is {lens[i]}; it must be in 1..{t}")
    return _Videos(labels, scores, lens, padded=True, ids=ids)


def _blocks(lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """Row indices grouped by similar length so that rows x longest <= budget (>= 1 row)."""
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    out, i, n = [], 0, len(order)
    while i < n:
        cost = np.arange(1, n - i + 1) * sorted_len[i:]
        j = i + max(1, int(np.searchsorted(cost, budget, side="right")))
        out.append(order[i:j])
        i = j
    return out


def batched_average_precision(
    labels: ArrayLike | Sequence[ArrayLike],
    scores: ArrayLike | Sequence[ArrayLike],
    lengths: ArrayLike | None = None,
    mode: APMode = "interpolated",
    *,
    ids: Sequence[str] | None = None,
) -> BatchedAP:
    """AP of many videos at once; ``values[i] == average_precision(labels_i, scores_i, mode)``.

    Either lists of B 1-D arrays (each video its own length T_i), or padded
    ``(B, T)`` arrays/tensors with ``lengths`` (B,) giving each row's real
    steps (default: all T; padding values are ignored, even NaN). Videos with
    no positive label get NaN and are counted in ``skipped``; ``ids``
    (optional, B names) make error messages name the video. Vectorised: one
    sort per row inside length-grouped padded blocks, no Python loop per
    threshold. CUDA tensors are copied to the CPU once.
    """
    _check_mode(mode)
    if isinstance(labels, list | tuple):
        if lengths is not None:
            raise MetricInputError("lengths is only for padded (B, T) input; lists carry their own")
        if len(labels) and np.ndim(labels[0]) == 0:
            raise MetricInputError(
                "batched_average_precision takes a list of videos (1-D arrays) or padded (B, T) "
                "arrays; for one video use average_precision"
            )
        if not isinstance(scores, list | tuple | np.ndarray) and not hasattr(scores, "detach"):
            raise MetricInputError(f"scores must be a list of videos like labels, got {scores!r}")
        videos = _from_list(labels, list(scores), ids)
    else:
        videos = _from_padded(to_numpy(labels, "labels"), to_numpy(scores, "scores"), lengths, ids)
    if len(videos.lengths) == 0:
        raise MetricInputError("batched_average_precision got no videos")
    if (videos.lengths == 0).any():
        i = int(np.flatnonzero(videos.lengths == 0)[0])
        raise MetricInputError(f"labels and scores{where(i, ids)} are empty: a video needs a step")
    values = np.empty(len(videos.lengths), dtype=np.float64)
    for rows in _blocks(videos.lengths, _BLOCK_ELEMENTS):
        key, y = videos.block(rows)
        values[rows] = _ap_rows(key, y, videos.lengths[rows], mode)
    skipped_index = np.flatnonzero(np.isnan(values))
    return BatchedAP(values, int(skipped_index.size), skipped_index)


@dataclass(frozen=True)
class MAPResult:
    """Mean AP over (user, video) pairs, in percent.

    ``map``: mean over evaluated pairs; ``user_map``: mean over users of each
    user's mean; ``n_pairs`` evaluated pairs, ``n_users`` users with at least
    one; ``n_skipped`` pairs without an AP (listed in ``skipped``);
    ``user_aps``: each user's mean AP in percent.
    """

    map: float
    user_map: float
    n_pairs: int
    n_skipped: int
    n_users: int
    skipped: tuple[tuple[str, str], ...] = ()
    user_aps: dict[str, float] = field(default_factory=dict)


def _ids(ids: Any, name: str) -> list[str]:
    """``ids`` as a list of texts: a sequence or array of ids, not one string (its letters
    would be ids) and not None (a ``TypeError``)."""
    if ids is None or isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise MetricInputError(f"{name} must be a sequence of ids, got {ids!r}")
    return [str(i) for i in ids]


def mean_average_precision(
    user_ids: Sequence[str], video_ids: Sequence[str], aps: ArrayLike | BatchedAP
) -> MAPResult:
    """mAP (%) "treating videos separately": ``100 * mean_{(u, v)} AP(u, v)``, and the user mean.

    ``aps`` (P,) in [0, 1], one per (user, video) pair; None or NaN marks a
    skipped pair (no positive label), which is counted and listed, never
    averaged. A repeated (user, video) pair raises, as does having no AP at all.
    """
    if isinstance(aps, BatchedAP):
        aps = aps.values
    if isinstance(aps, list | tuple):
        if not all(a is None or is_real(a) for a in aps):  # "0.5" was read as 0.5, "a" failed
            raise MetricInputError(f"aps must be numbers in [0, 1] or None, got {aps!r:.80}")
        vals = np.array([np.nan if a is None else a for a in aps], dtype=np.float64)
    else:
        arr = to_numpy(aps, "aps")
        if arr.dtype.kind not in "biuf":  # text APs: NumPy's ValueError in astype before
            raise MetricInputError(f"aps must be numbers in [0, 1], got dtype {arr.dtype}")
        vals = arr.astype(np.float64).reshape(-1)
    users, videos = _ids(user_ids, "user_ids"), _ids(video_ids, "video_ids")
    if not (len(users) == len(videos) == len(vals)):
        raise MetricInputError(
            f"user_ids, video_ids and aps differ in length: {len(users)}, {len(videos)}, {len(vals)}"
        )
    if not len(vals):
        raise MetricInputError("mean_average_precision got no (user, video) pairs")
    seen: set[tuple[str, str]] = set()
    for pair in zip(users, videos, strict=True):
        if pair in seen:
            raise MetricInputError(f"(user {pair[0]!r}, video {pair[1]!r}) appears twice in aps")
        seen.add(pair)
    bad = np.flatnonzero(np.isinf(vals) | (vals < 0) | (vals > 1))
    if bad.size:
        i = int(bad[0])
        raise MetricInputError(
            f"AP of (user {users[i]!r}, video {videos[i]!r}) is {vals[i]!r}; APs must be in [0, 1] "
            "(fractions, not percent)"
        )
    skip = np.isnan(vals)
    if skip.all():
        raise NoPositiveLabelError(
            f"all {len(vals)} (user, video) pairs were skipped; there is no mAP"
        )
    per_user: dict[str, list[float]] = defaultdict(list)
    for u, a, s in zip(users, vals.tolist(), skip.tolist(), strict=True):
        if not s:
            per_user[u].append(a)
    user_aps = {u: 100.0 * float(np.mean(v)) for u, v in sorted(per_user.items())}
    return MAPResult(
        map=100.0 * float(vals[~skip].mean()),
        user_map=float(np.mean(list(user_aps.values()))),
        n_pairs=int((~skip).sum()),
        n_skipped=int(skip.sum()),
        n_users=len(user_aps),
        skipped=tuple((users[i], videos[i]) for i in np.flatnonzero(skip)),
        user_aps=user_aps,
    )
