"""Training, evaluation and checkpoints: one engine for every model of the zoo.

- :class:`TrainConfig` (``config``): the resolved, JSON-able run configuration.
- :func:`train` (``trainer``): train / validate / select / test, one process or torchrun.
- :func:`evaluate_model` (``evaluation``): whole-video evaluation shared by everything.
- checkpoints (``checkpoint``): atomic plain-data files, read with ``weights_only=True``.
"""

from highlightzoo.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
)
from highlightzoo.training.config import TrainConfig, parse_override
from highlightzoo.training.evaluation import EvalResult, VideoRecord, evaluate_model
from highlightzoo.training.trainer import RESUMABLE_FIELDS, TrainerState, train

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
