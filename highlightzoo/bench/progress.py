"""Progress display of a benchmark: which model/seed is training and the time left.

The estimate of the time left is the sum, over the runs still to do, of the
mean duration of the same model's finished runs (earlier seeds, also from a
resumed folder), or of all finished runs when that model has none yet, divided
by the number of runs going at once.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TextIO


def format_seconds(seconds: float) -> str:
    """``3725.2`` -> ``"1h02m05s"``, ``65`` -> ``"1m05s"``, ``4.2`` -> ``"4s"``."""
    s = int(round(max(seconds, 0.0)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _label(seed: int | str) -> str:
    """``seed 2`` for a final run, the label itself (e.g. ``lr0.001``) for a sweep run."""
    return f"seed {seed}" if isinstance(seed, int) else f"sweep {seed}"


class Progress:
    """Line-based progress for a list of ``(model, seed)`` runs (silent when ``quiet``)."""

    def __init__(
        self,
        plan: list[tuple[str, int]],
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        jobs: int = 1,
    ) -> None:
        self.plan = list(plan)
        self.jobs = max(1, jobs)
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.clock = clock
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.done: set[tuple[str, int]] = set()
        self.started_at = clock()

    def record(self, model: str, seed: int, seconds: float) -> None:
        """Note a finished run (also used for runs found finished on resume)."""
        self.durations[model].append(float(seconds))
        self.done.add((model, seed))

    def estimate_left(self, running: tuple[str, int] | None = None) -> float | None:
        """Seconds left for the unfinished runs (None until one run has finished)."""
        every = [d for ds in self.durations.values() for d in ds]
        if not every:
            return None
        overall = sum(every) / len(every)
        left = 0.0
        for model, seed in self.plan:
            if (model, seed) in self.done:
                continue
            mine = self.durations.get(model)
            left += sum(mine) / len(mine) if mine else overall
        return left / self.jobs  # runs go to ``jobs`` processes at once

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def _counter(self, model: str, seed: int) -> str:
        index = self.plan.index((model, seed)) + 1
        return f"[{index:>{len(str(len(self.plan)))}}/{len(self.plan)}]"

    def starting(self, model: str, seed: int) -> None:
        left = self.estimate_left()
        eta = "estimating" if left is None else format_seconds(left)
        elapsed = format_seconds(self.clock() - self.started_at)
        self._say(
            f"{self._counter(model, seed)} {'queued' if self.jobs > 1 else 'training'} {model} "
            f"{_label(seed)}"
            f" | elapsed {elapsed} | time left ~{eta}"
        )

    def finished(self, model: str, seed: int, seconds: float, summary: str) -> None:
        self.record(model, seed, seconds)
        self._say(f"{self._counter(model, seed)} done {model} {_label(seed)} in "
                  f"{format_seconds(seconds)}: {summary}")

    def skipped(self, model: str, seed: int) -> None:
        self._say(f"{self._counter(model, seed)} {model} {_label(seed)} already in results (resumed)")

    def message(self, text: str) -> None:
        self._say(text)
