"""The resolved training configuration: one dataclass, saved as plain JSON in every run.

Defaults follow the PR-Net training protocol (paper Sec. 3.4; docs/models.md):
clips of 256 steps that contain a highlight, cut from every annotated video of
a training user (leave one video out: the user's segments on their other videos
are the history), 32 clips per batch, Adam with its default settings, whole
videos at evaluation time, the A-VHD evaluation protocol (docs/evaluation.md).
The budget is counted in optimiser steps (docs/training.md, "Budget and
convergence"); early stopping and best-checkpoint selection use the validation
users only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from highlightzoo.checks import INT64_LIMIT
from highlightzoo.data.labels import fraction_of_a_step
from highlightzoo.device import PRECISIONS
from highlightzoo.errors import ConfigError

CARD_CAP = "card"
#: how training samples are drawn (docs/training.md, "Training samples")
SAMPLINGS = ("leave_one_out", "last_video")
#: how a video's AP is computed (docs/evaluation.md, "Protocols")
PROTOCOLS = ("avhd", "steps")


#: the smallest value of each int field (null allowed where the field's type says so); a
#: negative seed is refused because NumPy's generators take none
INT_MINIMUMS = {
    "history_cap": 0, "clip_len": 1, "batch_size": 1, "epochs": 1, "max_steps": 1,
    "eval_every": 1, "patience": 1, "min_steps": 0, "seed": 0, "eval_batch_size": 1,
    "num_workers": 0, "max_train_users": 1, "hit_k": 1, "trace_videos": 0,
}


@dataclass
class TrainConfig:
    """Everything that decides a training run (and nothing that does not).

    ``history_cap``: ``"card"`` (default) uses the model card's cap, ``None``
    gives every history segment, an ``int`` caps at that many.
    ``batch_size`` is per process: under ``torchrun`` with ``N`` processes one
    optimiser step sees ``N * batch_size`` users.
    Budget (docs/training.md): ``max_steps`` optimiser steps at most (``None``:
    ``epochs`` passes over the training samples); validation every
    ``eval_every`` steps (``None``: after every pass); ``patience``: stop after
    this many validations without an improvement of more than ``min_delta`` mAP
    points (``None`` = never stop early), but not before ``min_steps`` steps.
    ``sampling``: ``"leave_one_out"`` (every annotated video of a training user
    is a target in turn, every 256-step chunk with a highlight a sample) or
    ``"last_video"`` (one clip of the user's last video per pass).
    ``protocol``: the AP of validation and test, ``"avhd"`` or ``"steps"``.
    ``history_order``: ``"stored"`` (newest first for PHD-GIFs, so a cap keeps
    the most recent segments) or ``"reversed"`` (a cap keeps the oldest);
    docs/models.md, ``prnet_h5``.
    ``test_split=None`` trains and selects without ever reading the test users
    (learning-rate sweeps). ``precision="bf16"`` means bf16 autocast and
    is only allowed on CUDA (a :class:`ConfigError` elsewhere, never a silent
    fall-back to fp32). ``max_train_users`` keeps only the first N training
    samples (smoke tests); ``trace_videos`` keeps the per-step test scores of
    that many videos in results.json (for plots); ``out`` is the run folder (``None`` = a fresh
    auto-named folder under ``runs/``).
    """

    model: str
    data: str
    model_overrides: dict[str, Any] = field(default_factory=dict)
    history_cap: int | str | None = CARD_CAP
    clip_len: int = 256
    min_fraction: float = 0.5
    batch_size: int = 32
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    epochs: int = 20
    patience: int | None = None
    max_steps: int | None = None
    eval_every: int | None = None
    min_steps: int = 0
    min_delta: float = 0.0
    sampling: str = "leave_one_out"
    protocol: str = "avhd"
    history_order: str = "stored"
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    eval_batch_size: int = 8
    num_workers: int = 0
    max_train_users: int | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"
    hit_k: int = 5
    trace_videos: int = 0
    out: str | None = None
    #: set by ``train()``: the content fingerprint of ``data`` (made absolute) when the run
    #: started, so resume and evaluate refuse another store (docs/reliability.md)
    data_fingerprint: dict[str, Any] | None = None
    #: ``torch.compile`` the training forward (off: its 20-40 s of compilation is not earned
    #: back by runs of a few thousand small steps; docs/performance.md, "GPU")
    compile: bool = False
    #: replay training steps whose batch shapes repeat as CUDA graphs (CUDA only, one process;
    #: off: in the trainer few steps repeated their shapes when timed on an H100; docs/training.md,
    #: "CUDA graphs")
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):  # JSON gives a list back
            self.betas = tuple(self.betas)
        for name in ("data", "out"):  # a pathlib.Path is taken as its text (saved as JSON)
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        self.validate()
        self.betas = tuple(float(b) for b in self.betas)
        self.model_overrides = dict(self.model_overrides)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field: its type (a config read
        from JSON can hold anything), then its range."""
        check_field_types(self)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if isinstance(self.history_cap, str) and self.history_cap != CARD_CAP:
            raise ConfigError(f"history_cap must be 'card', null or an int >= 0, got {self.history_cap!r}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.history_order not in ("stored", "reversed"):
            raise ConfigError(f"history_order must be 'stored' or 'reversed', got {self.history_order!r}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        for name, minimum in INT_MINIMUMS.items():  # the types are checked above
            value = getattr(self, name)
            if isinstance(value, int) and value < minimum:  # not None, not history_cap's "card"
                raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
        for f in dataclasses.fields(self):  # ints reach torch, NumPy and itertools as int64
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= INT64_LIMIT:
                raise ConfigError(f"{f.name} must be below 2**63, got {value!r}")
        if not 0 <= self.min_delta < float("inf"):
            raise ConfigError(f"min_delta must be a finite number >= 0, got {self.min_delta!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        fraction_of_a_step(self.min_fraction)

    def resolved_history_cap(self, card_cap: int | None) -> int | None:
        """The cap the data pipeline applies (:func:`resolve_history_cap`)."""
        return resolve_history_cap(self.history_cap, card_cap)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys {unknown}; known: {sorted(known)}")
        missing = sorted(k for k in ("model", "data") if k not in data)
        if missing:
            raise ConfigError(f"training config lacks required keys {missing}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


def check_field_types(config: Any) -> None:
    """A :class:`ConfigError` naming the first field of the dataclass ``config`` whose value
    does not have its annotated type (``int``, ``float``, ``str``, ``bool``, ``None``, unions,
    fixed-length tuples, dicts; an int is a number, a bool is not)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if not _has_type(value, hint):
            raise ConfigError(f"{f.name} must be {_type_words(hint)}, got {value!r}")


def _has_type(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        numbers = int if hint is int else (int, float)
        return isinstance(value, numbers) and not isinstance(value, bool)
    if origin is tuple:
        return (isinstance(value, tuple | list) and len(value) == len(args)
                and all(_has_type(v, a) for v, a in zip(value, args, strict=True)))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return isinstance(value, origin or hint)


def _type_words(hint: Any) -> str:
    """``int | None`` -> "an int or null", for the error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_words(a) for a in args)
    if origin is tuple:
        return f"a list of {len(args)} " + ("numbers" if set(args) <= {float, int} else "values")
    words = {type(None): "null", bool: "true or false", int: "an int", float: "a number",
             str: "a string", dict: "an object"}
    return words.get(origin or hint, getattr(hint, "__name__", str(hint)))


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``, the value read as JSON when it parses.

    ``width=64`` gives an int, ``dropout=0.1`` a float, ``variant=attn`` the
    string ``"attn"``, ``dims=[1,2]`` a list.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"model override {text!r} must look like key=value")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def resolve_history_cap(setting: int | str | None, card_cap: int | None) -> int | None:
    """The one rule for a run's history cap: the model card's when ``setting`` is ``"card"``,
    else ``setting`` (an int, or None for no cap)."""
    return card_cap if setting == CARD_CAP else setting  # type: ignore[return-value]
