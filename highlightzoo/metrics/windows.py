"""Score transforms that evaluation protocols apply before AP.

- :func:`window_average`: the A-VHD protocol averages frame scores inside
  consecutive ``window_s``-second windows (5 s in A-VHD and PR-Net's PHD-GIFs
  comparison) and gives every step its window's mean.
- :func:`broadcast_segment_scores`: segment-level models (PHD-GIFs, Video2GIF)
  score segments; every step takes the score of its segment.

Both work on one video ``(T,)`` or a padded batch ``(B, T)`` and return the
kind they were given (numpy stays numpy; a torch tensor keeps its device and
dtype), so they can run inside the evaluation loop on the GPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from highlightzoo.errors import MetricInputError
from highlightzoo.metrics._checks import _as_float, real_number
from highlightzoo.models.components.pooling import (
    broadcast_segment_scores as segment_scores_to_steps,
)

_EPS = 1e-9  # slack for window boundaries that fall exactly on a step


def _as_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise MetricInputError(f"{name} must be real numbers, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _back(out: Tensor, like: Any) -> Any:
    return out if isinstance(like, Tensor) else out.numpy()


def _lengths(lengths: Any, b: int, t: int, device: torch.device) -> Tensor:
    """``lengths`` as (B,) integers in [0, T], else a :class:`MetricInputError` (a wrong
    shape was an ``IndexError`` of a mask; fractions were cut to whole steps)."""
    lens = _as_tensor(lengths, "lengths").to(device)
    if lens.shape != (b,) or lens.dtype.is_floating_point or lens.dtype == torch.bool:
        raise MetricInputError(
            f"lengths must be ({b},) integers, one per row of scores, got "
            f"{tuple(lens.shape)} {lens.dtype}"
        )
    if ((lens < 0) | (lens > t)).any():
        raise MetricInputError(f"lengths must lie in [0, {t}] steps, got {lens.tolist()}")
    return lens


def window_average(
    scores: Any, rate: float | Any, window_s: float = 5.0, lengths: Any | None = None
) -> Any:
    """Each step's score replaced by the mean score of its ``window_s``-second window.

    ``scores`` (T,) or padded (B, T); ``rate`` steps per second (a number or
    (B,)); ``lengths`` (B,) real steps per row (default all). Step ``i`` (time
    ``i / rate``) falls in window ``floor(i / (window_s * rate))``; the last
    window of a video may be shorter. Padding is returned unchanged. The means
    are computed in float64 and returned in the input's dtype.
    """
    x = _as_tensor(scores, "scores")
    single = x.dim() == 1
    if single:
        x = x[None]
    if x.dim() != 2 or x.shape[1] == 0:
        raise MetricInputError(f"scores must be (T,) or (B, T) with T >= 1, got {tuple(x.shape)}")
    window_s = real_number(window_s, "window_s (seconds)", 0.0, math.inf)  # None: a TypeError
    b, t = x.shape
    dev = x.device
    rates = _as_tensor(rate, "rate").to(dev, torch.float64).reshape(-1)  # "x": torch's TypeError
    if rates.numel() not in (1, b):
        raise MetricInputError(f"rate must be one number or ({b},), got {tuple(rates.shape)}")
    rates = rates.expand(b)
    if not (torch.isfinite(rates) & (rates > 0)).all():
        raise MetricInputError(f"rate must be finite and > 0 steps per second, got {rate!r}")
    steps = torch.arange(t, device=dev)
    lens = torch.full((b,), t, device=dev) if lengths is None else _lengths(lengths, b, t, dev)
    real = steps[None, :] < lens.reshape(-1, 1)
    values = x.to(torch.float64)
    if not torch.isfinite(values[real]).all():
        raise MetricInputError(
            "scores hold NaN or Inf on real steps; window averaging needs finite scores"
        )
    window_steps = window_s * rates[:, None]
    window = torch.floor(steps[None, :] / window_steps + _EPS).long()  # (B, T)
    # a window shorter than a step holds one step: numbered with gaps, its empty windows would
    # be allocated (1e-9 s at 1.875 steps/s: 5e8 per step), so number it step by step
    window = torch.where(window_steps < 1, steps[None, :], window)
    n_windows = int(window.max()) + 1
    flat = (window + n_windows * torch.arange(b, device=dev)[:, None])[real]
    sums = torch.zeros(b * n_windows, dtype=torch.float64, device=dev).index_add_(
        0, flat, values[real]
    )
    counts = torch.zeros_like(sums).index_add_(0, flat, torch.ones_like(values[real]))
    means = rearrange(sums / counts.clamp_min(1), "(b w) -> b w", b=b)
    out = torch.where(real, torch.gather(means, 1, window), values).to(x.dtype)
    return _back(out[0] if single else out, scores)


def broadcast_segment_scores(segment_scores: Any, segment_index: Any, fill: float = 0.0) -> Any:
    """Per-step scores from per-segment scores: ``out[..., t] = segment_scores[..., segment_index[..., t]]``.

    ``segment_scores`` (S,) or (B, S); ``segment_index`` (T,) or (B, T) integer,
    the segment of each step, -1 on padding (those steps get ``fill``). The
    inputs are checked here; the gather is
    :func:`highlightzoo.models.components.pooling.broadcast_segment_scores`, the
    one the segment models use, so evaluation and models cannot disagree.
    """
    seg = _as_tensor(segment_scores, "segment_scores")
    idx = _as_tensor(segment_index, "segment_index").to(seg.device)
    single = seg.dim() == 1
    if single:
        seg, idx = seg[None], idx[None] if idx.dim() == 1 else idx
    if seg.dim() != 2 or idx.dim() != 2 or seg.shape[0] != idx.shape[0]:
        raise MetricInputError(
            "segment_scores (B, S) and segment_index (B, T) must agree on B, got "
            f"{tuple(seg.shape)} and {tuple(idx.shape)}"
        )
    if idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise MetricInputError(f"segment_index must be integers, got {idx.dtype}")
    bad = (idx < -1) | (idx >= seg.shape[1])
    if bad.any():
        row, col = (int(v) for v in bad.nonzero()[0])
        raise MetricInputError(
            f"segment_index[{row}, {col}] = {int(idx[row, col])} is not a segment "
            f"(there are {seg.shape[1]}; -1 marks padding)"
        )
    if _as_float(fill) is None:  # NaN and inf are taken: a fill marks padding
        raise MetricInputError(f"fill must be a number, got {fill!r}")
    try:  # integer scores hold no NaN, inf or 2**70 (torch's RuntimeError / OverflowError)
        torch.full((), fill, dtype=seg.dtype)
    except (RuntimeError, OverflowError) as err:
        raise MetricInputError(f"fill {fill!r} does not fit scores of dtype {seg.dtype}") from err
    picked = segment_scores_to_steps(seg, idx.long())  # the models' own kernel
    out = torch.where(idx >= 0, picked, torch.full_like(picked, fill))
    return _back(out[0] if single else out, segment_scores)
