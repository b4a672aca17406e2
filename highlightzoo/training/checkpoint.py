"""Checkpoints as plain data: written atomically, read without running pickled code.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only
(``torch.load(..., weights_only=True)`` reads it): model weights, optimiser
state, epoch, RNG states, the training config, the model card and the model's
``build_args``. Every way a checkpoint can be unusable (missing, truncated, not
ours, of another model, for other features) is a :class:`CheckpointError`
naming the file.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from highlightzoo.batch import model_name
from highlightzoo.data.store_format import FEATURES_INFO_SHAPE, features_mismatch
from highlightzoo.errors import CheckpointError, HighlightZooError
from highlightzoo.io import atomic_write_bytes, atomic_write_text, file_kind_note  # noqa: F401  (re-exported)
from highlightzoo.models.registry import create_model
from highlightzoo.shapes import COUNT, Items, MappingOf, OrNull, Where, shape_problem
from highlightzoo.training.config import CARD_CAP, resolve_history_cap
from highlightzoo.training.runs import benchmark_folder_note

FORMAT = "highlightzoo-checkpoint"
FORMAT_VERSION = 1


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA RNG states as tensors/lists (plain data)."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _mt_words(n: int, kind: Any) -> Where:
    return Where(kind, lambda v: len(v) == n, f"{n} Mersenne Twister words")


#: One process's :func:`capture_rng_state`, as :func:`restore_rng_state` needs it
#: (highlightzoo.shapes); Python's and NumPy's generators refuse other state sizes.
RNG_SHAPE = {
    "python": Items(int, Where(_mt_words(625, list), lambda v: all(type(w) is int for w in v), "ints"),
                    OrNull(float)),
    "numpy": Items(Where(str, lambda v: v == "MT19937", "'MT19937'"),
                   Where(_mt_words(624, torch.Tensor), lambda t: not t.is_floating_point(), "ints"),
                   COUNT, Where(int, lambda v: v in (0, 1), "0 or 1"), float),
    "torch": Where(torch.Tensor, lambda t: t.dtype == torch.uint8 and t.dim() == 1, "a uint8 vector"),
    "cuda?": [torch.Tensor],
}


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states only where CUDA exists)."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_kind, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialise ``payload`` (plain data + tensors) atomically, stamped with the format."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; any failure is a :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        path = resolve_checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        other = file_kind_note(path, "zip")
        raise CheckpointError(
            f"{str(path)!r} is not a highlightzoo checkpoint{other}" if other else
            f"{str(path)!r} is not a plain-data highlightzoo checkpoint (reading it would need "
            "pickled code, which highlightzoo never runs)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt ({type(err).__name__} while reading it)"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a highlightzoo checkpoint")
    version = payload.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {version!r}; "
            f"this highlightzoo reads version {FORMAT_VERSION}"
        )
    problem = payload_problem(payload)
    if problem:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: {problem}")
    payload["path"] = str(path)
    return payload


#: What evaluation and inference read of a checkpoint (highlightzoo.shapes); the rest of a
#: payload (optimiser, trainer state, RNG states) is what a resume reads, checked there.
#: A config's ``model_overrides`` are ``create_model`` arguments: an object, or null for none.
RUN_CONFIG_SHAPE = {"model_overrides?": OrNull(dict)}
PAYLOAD_SHAPE = {
    "model_state": MappingOf(torch.Tensor), "build_args": dict, "model_card": {"name": str},
    "config?": RUN_CONFIG_SHAPE, "features?": OrNull(FEATURES_INFO_SHAPE),
    "history_cap?": OrNull(COUNT),
}


def payload_problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with the parts of a checkpoint that evaluation and inference read
    (:data:`PAYLOAD_SHAPE`), or None."""
    return shape_problem(payload, PAYLOAD_SHAPE)


def resolve_checkpoint_path(run_or_ckpt: str | Path, which: str = "best") -> Path:
    """A checkpoint file itself, or ``RUN/checkpoints/{which}.pt`` of a run folder."""
    path = Path(run_or_ckpt)
    if path.is_dir():
        candidate = path / "checkpoints" / f"{which}.pt"
        if not candidate.is_file():
            raise CheckpointError(f"run folder {str(path)!r} has no checkpoints/{which}.pt"
                                  f"{benchmark_folder_note(path)}")
        return candidate
    return path


def checkpoint_history_cap(payload: dict[str, Any]) -> int | None:
    """The history cap a checkpoint's model was trained with, for evaluation and inference.

    Recorded in the payload since checkpoints carry it; for older ones, the
    cap its config resolves to (:func:`~highlightzoo.training.config.resolve_history_cap`).
    """
    if "history_cap" in payload:
        return payload["history_cap"]
    config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
    return resolve_history_cap(config.get("history_cap", CARD_CAP), payload["model_card"].get("history_cap"))


