"""Continuing a run: which config it runs with, what may change, and where it picks up.

A run folder is resumed from ``checkpoints/last.pt`` (weights, optimiser,
:class:`TrainerState` and every rank's RNG state) with the config saved in
``config.json``; only :data:`RESUMABLE_FIELDS` (and the store, with an explicit
``--data``) may change. The store is pinned (docs/reliability.md): a new run
records ``data`` as an absolute path with its content fingerprint, and a resume
refuses a store whose fingerprint changed unless ``--data`` names it. The
command line (``highlightzoo train --resume``) and :func:`~highlightzoo.training.trainer.train`
both check through here, so the rules live in one place.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from highlightzoo.data.store import fingerprint_difference, store_fingerprint
from highlightzoo.errors import CheckpointError, ConfigError, RunFolderError
from highlightzoo.shapes import COUNT, MAYBE_NUMBER, NUMBER, OrNull, shape_problem
from highlightzoo.training import runs
from highlightzoo.training.checkpoint import (
    RNG_SHAPE,
    check_store_features,
    load_checkpoint,
    load_weights,
)
from highlightzoo.training.config import TrainConfig
from highlightzoo.training.optim import load_optimizer_state
from highlightzoo.training.stopping import StopState

#: Fields a resumed run may change; everything else must stay as the run started.
RESUMABLE_FIELDS = (
    "epochs", "max_steps", "patience", "min_steps", "device", "num_workers", "eval_batch_size",
    "cuda_graphs",
)


_STOP_SHAPE = {"best_value": NUMBER, "best_step": COUNT, "ref_value": NUMBER, "bad": COUNT,
               "stop_reason": OrNull(str)}
_CURVE_SHAPE = {"step": COUNT, "val_map": NUMBER, "epoch?": NUMBER, "train_loss?": NUMBER,
                "train_rows?": COUNT, "val_user_map?": MAYBE_NUMBER, "val_skipped?": COUNT,
                "val_seconds?": NUMBER}
#: What a resume reads of ``last.pt`` besides the weights (highlightzoo.shapes); the
#: optimiser's state is checked against the run's optimiser (``optim.optimizer_state_problem``).
RESUME_SHAPE = {
    "trainer_state": {"step": COUNT, "epoch": COUNT, "batch_in_epoch": COUNT, "stop": _STOP_SHAPE,
                      "train_time_s": NUMBER, "curve": [_CURVE_SHAPE]},
    "optimizer_state": dict,
    "optimizer_stateful?": [COUNT],  # absent in checkpoints of earlier releases
    "rng": [RNG_SHAPE],
}


@dataclass
class TrainerState:
    """Where training stands after ``step`` optimiser steps (saved in every checkpoint).

    ``epoch``: the pass over the training samples in progress; ``batch_in_epoch``:
    how many of its batches are done (a resume skips them); ``stop``: the
    stopping rule's state; ``curve``: one entry per validation.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    stop: StopState = field(default_factory=StopState)
    train_time_s: float = 0.0
    curve: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = self.stop.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        """The state saved by :meth:`to_dict`; an unknown key is a ``TypeError``, not dropped."""
        return cls(**{**data, "stop": StopState.from_dict(data["stop"])})


@dataclass
class ResumePoint:
    """What ``last.pt`` (and ``best.pt``) give back: the trainer state, this rank's RNG
    state, the best weights so far (None before the first validation) and notes to log."""

    state: TrainerState
    rng: Any
    best_state: dict[str, torch.Tensor] | None
    notes: list[str]


def open_resumable_run(run: str | Path) -> tuple[Path, TrainConfig]:
    """The run folder and its saved config; a missing or finished run is a :class:`RunFolderError`."""
    run_dir = Path(run)
    if not run_dir.is_dir():
        what = "a file, not a run folder" if run_dir.exists() else "no such run folder"
        raise RunFolderError(f"cannot resume {str(run_dir)!r}: {what}")
    note = runs.benchmark_folder_note(run_dir)
    if note:  # it said "already finished" of a benchmark folder
        raise RunFolderError(f"cannot resume {str(run_dir)!r}: not a run folder{note}; "
                             "rerun `highlightzoo bench tables` with it as --out to resume it")
    if (run_dir / runs.RESULTS_FILE).exists():
        raise RunFolderError(
            f"run {str(run_dir)!r} already finished (it has {runs.RESULTS_FILE}); start a new run"
        )
    return run_dir, TrainConfig.from_dict(runs.read_json(run_dir / runs.CONFIG_FILE, "run config"))


