"""What a training run gives back: typed objects, written to ``results.json`` in one place.

:func:`highlightzoo.training.train` returns a :class:`TrainResult`; the
command line and the benchmark consume it directly (they never read the file
back). :meth:`TrainResult.to_dict` is the one definition of the file's content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from highlightzoo.training.config import TrainConfig
from highlightzoo.training.evaluation import EvalResult

RESULTS_KIND = "highlightzoo-train-results"
RESULTS_SCHEMA = 2


@dataclass
class Selection:
    """How the run was selected and stopped (docs/training.md, "Budget and convergence").

    ``curve``: one entry per validation (``step``, ``epoch`` as passes over the
    training samples, ``train_loss`` since the previous validation, ``val_map``,
    ``val_user_map``, ``val_skipped``); ``stop_reason``: ``"patience"``
    (converged), ``"cap"`` (hit ``max_steps``), ``"untrained"`` (no trainable
    parameters: a floor) or ``"paused"`` (stopped on request; resumable).
    """

    best_step: int
    best_val_map: float
    steps_run: int
    stop_reason: str
    steps_per_epoch: int
    curve: list[dict[str, Any]] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.stop_reason in ("patience", "untrained")

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_step": self.best_step,
            "best_val_map": self.best_val_map,
            "steps_run": self.steps_run,
            "stop_reason": self.stop_reason,
            "converged": self.converged,
            "steps_per_epoch": self.steps_per_epoch,
            "curve": list(self.curve),
        }


@dataclass
class TrainResult:
    """One finished run: where it lives, what was trained, how it was selected, its test result.

    ``test`` is None for a run that never reads the test users
    (``TrainConfig.test_split=None``, e.g. a learning-rate sweep).
    """

    run_dir: Path
    config: TrainConfig
    card: dict[str, Any]
    build_args: dict[str, Any]
    history_cap: int | None
    n_parameters: int
    selection: Selection
    test: EvalResult | None
    training_time_s: float
    test_time_s: float | None
    provenance: dict[str, Any]
    #: how the store's features were made (backbone, weights, rate; None when it does not say)
    features: dict[str, Any] | None = None
    #: with ``cuda_graphs``: how this process's training steps ran (replayed / eager / graphs,
    #: ``GraphStats.summary()`` words); None without the option. Not in results.json.
    graphs: str | None = None

    @property
    def model(self) -> str:
        return self.config.model

    def to_dict(self) -> dict[str, Any]:
        """The content of ``results.json``: headline test numbers first, then everything else."""
        test = self.test.to_dict() if self.test is not None else {}
        return {
            "kind": RESULTS_KIND,
            "schema_version": RESULTS_SCHEMA,
            "model": self.model,
            "data": self.config.data,
            "split": self.config.test_split,
            "protocol": self.config.protocol,
            **{k: v for k, v in test.items() if k not in ("records", "skipped", "scores")},
            "ap_mode": "interpolated",
            **self.selection.to_dict(),
            "history": list(self.selection.curve),
            "training_time_s": self.training_time_s,
            "test_time_s": self.test_time_s,
            "records": test.get("records", []),
            "skipped": test.get("skipped", []),
            "scores": test.get("scores", {}),
            "history_cap": self.history_cap,
            "n_parameters": self.n_parameters,
            "model_card": dict(self.card),
            "build_args": dict(self.build_args),
            "config": self.config.to_dict(),
            "provenance": dict(self.provenance),
            "features": self.features,
        }