def check_store_features(payload: dict[str, Any], store_features: dict[str, Any] | None,
                         store: str) -> None:
    """A :class:`CheckpointError` when the store's features were made another way (backbone,
    size or rate) than those the checkpoint was trained on, where both sides say: a 512-d
    store of another backbone fits the model's shapes and would be scored without a word."""
    problem = features_mismatch(payload.get("features"), store_features)
    if problem:
        raise CheckpointError(f"refused: {problem} (store {str(store)!r}, checkpoint "
                              f"{payload.get('path', '<payload>')!r})")


def check_run_checkpoint(payload: dict[str, Any]) -> None:
    """A checkpoint holds the model its run trains, built with the run's arguments.

    The payload's own config must name the model of its card; a checkpoint in a
    run folder (``RUN/checkpoints/*.pt``) must also match ``RUN/config.json``
    (model name and ``model_overrides``), so a file copied from another run is a
    :class:`CheckpointError`, never evaluated as if it were this run's.
    """
    where = payload.get("path", "<checkpoint>")
    name = payload["model_card"].get("name")
    own = payload.get("config") if isinstance(payload.get("config"), dict) else {}
    if own.get("model") not in (None, name):
        raise CheckpointError(
            f"checkpoint {where!r} holds model {name!r} but its config says {own.get('model')!r}"
        )
    path = Path(where)
    run_config = path.parent.parent / "config.json"
    if path.parent.name != "checkpoints" or not run_config.is_file():
        return
    try:
        run = json.loads(run_config.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"run config {str(run_config)!r} is unreadable: {err}") from None
    run_dir = str(path.parent.parent)
    problem = shape_problem(run, RUN_CONFIG_SHAPE)
    if problem:
        raise CheckpointError(f"run config {str(run_config)!r} is damaged: {problem}")
    if run.get("model") != name:
        raise CheckpointError(
            f"checkpoint {where!r} holds model {name!r}, but run {run_dir!r} trains "
            f"{run.get('model')!r} (its config.json): a checkpoint of another run?"
        )
    wanted = run.get("model_overrides") or {}
    build_args = payload["build_args"]
    differ = sorted(
        k for k in {*wanted, *(own.get("model_overrides") or {})}
        if build_args.get(k) != wanted.get(k)
    )  # fmt: skip
    if differ:
        raise CheckpointError(
            f"checkpoint {where!r} was built with other arguments than run {run_dir!r} uses: "
            + ", ".join(f"{k}={build_args.get(k)!r} (run: {wanted.get(k)!r})" for k in differ)
        )


def model_from_checkpoint(
    payload: dict[str, Any], *, feature_dim: int | None = None, expected_model: str | None = None
) -> nn.Module:
    """Rebuild the registered model of a loaded checkpoint and load its weights.

    ``feature_dim`` (of the data it will see) and ``expected_model`` are checked
    against the checkpoint first, so a mismatch is a one-line error, not a
    shape error from deep inside torch.
    """
    where = payload.get("path", "<checkpoint>")
    name = payload["model_card"].get("name")
    build_args = dict(payload["build_args"])
    if expected_model is not None and name != expected_model:
        raise CheckpointError(
            f"checkpoint {where!r} holds model {name!r}, not the requested {expected_model!r}"
        )
    ckpt_dim = build_args.pop("feature_dim", None)
    if feature_dim is not None and ckpt_dim != feature_dim:
        raise CheckpointError(
            f"checkpoint {where!r} was trained on {ckpt_dim}-d features but the data has "
            f"{feature_dim}-d features"
        )
    try:
        model = create_model(name, feature_dim=ckpt_dim, **build_args)
    except HighlightZooError as err:
        raise CheckpointError(f"checkpoint {where!r}: cannot rebuild model {name!r}: {err}") from None
    except TypeError as err:
        raise CheckpointError(
            f"checkpoint {where!r}: model {name!r} does not accept build args {build_args}: {err}"
        ) from None
    load_weights(model, payload["model_state"], where=where)
    return model


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], *, where: str) -> None:
    """``load_state_dict`` with a short :class:`CheckpointError` on any mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    bad_type = sorted(  # an int tensor for float weights would load truncated, without a word
        k for k in set(own) & set(state)
        if (own[k].is_floating_point(), own[k].is_complex()) != (state[k].is_floating_point(), state[k].is_complex())
    )
    if missing or unexpected or bad_shape or bad_type:
        name = model_name(model)
        parts = [
            f"{label} {keys[:3]}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (
                ("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape),
                ("wrong dtype", bad_type),
            )
            if keys
        ]
        raise CheckpointError(
            f"checkpoint {where!r} does not fit model {name!r} ({'; '.join(parts)}): "
            "it is a checkpoint of another model or another configuration"
        )
    model.load_state_dict(state)
