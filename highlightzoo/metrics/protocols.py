"""Evaluation protocols: how one video's per-step output becomes one AP.

Two protocols exist (docs/evaluation.md, "Protocols"):

- ``"steps"``: AP of the per-step scores against the per-step labels (a step
  is positive when a highlight covers enough of it); what the zoo used first.
- ``"avhd"``: the A-VHD reference test protocol, which the PR-Net paper's
  Table 1 follows. Per-step probabilities are stretched to the video's frames
  at ``fps`` by nearest-neighbour up-sampling, every ``window_s``-second window
  of frames is replaced by its mean, and the interpolated AP is taken against
  frame-level ground truth built from the highlight segments in seconds.

:func:`avhd_protocol_ap` is the second one, as small pure steps
(:func:`nearest_source_steps`, :func:`frame_windows`, :func:`frame_labels`)
that each have known-answer tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from highlightzoo.errors import MetricInputError, NoPositiveLabelError
from highlightzoo.metrics._checks import ArrayLike, as_scores, positive_rate, real_number, to_numpy
from highlightzoo.metrics.ap import average_precision

Protocol = Literal["avhd", "steps"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)

#: Frames per second of the A-VHD reference's frame-level ground truth.
AVHD_FPS = 30.0
#: the most frames :func:`avhd_protocol_ap` lays out (its labels and scores are arrays of one
#: value per frame: 1e8 frames, 38 days at 30 fps, take about 2 GB)
MAX_FRAMES = 100_000_000
#: Seconds per averaging window of the A-VHD reference (150 frames at 30 fps).
AVHD_WINDOW_S = 5.0


def check_protocol(protocol: str, where: str = "protocol") -> str:
    """``protocol`` if it is one of :data:`PROTOCOLS`; else :class:`MetricInputError`."""
    if protocol not in PROTOCOLS:
        raise MetricInputError(
            f"{where} must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
        )
    return protocol


def nearest_source_steps(n_steps: int, n_frames: int) -> np.ndarray:
    """(n_frames,) int64: the step each frame takes when ``n_steps`` are up-sampled to ``n_frames``.

    Replicates ``torch.nn.functional.interpolate(mode="nearest", size=n_frames)``
    on a float32 tensor (the reference's softmax output; torch computes the scale
    of a float64 tensor in float64): the scale is ``float32(n_steps) / float32(n_frames)`` and
    frame ``f`` takes ``min(floor(float32(f) * scale), n_steps - 1)``, all in
    float32. This differs from the exact ``floor(f * n_steps / n_frames)`` for
    some size pairs; the reference used torch, so we follow torch.
    """
    if n_steps < 1 or n_frames < 1:
        raise MetricInputError(
            f"up-sampling needs n_steps >= 1 and n_frames >= 1, got {n_steps} and {n_frames}"
        )
    frames = np.arange(n_frames)
    if n_frames == n_steps:  # torch's shortcuts; the float32 formula agrees with both
        return frames
    scale = np.float32(n_steps) / np.float32(n_frames)
    source = np.floor(frames.astype(np.float32) * scale).astype(np.int64)
    return np.minimum(source, n_steps - 1)


def frame_windows(n_frames: int, fps: float, window_s: float) -> np.ndarray:
    """(n_frames,) int64: the window of each frame, ``floor(f / (fps * window_s))``.

    Windows start at frame 0 and hold ``fps * window_s`` frames (150 at the
    reference's 30 fps and 5 s); the last one may be partial.
    """
    # a window as long as the video is all of it: the bound keeps a huge window_s (1e21 s)
    # from overflowing the integer division
    frames, width = np.arange(n_frames), min(fps * window_s, max(n_frames, 1))
    if width == int(width):  # the usual case (150): integer division, no rounding at the edges
        return frames // int(width)
    return np.floor(frames / width).astype(np.int64)


def window_means(values: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Each value replaced by the mean of its window; ``windows`` non-decreasing ids.

    The sum is exact (``math.fsum``) before one division, so two windows holding
    the same values in any order get the same mean (ties stay ties). The
    reference averages in float32 with ``np.mean``, whose rounding can split
    such ties; that is the one place we do not follow it bit for bit.
    """
    starts = np.flatnonzero(np.diff(windows, prepend=-1))
    stops = np.append(starts[1:], len(values))
    means = np.array([math.fsum(values[a:b]) / (b - a) for a, b in zip(starts, stops, strict=True)])
    return np.repeat(means, stops - starts)


def frame_labels(n_frames: int, fps: float, segments_s: np.ndarray) -> np.ndarray:
    """(n_frames,) int8: 1 where ``f / fps`` lies in ``[start, end)`` of any segment (K, 2)."""
    t = np.arange(n_frames) / fps
    if len(segments_s) == 0:
        return np.zeros(n_frames, dtype=np.int8)
    inside = (t[None, :] >= segments_s[:, :1]) & (t[None, :] < segments_s[:, 1:])
    return inside.any(axis=0).astype(np.int8)


def _segments(segments_s: ArrayLike | Sequence[tuple[float, float]]) -> np.ndarray:
    """(K, 2) float64 ``[start, end)`` seconds, finite, ``start < end``."""
    arr = to_numpy(segments_s, "segments_s")
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "biuf":
        raise MetricInputError(
            f"segments_s must be (start_s, end_s) pairs of numbers, got shape {arr.shape} "
            f"and dtype {arr.dtype}"
        )
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr).all(axis=1) | (arr[:, 0] >= arr[:, 1])
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise MetricInputError(
            f"segments_s[{k}] = {arr[k].tolist()} is not a finite span with start < end (seconds)"
        )
    return arr


