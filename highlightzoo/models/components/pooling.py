"""Fixed-window segment pooling in seconds, and broadcasting segment scores back to steps.

Segment models (PHD-GIFs, Video2GIF) score segments, not steps. PR-Net's
comparison cuts every video into 5-second shots; a step belongs to the window
that contains its start time. Windows are laid on the *video's* clock: a clip
that starts at step ``offset`` of its video uses the same windows as the
whole video, so its first segment may be partial.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from highlightzoo.errors import DataFormatError

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


def window_index(
    video_mask: Tensor,
    rate: Tensor,
    window_s: float,
    offsets: Tensor | None = None,
    video_ids: list[str] | None = None,
) -> Tensor:
    """(B, T) long: the window of each valid step, counted from the clip's first window; -1 on padding.

    Step ``t`` of row ``b`` starts at ``(offsets[b] + t) / rate[b]`` seconds;
    its window is ``floor(start / window_s)`` minus the window of the clip's
    first step, so every row's indices start at 0. A start within a relative
    1e-6 below a boundary counts as on it (float32 rates are inexact).
    """
    if window_s <= 0:
        raise DataFormatError(f"segment window must be positive, got {window_s} s")
    bad = ~torch.isfinite(rate) | (rate <= 0)
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        video = video_ids[row] if video_ids and row < len(video_ids) else str(row)
        raise DataFormatError(
            f"feature rate must be a positive number of steps per second, got {float(rate[row])}",
            video=video, reason="rate",
        )
    b, t = video_mask.shape
    start = torch.zeros(b, dtype=torch.float64) if offsets is None else offsets.double().cpu()
    steps = torch.arange(t, dtype=torch.float64)[None, :] + start[:, None]
    window_steps = rate.double().cpu()[:, None] * window_s
    absolute = torch.floor(steps / window_steps * (1.0 + _BOUNDARY_RTOL))
    relative = (absolute - absolute[:, :1]).long().to(video_mask.device)
    return torch.where(video_mask, relative, torch.full_like(relative, -1))


def pool_segments(
    features: Tensor,
    video_mask: Tensor,
    rate: Tensor,
    window_s: float = 5.0,
    offsets: Tensor | None = None,
    video_ids: list[str] | None = None,
) -> Segments:
    """Mean-pool ``features`` (B, T, D) over fixed ``window_s``-second windows.

    ``S`` is the largest number of windows of any row; segments past a row's
    end, and windows holding no step (possible when a window is shorter than
    one step), are masked out.
    """
    index = window_index(video_mask, rate, window_s, offsets, video_ids)
    b, t, d = features.shape
    s = int(index.max()) + 1 if index.numel() else 0
    s = max(s, 0)
    slot = torch.where(index < 0, torch.full_like(index, s), index)  # padding -> spare slot
    weights = video_mask.to(features.dtype)
    sums = features.new_zeros(b, s + 1, d).scatter_add_(
        1, slot[..., None].expand(b, t, d), features * weights[..., None]
    )
    counts = features.new_zeros(b, s + 1).scatter_add_(1, slot, weights)
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