def check_unchanged(
    saved: TrainConfig, given: dict[str, Any], run_dir: Path, ignore: tuple[str, ...] = ()
) -> None:
    """Refuse ``given`` fields that differ from the saved config, other than the resumable
    ones, ``data`` and ``ignore`` (a :class:`ConfigError` naming them)."""
    kept = saved.to_dict()
    changed = sorted(
        k for k, v in given.items()
        if k not in (*RESUMABLE_FIELDS, "data", *ignore) and kept.get(k) != v
    )  # fmt: skip
    if changed:
        raise ConfigError(
            f"resuming run {str(run_dir)!r} cannot change {', '.join(changed)}; only "
            f"{', '.join(RESUMABLE_FIELDS)} and --data may be given"
        )


def resume_overrides(given: dict[str, Any], run: str | Path) -> dict[str, Any]:
    """The command line's flags for ``--resume RUN``: those that may change, after refusing
    any that would change the run (a flag equal to the saved value is fine)."""
    run_dir, saved = open_resumable_run(run)
    check_unchanged(saved, given, run_dir)
    return {k: v for k, v in given.items() if k in (*RESUMABLE_FIELDS, "data")}


def pin_store(config: TrainConfig, data: str) -> TrainConfig:
    """``config`` training on ``data``: its absolute path and content fingerprint recorded.

    Also refuses a learning rate or weight decay that is not a finite number
    >= 0 (Adam takes inf, and NaN fails only inside its step).
    """
    for name in ("lr", "weight_decay"):
        value = getattr(config, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
    path = os.path.abspath(data)
    return config.replace(data=path, data_fingerprint=store_fingerprint(path))


def resolve_run_config(
    config: TrainConfig | None, resume: str | Path | None, overrides: dict[str, Any]
) -> tuple[TrainConfig, Path | None]:
    """The config a :func:`~highlightzoo.training.trainer.train` call runs, and the run
    folder it resumes (None for a new run).

    A new run: ``config`` with ``overrides``, its store pinned. A resume: the
    saved config with ``overrides`` of :data:`RESUMABLE_FIELDS`; a ``config``
    given too must match the saved one; ``overrides["data"]`` (an explicit
    ``--data``) trains on that store and records it, else the recorded store
    must be unchanged.
    """
    if resume is None:
        if config is None:
            raise ConfigError("train() needs a TrainConfig or a run folder to resume")
        config = config.replace(**overrides) if overrides else config
        return pin_store(config, config.data), None
    run_dir, saved = open_resumable_run(resume)
    bad = sorted(set(overrides) - set(RESUMABLE_FIELDS) - {"data"})
    if bad:
        raise ConfigError(f"a resumed run cannot change {bad}; only {list(RESUMABLE_FIELDS)} (and data)")
    if config is not None:
        given = {**config.to_dict(), "data": os.path.abspath(config.data)}
        check_unchanged(saved, given, run_dir, ignore=("out", "data_fingerprint"))
        if "data" not in overrides and given["data"] != os.path.abspath(saved.data):
            overrides = {**overrides, "data": config.data}  # a config naming another store: explicit
    resumed = saved.replace(**{k: v for k, v in overrides.items() if k != "data"})
    if "data" in overrides:  # explicit: train on it, and record it (the trainer says so in train.log)
        return pin_store(resumed, overrides["data"]), run_dir
    runs.pinned_store(saved.data, saved.data_fingerprint, None, f"run {str(run_dir)!r}")
    return resumed, run_dir


def check_same_model(
    payload: dict[str, Any], model: nn.Module, config: TrainConfig, feature_dim: int, run_dir: Path
) -> str | None:
    """The checkpoint holds this run's model, built the same way (else a :class:`CheckpointError`);
    returns a note when it was trained on another store than ``config.data``."""
    if payload["model_card"].get("name") != config.model:
        raise CheckpointError(
            f"checkpoint {payload['path']!r} holds model {payload['model_card'].get('name')!r}, "
            f"but the run trains {config.model!r}"
        )
    if payload["build_args"].get("feature_dim") != feature_dim:
        raise CheckpointError(
            f"checkpoint {payload['path']!r} was trained on "
            f"{payload['build_args'].get('feature_dim')}-d features but {config.data!r} "
            f"has {feature_dim}-d features"
        )
    built = dict(model.build_args)
    if dict(payload["build_args"]) != built:
        keys = sorted(k for k in {*built, *payload["build_args"]} if payload["build_args"].get(k) != built.get(k))
        raise CheckpointError(
            f"checkpoint {payload['path']!r} was built with other arguments than run "
            f"{str(run_dir)!r} builds: " + ", ".join(
                f"{k}={payload['build_args'].get(k)!r} (run: {built.get(k)!r})" for k in keys
            )
        )  # fmt: skip
    then = (payload.get("config") or {}).get("data_fingerprint")
    if then is not None and then != config.data_fingerprint:
        return (
            f"note: checkpoint {payload['path']!r} was trained on store "
            f"{payload['config'].get('data')!r}; this resume trains on {config.data!r} as "
            f"--data asks ({fingerprint_difference(then, config.data_fingerprint or {})})"
        )
    return None


def check_config_matches(payload: dict[str, Any], config: TrainConfig, run_dir: Path) -> None:
    """``config.json`` still says what the checkpoint was trained with (else a :class:`CheckpointError`).

    The checkpoint keeps a copy of the config; a field of ``config.json`` that was edited or
    deleted (a deleted one takes its default) would resume another run than the one saved.
    Fields a resume may change, ``out`` and (after an explicit ``--data``) the store are not
    compared, nor fields the checkpoint's copy lacks (a checkpoint of an older release).
    """
    saved = payload.get("config") or {}
    now = json.loads(json.dumps(config.to_dict()))
    then = json.loads(json.dumps(saved))
    skip = {*RESUMABLE_FIELDS, "out"}
    if now.get("data") != then.get("data"):  # an explicit --data: said in the log, not refused
        skip |= {"data", "data_fingerprint"}
    differ = sorted(k for k in then if k not in skip and now.get(k) != then[k])
    if differ:
        raise CheckpointError(
            f"run {str(run_dir)!r}: its config.json says "
            + ", ".join(f"{k}={now.get(k)!r}" for k in differ)
            + f" but {payload['path']!r} was trained with "
            + ", ".join(f"{k}={then[k]!r}" for k in differ)
            + " (config.json edited or damaged?)"
        )


def load_resume_point(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    feature_dim: int,
    world_size: int,
    rank: int,
    *,
    store_features: dict[str, Any] | None = None,
) -> ResumePoint:
    """Load ``last.pt`` into ``model`` and ``optimizer``; return the state to continue from.

    The number of processes must be the one the run was trained with (each
    rank restores its own RNG state, so the continuation is exact). ``store_features``:
    the ``features`` description of the store the resume reads; features made another way
    than the run's are refused (:func:`~highlightzoo.training.checkpoint.check_store_features`).
    """
    ckpt_dir = run_dir / runs.CHECKPOINT_DIR
    last = load_checkpoint(ckpt_dir / "last.pt")
    if isinstance(last.get("trainer_state"), dict) and "step" not in last["trainer_state"]:
        raise CheckpointError(
            f"checkpoint {last['path']!r} was written by an epoch-based trainer (before "
            "highlightzoo counted budgets in steps); start a new run"
        )
    problem = shape_problem(last, RESUME_SHAPE)
    if problem:
        raise CheckpointError(f"checkpoint {last['path']!r} cannot be resumed: {problem}")
    if last["trainer_state"]["step"] > 0 and not last["optimizer_state"]["state"]:
        raise CheckpointError(  # Adam would restart from zero moments and bias correction
            f"checkpoint {last['path']!r} cannot be resumed: after "
            f"{last['trainer_state']['step']} steps its optimizer_state.state is empty"
        )
    check_config_matches(last, config, run_dir)
    check_store_features(last, store_features, config.data)
    notes = [check_same_model(last, model, config, feature_dim, run_dir)]
    load_weights(model, last["model_state"], where=last["path"])
    load_optimizer_state(optimizer, last["optimizer_state"], where=last["path"],
                         stateful=last.get("optimizer_stateful"))
    try:
        state = TrainerState.from_dict(last["trainer_state"])
    except TypeError as err:  # a field this trainer does not know: it cannot say what it meant
        raise CheckpointError(
            f"checkpoint {last['path']!r} cannot be resumed: a trainer state of another version ({err})"
        ) from None
    rng = last["rng"]
    if len(rng) != world_size:
        raise ConfigError(
            f"run {str(run_dir)!r} was trained with {len(rng)} process(es); resume it "
            f"with the same number (now {world_size}) to continue exactly"
        )
    best_state = None
    if state.stop.best_step or state.curve:
        best = load_checkpoint(ckpt_dir / "best.pt")
        notes.append(check_same_model(best, model, config, feature_dim, run_dir))
        best_state = best["model_state"]
    return ResumePoint(state, rng[rank], best_state, [n for n in notes if n])
