"""Input conversion and validation shared by every metric.

Metrics accept numpy arrays, torch tensors (CPU or CUDA) and plain lists. They
are converted to numpy once, here, and checked so that a metric never averages
over a NaN or a mislabelled step: bad input raises
:class:`~highlightzoo.errors.MetricInputError` with a message that says which
video and what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from highlightzoo.checks import int_at_least
from highlightzoo.errors import MetricInputError

ArrayLike = Any  # np.ndarray | torch.Tensor | Sequence[float]; kept loose for duck typing


def to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a numpy array; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.dtype.itemsize < 4:  # bf16/fp16: numpy has no bf16
            x = x.float()
        return x.numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise MetricInputError(f"{name} is not array-like: {err}") from err
    if arr.dtype == object:
        raise MetricInputError(f"{name} must be numeric, got ragged or non-numeric data")
    return arr


def where(index: int | None, ids: Sequence[str] | None = None) -> str:
    """A short ' (video ...)' tag for error messages."""
    if index is None:
        return ""
    if ids is not None and index < len(ids):
        return f" (video {ids[index]!r}, index {index})"
    return f" (video index {index})"


def as_scores(x: ArrayLike, name: str = "scores", at: str = "") -> np.ndarray:
    """1-D float64 scores, finite everywhere."""
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise MetricInputError(f"{name}{at} must be 1-D (T,), got shape {arr.shape}")
    if arr.size == 0:
        raise MetricInputError(f"{name}{at} is empty: a video needs at least one step")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MetricInputError(f"{name}{at} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise MetricInputError(f"{name}{at} must be real, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    check_finite(arr, name, at)
    return arr


def check_finite(arr: np.ndarray, name: str, at: str = "") -> None:
    """Raise when ``arr`` holds NaN or +-Inf, naming the first bad step."""
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise MetricInputError(
            f"{name}{at} has {int(bad.sum())} non-finite value(s) (NaN/Inf), first at "
            f"flat step {first}: {arr.ravel()[first]!r}"
        )


def as_labels(x: ArrayLike, name: str = "labels", at: str = "") -> np.ndarray:
    """1-D int8 labels in {0, 1}; any other value raises."""
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise MetricInputError(f"{name}{at} must be 1-D (T,), got shape {arr.shape}")
    if arr.size == 0:
        raise MetricInputError(f"{name}{at} is empty: a video needs at least one step")
    return binary(arr, name, at)


def binary(arr: np.ndarray, name: str, at: str = "") -> np.ndarray:
    """``arr`` as int8 after checking that every value is 0 or 1 (any shape)."""
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise MetricInputError(f"{name}{at} must be 0/1 numbers, got dtype {arr.dtype}")
    ok = (arr == 0) | (arr == 1)
    if not ok.all():
        first = int(np.flatnonzero(~ok.ravel())[0])
        raise MetricInputError(
            f"{name}{at} must be binary (0 or 1); {int((~ok).sum())} value(s) are not, "
            f"first at flat step {first}: {arr.ravel()[first]!r}. Labels come first and "
            f"scores second in every metric; threshold soft labels before evaluating"
        )
    return arr.astype(np.int8)


def video_pair(labels: ArrayLike, scores: ArrayLike, at: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels int8, scores float64) of one video, same length."""
    y = as_labels(labels, "labels", at)
    s = as_scores(scores, "scores", at)
    if y.shape != s.shape:
        raise MetricInputError(
            f"labels and scores{at} differ in length: {y.shape[0]} labels vs {s.shape[0]} scores"
        )
    return y, s


def _as_float(value: Any) -> float | None:
    """``value`` as a float, or None for what is not a number: a string (``float("2")``
    would take it), a bool, None, an array of more than one value. NaN stays NaN."""
    if isinstance(value, (str, bytes, bool)) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def real_number(value: Any, name: str, low: float, high: float, *, open_low: bool = True,
                open_high: bool = False) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high`` (open at a bound
    when ``open_low`` / ``open_high``), else a :class:`MetricInputError` naming ``name``: a
    string, a bool, None or NaN is refused by name, not compared (a ``TypeError``) or let
    through."""
    x = _as_float(value)
    if x is not None and math.isfinite(x):
        above = x > low if open_low else x >= low
        below = x < high if open_high else x <= high
        if above and below:
            return x
    if math.isinf(low) and math.isinf(high):
        where = ""
    elif math.isinf(high):
        where = f" {'>' if open_low else '>='} {low:g}"
    else:
        where = f" in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    raise MetricInputError(f"{name} must be a finite number{where}, got {value!r}")


def count(value: Any, minimum: int, name: str) -> int:
    """``value`` as a Python int ``>= minimum`` (a bool, a float or a string is refused),
    else a :class:`MetricInputError` naming ``name``."""
    return int_at_least(value, minimum, name, error=MetricInputError)  # type: ignore[return-value]


def positive_rate(rate: float, at: str = "") -> float:
    """A feature rate (steps per second) that is finite and > 0."""
    r = _as_float(rate)
    if r is None or not math.isfinite(r) or r <= 0:
        raise MetricInputError(
            f"rate{at} must be a finite number of steps per second > 0, got {rate!r}"
        )
    return r
