"""What the benchmark loop needs from the data and training parts, and the data they hand back.

:class:`Backend` is the one seam between :mod:`highlightzoo.bench.runner` and
the rest of the zoo; :class:`highlightzoo.bench.backend.TrainerBackend` is the
real one, tests drive the loop with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from highlightzoo.bench.presets import BenchPreset


@dataclass(frozen=True)
class World:
    """A built benchmark world: its HDF5 store and plain-data description."""

    path: Path
    key: str
    info: dict[str, Any]


@dataclass
class RunOutcome:
    """What one finished run gives the results file.

    ``record``: deterministic plain data (config, card, ``selection`` with the
    validation curve, ``test`` with per-video records unless the run never read
    the test users); ``timing``: wall-clock fields only; ``traces``:
    ``{pair_id: per-step scores}`` for the preset's trace videos.
    """

    record: dict[str, Any]
    timing: dict[str, Any]
    traces: dict[str, list[float]] = field(default_factory=dict)


class Backend(Protocol):
    """How the loop reaches the data and training parts (real or fake)."""

    def build_world(
        self, preset: BenchPreset, *, replay: Path | None, cache_dir: Path, quiet: bool
    ) -> World: ...

    def trace_targets(self, world: World, count: int) -> dict[str, Any]: ...

    def run(
        self,
        preset: BenchPreset,
        model: str,
        seed: int,
        world: World,
        run_dir: Path,
        *,
        device: str,
        trace_pairs: list[str],
        lr: float,
        stop_after: int | None = None,
    ) -> RunOutcome:
        """Train one run to its stop and test it; with ``stop_after`` validations, pause there
        (resumable, the test users never read; the record has no ``test``)."""
        ...

    def resume_run(
        self,
        preset: BenchPreset,
        model: str,
        seed: int,
        world: World,
        run_dir: Path,
        *,
        device: str,
        trace_pairs: list[str],
    ) -> RunOutcome:
        """Continue a paused run to its stop and test it."""
        ...
