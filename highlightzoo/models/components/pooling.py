"""Fixed-window segment pooling in seconds, and broadcasting segment scores back to steps.

Segment models (PHD-GIFs, Video2GIF) score segments, not steps. PR-Net's
comparison cuts every video into 5-second shots; a step belongs to the window
that contains its start time. Windows are laid on the *video's* clock: a clip
that starts at step ``offset`` of its video uses the same windows as the
whole video, so its first segment may be partial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from highlightzoo.batch import HostCounts
from highlightzoo.checks import number_at_least
from highlightzoo.device import to_device_without_waiting
from highlightzoo.errors import DataFormatError
from highlightzoo.models.components.heads import full_precision_region

#: up to this many segments (+1 spare) per row, and no more than the features have channels
#: (so the weight matrix is never larger than the copy it replaces), :func:`pool_segments`
#: sums them as one batched matmul with a (B, S, T) weight matrix; otherwise it scatters a
#: weighted copy of the features, whose cost does not grow with S. On one core of this
#: project's 2-core CPU the matmul costs ~0.03 * S ns per feature value against ~4 ns for
#: the copy and scatter (break-even near S = 130; 5x faster at S = 27, a 256-step training
#: clip at 2 steps/s; docs/performance.md, "History summaries without copies"). A GPU
#: favours the matmul more.
ONE_MATMUL_SEGMENTS = 128

# Relative slack so that a step starting exactly on a window boundary lands in the later
# window despite float error: rates arrive as float32 (0.1 steps/s is 0.10000000149).
_BOUNDARY_RTOL = 1e-6


@dataclass
class Segments:
    """Fixed-window segments of a padded batch.

    ``features`` (B, S, D): mean of each segment's valid steps (0 on empty
    segments); ``mask`` (B, S) bool: segment has at least one valid step;
    ``index`` (B, T) long: segment of each step, -1 on padding.
    """

    features: Tensor
    mask: Tensor
    index: Tensor


def _relative_windows(
    rates: np.ndarray, offsets: np.ndarray, steps: int, window_s: float, video_ids: list[str] | None
) -> np.ndarray:
    """(B, T) int64 window of every step (valid or not) from host float64 rates and offsets,
    counted from each row's first window; a typed error for a rate that is not positive."""
    bad = np.flatnonzero(~np.isfinite(rates) | (rates <= 0))
    if bad.size:
        row = int(bad[0])
        video = video_ids[row] if video_ids and row < len(video_ids) else str(row)
        raise DataFormatError(
            f"feature rate must be a positive number of steps per second, got {rates[row]}",
            video=video, reason="rate",
        )
    # A window shorter than a step puts every step in a window of its own, numbered with
    # gaps (1e-9 s at 1.875 steps/s: 5e8 empty windows per step, terabytes of segments), so
    # those rows take the same partition numbered without gaps.
    per_step = rates * window_s < 1.0
    slots = np.arange(steps, dtype=np.float64)[None, :]
    window_steps = np.where(per_step, 1.0, rates * window_s)[:, None]
    absolute = np.floor((slots + offsets[:, None]) / window_steps * (1.0 + _BOUNDARY_RTOL))
    relative = np.where(per_step[:, None], slots, absolute - absolute[:, :1])
    return relative.astype(np.int64)


def check_window_s(window_s: object) -> float:
    """``window_s`` as a float of positive, finite seconds (a segment model's window), else a
    :class:`ConfigError`: checked when the model is built, not at its first forward."""
    return number_at_least(window_s, 0, "window_s (the segment window, seconds)", above=True)


def _windows(
    video_mask: Tensor,
    rate: Tensor,
    window_s: float,
    offsets: Tensor | None,
    video_ids: list[str] | None,
    host: HostCounts | None,
) -> tuple[Tensor, int]:
    """:func:`window_index` and the number of windows ``S`` of the longest row. ``host``: the
    collate's rates, offsets and lengths, so nothing is read back from the device."""
    window_s = check_window_s(window_s)
    b, t = video_mask.shape
    if host is not None:
        rates, starts = np.asarray(host.rates, np.float64), np.asarray(host.offsets, np.float64)
    else:  # the device read: rates and offsets to the host (a sync on a GPU)
        rates = rate.double().cpu().numpy()
        starts = np.zeros(b) if offsets is None else offsets.double().cpu().numpy()
    relative = _relative_windows(rates, starts, t, window_s, video_ids)
    moved = to_device_without_waiting(torch.from_numpy(relative), video_mask.device)
    index = torch.where(video_mask, moved, torch.full_like(moved, -1))
    if host is not None:  # windows increase with the step: a row's last real step has its most
        count = max([int(relative[i, n - 1]) + 1 for i, n in enumerate(host.lengths) if n > 0],
                    default=0)
    else:
        count = int(index.max()) + 1 if index.numel() else 0
    return index, max(count, 0)


