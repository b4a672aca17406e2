"""When a training run stops: a step budget with early stopping on validation mAP.

The budget means the same thing for every model (docs/training.md, "Budget and
convergence"): it is counted in optimiser steps, validation runs every
``eval_every`` steps, and a run stops

- by ``patience``: ``patience`` validations in a row without an improvement of
  more than ``min_delta`` mAP points over the reference value (the value at the
  last such improvement), but never before ``min_steps`` optimiser steps, so a
  slow learner gets the time to leave its initial plateau; or
- by the ``cap``: ``max_steps`` optimiser steps.

A run that stopped by patience is *converged*; one that hit the cap is not
(its validation mAP may still have been rising). The best checkpoint is the
validation with the highest mAP (any increase), independent of ``min_delta``.

Everything here is pure: :func:`observe` maps (rule, state, step, value) to
the next state, so the logic has known-answer tests on scripted curves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from highlightzoo.errors import ConfigError

#: ``stop_reason`` values: converged, hit the step cap, nothing to train (a floor model), and
#: "paused" for a run stopped on request before its rule fired (resumable).
STOP_REASONS = ("patience", "cap", "untrained", "paused")


@dataclass(frozen=True)
class StoppingRule:
    """The stopping rule of a run (see the module docstring)."""

    max_steps: int
    patience: int | None = None
    min_delta: float = 0.0
    min_steps: int = 0

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps!r}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 or None, got {self.patience!r}")
        if not (self.min_delta >= 0 and math.isfinite(self.min_delta)):
            raise ConfigError(f"min_delta must be a finite number >= 0, got {self.min_delta!r}")
        if self.min_steps < 0:
            raise ConfigError(f"min_steps must be >= 0, got {self.min_steps!r}")


@dataclass(frozen=True)
class StopState:
    """Where selection stands after the validations seen so far.

    ``best_value``/``best_step``: the highest validation mAP and its step (the
    checkpoint kept); ``ref_value``: the value at the last improvement of more
    than ``min_delta`` (what patience counts from); ``bad``: validations since
    then; ``stop_reason``: None while training goes on.
    """

    best_value: float = -math.inf
    best_step: int = 0
    ref_value: float = -math.inf
    bad: int = 0
    stop_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StopState:
        return cls(**data)


def observe(rule: StoppingRule, state: StopState, step: int, value: float) -> tuple[StopState, bool]:
    """Take the validation mAP ``value`` measured after ``step`` optimiser steps.

    Returns the new state and whether this validation is the new best (save it).
    A NaN value never counts as an improvement.
    """
    if state.stop_reason is not None:
        raise ValueError(f"the run already stopped ({state.stop_reason}); no more validations")
    is_best = value > state.best_value
    significant = value > state.ref_value + rule.min_delta
    new = replace(
        state,
        best_value=value if is_best else state.best_value,
        best_step=step if is_best else state.best_step,
        ref_value=value if significant else state.ref_value,
        bad=0 if significant else state.bad + 1,
    )
    if rule.patience is not None and new.bad >= rule.patience and step >= rule.min_steps:
        new = replace(new, stop_reason="patience")
    elif step >= rule.max_steps:
        new = replace(new, stop_reason="cap")
    return new, is_best


def replay(rule: StoppingRule, curve: list[tuple[int, float]]) -> StopState:
    """The state after feeding ``(step, value)`` pairs in order, stopping where the rule stops."""
    state = StopState()
    for step, value in curve:
        state, _ = observe(rule, state, step, value)
        if state.stop_reason is not None:
            break
    return state