def avhd_protocol_ap(
    step_probs: ArrayLike,
    rate: float,
    duration_s: float,
    segments_s: ArrayLike | Sequence[tuple[float, float]],
    fps: float = AVHD_FPS,
    window_s: float = AVHD_WINDOW_S,
) -> float:
    """AP of one video under the A-VHD reference test protocol (the PR-Net paper's Table 1).

    ``step_probs`` (T,): the model's per-step highlight probability
    (``ModelOutput.probs``); ``rate``: its steps per second; ``duration_s``:
    the video's duration; ``segments_s`` (K, 2): the user's highlights on this
    video, ``[start, end)`` seconds. Steps:

    1. ``n_frames = round(duration_s * fps)``; frame ``f`` takes step
       :func:`nearest_source_steps` ``(T, n_frames)[f]`` (the T steps are
       stretched over the whole video, whatever ``rate`` says, as in the
       reference; ``rate`` is only validated);
    2. each window of ``fps * window_s`` frames from frame 0 (the last one
       partial) is replaced by its mean (float64: equal windows stay tied);
    3. frame ``f`` is positive iff ``f / fps`` is in ``[start, end)`` of a
       segment (the max over the user's segments);
    4. AP = the interpolated :func:`~highlightzoo.metrics.average_precision`.

    Raises :class:`NoPositiveLabelError` when no frame is positive (the video
    has no AP; skip and count it) and :class:`MetricInputError` on bad input.
    """
    probs = as_scores(step_probs, "step_probs")
    positive_rate(rate)
    duration = real_number(duration_s, "duration_s", 0.0, math.inf)
    fps = real_number(fps, "fps", 0.0, math.inf)
    window_s = real_number(window_s, "window_s", 0.0, math.inf)
    segments = _segments(segments_s)
    n_frames = round(duration * fps)
    if n_frames > MAX_FRAMES:  # 1e300 s was NumPy's "Maximum allowed size exceeded"
        raise MetricInputError(
            f"duration_s = {duration_s!r} at {fps} fps is {n_frames:.3g} frames, over the "
            f"{MAX_FRAMES:.0e} whose per-frame labels this protocol lays out"
        )
    if n_frames < 1:
        raise MetricInputError(
            f"duration_s = {duration_s!r} at {fps} fps rounds to {n_frames} frames; a video "
            "needs at least one frame"
        )
    labels = frame_labels(n_frames, fps, segments)
    if not labels.any():
        raise NoPositiveLabelError(
            f"no frame of the {duration} s video lies in one of its {len(segments)} highlight "
            "segment(s), so it has no AP; skip it and count it"
        )
    frames = probs[nearest_source_steps(probs.size, n_frames)]
    windows = frame_windows(n_frames, fps, window_s)
    return average_precision(labels, window_means(frames, windows))