def window_index(
    video_mask: Tensor,
    rate: Tensor,
    window_s: float,
    offsets: Tensor | None = None,
    video_ids: list[str] | None = None,
    host: HostCounts | None = None,
) -> Tensor:
    """(B, T) long: the window of each valid step, counted from the clip's first window; -1 on padding.

    Step ``t`` of row ``b`` starts at ``(offsets[b] + t) / rate[b]`` seconds;
    its window is ``floor(start / window_s)`` minus the window of the clip's
    first step, so every row's indices start at 0. A start within a relative
    1e-6 below a boundary counts as on it (float32 rates are inexact). Computed on the
    host in float64; ``host``: the batch's :class:`~highlightzoo.batch.HostCounts`, which
    spares reading rates and offsets back from the device.
    """
    return _windows(video_mask, rate, window_s, offsets, video_ids, host)[0]


def pool_segments(
    features: Tensor,
    video_mask: Tensor,
    rate: Tensor,
    window_s: float = 5.0,
    offsets: Tensor | None = None,
    video_ids: list[str] | None = None,
    host: HostCounts | None = None,
    step_scale: Tensor | None = None,
) -> Segments:
    """Mean-pool ``features`` (B, T, D) over fixed ``window_s``-second windows.

    ``S`` is the largest number of windows of any row; segments past a row's
    end, and windows holding no step (possible when a window is shorter than
    one step), are masked out. ``host``: as in :func:`window_index` (no device read).
    ``step_scale`` (B, T): each step's features are scaled by it before pooling
    (``1 / ||x_t||``: the means of L2-normalised steps), folded into the mask's weights
    so no scaled copy of ``features`` is made.
    """
    index, s = _windows(video_mask, rate, window_s, offsets, video_ids, host)
    b, t, d = features.shape
    slot = torch.where(index < 0, torch.full_like(index, s), index)  # padding -> spare slot
    weights = video_mask.to(features.dtype)
    counts = features.new_zeros(b, s + 1).scatter_add_(1, slot, weights)
    if step_scale is not None:
        weights = weights * step_scale.to(features.dtype)
    if s + 1 <= min(ONE_MATMUL_SEGMENTS, d):
        # row s of ``pick`` holds each step's weight in segment s: one batched matmul sums
        # the segments, with no weighted copy of the features (autocast off: not cast down)
        pick = features.new_zeros(b, s + 1, t).scatter_(1, slot[:, None, :], weights[:, None, :])
        with full_precision_region(features.device.type):
            sums = torch.bmm(pick, features)
    else:
        sums = features.new_zeros(b, s + 1, d).scatter_add_(
            1, slot[..., None].expand(b, t, d), features * weights[..., None]
        )
    sums, counts = sums[:, :s], counts[:, :s]
    return Segments(sums / counts.clamp(min=1.0)[..., None], counts > 0, index)


def broadcast_segment_scores(segment_scores: Tensor, index: Tensor) -> Tensor:
    """(B, T) step scores: each step takes its segment's score; 0 on padding (index -1).

    ``segment_scores`` (B, S) or (B, S, K) for K values per segment.
    """
    safe = index.clamp(min=0)
    if segment_scores.dim() == 3:
        gathered = torch.gather(
            segment_scores, 1, safe[..., None].expand(*safe.shape, segment_scores.shape[-1])
        )
        return gathered * (index >= 0)[..., None].to(gathered.dtype)
    if segment_scores.shape[1] == 0:
        return segment_scores.new_zeros(index.shape)
    gathered = torch.gather(segment_scores, 1, safe)
    return gathered * (index >= 0).to(gathered.dtype)
