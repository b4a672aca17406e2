"""From highlight segments in seconds to per-step labels and step ranges.

Annotations live in seconds; models see feature *steps* at a feature rate
(steps per second). Step ``i`` spans the half-open time interval
``[i / rate, (i + 1) / rate)``.

Label rule (docs/data.md, "Labels"): a step is positive
when the *union* of the highlight segments covers at least ``min_fraction`` of
its span (default one half). Overlapping segments are merged first, so two
segments covering the same second never count twice; a segment shorter than
``min_fraction`` of a step labels nothing on its own.

Step-range rule for history segments (:func:`segment_steps`): the steps whose
midpoint ``(i + 0.5) / rate`` lies in ``[start, end]``. For a segment at least
one step long this is exactly the set of steps the label rule makes positive
with ``min_fraction=0.5``; a shorter segment still gets one step (the one
holding its midpoint), and the range is clipped to the video.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from highlightzoo.checks import int_at_least, is_real
from highlightzoo.errors import ConfigError, DataFormatError

_EPS = 1e-9


def _seconds(value: object) -> float | None:
    """``value`` as a finite float (NumPy scalars and 0-d tensors too), else None."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


def checked_segment(start_s: object, end_s: object) -> tuple[float, float]:
    """``(start_s, end_s)`` as floats, else a :class:`DataFormatError`: both finite numbers and
    ``start_s <= end_s`` (a reversed or NaN segment was silently dropped or moved before)."""
    start, end = _seconds(start_s), _seconds(end_s)
    if start is None or end is None:
        raise DataFormatError(f"a segment must be two finite numbers of seconds, got "
                              f"({start_s!r}, {end_s!r})")
    if start > end:
        raise DataFormatError(f"a segment must not end before it starts, got ({start_s!r}, "
                              f"{end_s!r})")
    return start, end


def _pair(pair: object) -> tuple[float, float]:
    try:
        start_s, end_s = pair  # type: ignore[misc]
    except (TypeError, ValueError):
        raise DataFormatError(f"a segment must be a (start, end) pair of seconds, got "
                              f"{pair!r}") from None
    return checked_segment(start_s, end_s)


def merge_segments(segments_s: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
    """Sorted, disjoint union of ``(start, end)`` intervals (empty ones dropped; a reversed or
    non-finite one is a :class:`DataFormatError`)."""
    if segments_s is None or isinstance(segments_s, (str, bytes)):  # None: a TypeError
        raise DataFormatError(f"segments must be (start, end) pairs of seconds, got "
                              f"{segments_s!r}")
    spans = sorted(span for span in map(_pair, segments_s) if span[1] > span[0])
    merged: list[tuple[float, float]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def step_coverage(segments_s: Iterable[Sequence[float]], n_steps: int, rate: float) -> np.ndarray:
    """(n_steps,) float64: fraction of each step's span covered by the segments' union."""
    rate, n_steps = _checked_rate(rate, n_steps)
    covered = np.zeros(n_steps, dtype=np.float64)
    step = 1.0 / rate
    for s, e in merge_segments(segments_s):
        first = max(int(math.floor(_bounded(s * rate, n_steps))), 0)
        stop = min(int(math.ceil(_bounded(e * rate, n_steps))), n_steps)
        if stop <= first:
            continue
        idx = np.arange(first, stop)
        lo = np.maximum(idx * step, s)
        hi = np.minimum((idx + 1) * step, e)
        covered[first:stop] += np.clip(hi - lo, 0.0, None)
    return covered * rate


def fraction_of_a_step(min_fraction: object) -> float:
    """``min_fraction`` as a float in (0, 1] (how much of a step a segment must cover to label
    it positive), else a :class:`ConfigError`."""
    if not (is_real(min_fraction) and 0.0 < min_fraction <= 1.0):  # NaN fails the comparison
        raise ConfigError(f"min_fraction (of a step a segment must cover) must be a number in "
                          f"(0, 1], got {min_fraction!r}")
    return float(min_fraction)


def segments_to_step_labels(
    segments_s: Iterable[Sequence[float]],
    n_steps: int,
    rate: float,
    min_fraction: float = 0.5,
) -> np.ndarray:
    """(n_steps,) float32 0/1 labels: 1 where the segments cover >= ``min_fraction`` of a step.

    ``segments_s`` is any iterable of ``(start, end)`` pairs in seconds (an
    ``(K, 2)`` array works). Parts of segments outside ``[0, n_steps / rate)``
    are ignored.
    """
    min_fraction = fraction_of_a_step(min_fraction)
    coverage = step_coverage(segments_s, n_steps, rate)
    return (coverage >= min_fraction - _EPS).astype(np.float32)


def segment_steps(start_s: float, end_s: float, rate: float, n_steps: int) -> tuple[int, int]:
    """``(first, stop)``: the steps of a history segment, at least one, inside ``[0, n_steps)``.

    Steps whose midpoint lies in ``[start_s, end_s]``; if none does (a segment
    shorter than one step), the step holding the segment's midpoint. A reversed or non-finite
    segment is a :class:`DataFormatError`.
    """
    start_s, end_s = checked_segment(start_s, end_s)
    rate, n_steps = _checked_rate(rate, n_steps)
    if n_steps < 1:
        raise DataFormatError("a video needs at least one step")
    first = int(math.ceil(_bounded(start_s * rate, n_steps) - 0.5 - _EPS))
    stop = int(math.floor(_bounded(end_s * rate, n_steps) - 0.5 + _EPS)) + 1
    first, stop = max(first, 0), min(stop, n_steps)
    if stop <= first:
        mid = int(math.floor(_bounded(0.5 * (start_s + end_s) * rate, n_steps)))
        first = min(max(mid, 0), n_steps - 1)
        stop = first + 1
    return first, stop


def _bounded(steps: float, n_steps: int) -> float:
    """A position in steps clipped to ``[-1, n_steps + 1]``: the same steps of the video, and a
    time of 1e300 s at 1e300 steps/s (inf steps) no longer overflows ``int``."""
    return min(max(steps, -1.0), n_steps + 1.0)


def _checked_rate(rate: object, n_steps: object) -> tuple[float, int]:
    """``(rate, n_steps)`` as a finite float > 0 and an int >= 0 (NumPy scalars taken), else a
    :class:`DataFormatError` (a ``ValueError``): ``None`` or text was a comparison's
    ``TypeError``, and a float32 rate overflowed ``start * rate`` to inf for huge times."""
    if not (is_real(rate) and 0 < rate < math.inf):
        raise DataFormatError(f"feature rate must be a positive number of steps per second, "
                              f"got {rate!r}")
    return float(rate), int_at_least(n_steps, 0, "n_steps", error=DataFormatError)
