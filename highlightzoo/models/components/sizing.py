"""Size options of the baselines: ``width_mult``, a multiplier of the reference channel counts.

FCSN, A-VHD, Video2GIF and PHD-GIFs are sized by ``width_mult`` (1.0 = the
reference sizes); PR-Net is sized by ``width``, a channel count. The two
names differ on purpose: a channel count given as a multiplier (``64``
instead of ``0.25``) would build a model 64 times wider in every layer.
:func:`check_width_mult` rejects values outside a sane range at once;
:func:`highlightzoo.models.registry.create_model` also refuses any model over
its parameter limit unless ``allow_large=True``.
"""

from __future__ import annotations

import math
import numbers

from highlightzoo.errors import ConfigError

# A multiplier above this is almost surely a channel count typed into the wrong option.
MAX_WIDTH_MULT = 8.0


def check_width_mult(model: str, width_mult: object) -> float:
    """``width_mult`` as a float in (0, MAX_WIDTH_MULT], else a :class:`ConfigError` naming it."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, numbers.Real):
        raise ConfigError(
            f"{model}: width_mult must be a number (a multiplier, 1.0 = reference), "
            f"got {width_mult!r}"
        )
    value = float(width_mult)
    if not math.isfinite(value) or not 0.0 < value <= MAX_WIDTH_MULT:
        raise ConfigError(
            f"{model}: width_mult must be in (0, {MAX_WIDTH_MULT:g}] (a multiplier of the "
            f"reference channel counts, 1.0 = reference), got {width_mult!r}"
        )
    return value
