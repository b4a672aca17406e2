"""Training, evaluation and checkpoints: one engine for every model of the zoo.

- :class:`TrainConfig` (``config``): the resolved, JSON-able run configuration.
- :func:`train` (``trainer``): train / validate / select / test, one process or torchrun
  (loaded on first use).
- resuming a run (``resume``): :data:`RESUMABLE_FIELDS`, :class:`TrainerState`, store pinning.
- :func:`evaluate_model` (``evaluation``): whole-video evaluation shared by everything.
- checkpoints (``checkpoint``): atomic plain-data files, read with ``weights_only=True``.
"""

from typing import TYPE_CHECKING, Any

from highlightzoo.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
)
from highlightzoo.training.config import TrainConfig, parse_override
from highlightzoo.training.evaluation import EvalResult, VideoRecord, evaluate_model
from highlightzoo.training.resume import RESUMABLE_FIELDS, TrainerState

if TYPE_CHECKING:
    from highlightzoo.training.trainer import train


def __getattr__(name: str) -> Any:
    """:func:`train` on first use, so evaluation and inference (which import checkpoint and
    evaluation modules from this package) do not load the training loop."""
    if name == "train":
        from highlightzoo.training.trainer import train

        return train
    raise AttributeError(f"module 'highlightzoo.training' has no attribute {name!r}")


__all__ = [
    "RESUMABLE_FIELDS",
    "EvalResult",
    "TrainConfig",
    "TrainerState",
    "VideoRecord",
    "evaluate_model",
    "load_checkpoint",
    "model_from_checkpoint",
    "parse_override",
    "resolve_checkpoint_path",
    "save_checkpoint",
    "train",
]
