"""Argument checks shared by the public constructors (datasets, the detector, models).

One place for "an int of at least k" and "a finite number of at least x": a string, a
float or a bool passed where a count or a size belongs is a
:class:`~highlightzoo.errors.ConfigError` naming the argument, not a ``TypeError`` from a
comparison deep inside (or a failure at a model's first forward), nor silently used.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from highlightzoo.errors import ConfigError, HighlightZooError


def is_real(value: Any) -> bool:
    """A real number (NumPy scalars included), not a bool (``True`` is an int to Python)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


#: every int the package hands to torch, NumPy or itertools must be below this (they hold int64
#: or ssize_t): a seed or a batch size of 1e20 was their overflow traceback
INT64_LIMIT = 2**63

#: the longest time, in seconds, that a PHD-GIFs CSV may give (24 h): PHD-GIFs' longest video
#: lasts 3.2 h and YouTube takes none over 12 h, so more is not a video's seconds (1e30 s was a
#: rendering or a store of that many steps, tried before anything said so). The metrics bound
#: frames instead (``metrics.protocols.MAX_FRAMES``), so long videos of other stores evaluate.
MAX_VIDEO_SECONDS = 86_400.0


def int_at_least(value: Any, minimum: int, name: str, *, allow_none: bool = False,
                 error: type[HighlightZooError] = ConfigError) -> int | None:
    """``value`` as a Python int ``>= minimum`` and below :data:`INT64_LIMIT` (NumPy integers are
    taken; ``None`` too when
    ``allow_none``), else an ``error`` (a :class:`ConfigError`; the metrics raise their own
    :class:`~highlightzoo.errors.MetricInputError`) saying what ``name`` must be."""
    if value is None and allow_none:
        return None
    if isinstance(value, numbers.Integral) and is_real(value) and value >= minimum:
        if value < INT64_LIMIT:
            return int(value)
        # torch and NumPy take no larger int: it would end in an overflow traceback later
        raise error(f"{name} must be below 2**63, got {value!r}")
    raise error(f"{name} must be an int >= {minimum}{' or None' if allow_none else ''}, "
                f"got {value!r}")


def number_at_least(value: Any, minimum: float, name: str, *, above: bool = False) -> float:
    """``value`` as a finite float ``>= minimum`` (``> minimum`` when ``above``), else a
    :class:`ConfigError` saying what ``name`` must be."""
    if is_real(value) and value < math.inf and (value > minimum if above else value >= minimum):
        return float(value)
    raise ConfigError(f"{name} must be a finite number {'>' if above else '>='} {minimum:g}, "
                      f"got {value!r}")


def flag(value: Any, name: str, *, allow_none: bool = False) -> bool | None:
    """``value`` as a bool (NumPy bools are taken; ``None`` too when ``allow_none``), else a
    :class:`ConfigError`: a string such as ``"no"`` is truthy, so it would silently mean yes."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ConfigError(f"{name} must be true or false{' or None' if allow_none else ''}, "
                      f"got {value!r}")
