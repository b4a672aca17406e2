"""Checkpoints: atomic plain-data files, exact RNG round trip, typed errors for bad files."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch
from training_support import GONE, set_at

import highlightzoo as hz
from highlightzoo.errors import CheckpointError
from highlightzoo.training.checkpoint import (
    atomic_write_bytes,
    capture_rng_state,
    load_checkpoint,
    model_from_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from highlightzoo.training.evaluation import evaluate_checkpoint


def _payload(model_name: str = "video2gif", feature_dim: int = 6) -> dict:
    torch.manual_seed(0)
    model = hz.create_model(model_name, feature_dim=feature_dim)
    return {
        "model_state": model.state_dict(),
        "build_args": dict(model.build_args),
        "model_card": model.card.to_dict(),
        "rng": [capture_rng_state()],
        "config": {"model": model_name, "data": "x.h5"},
    }


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path / "c.pt", {**_payload(), "rng": [capture_rng_state()]})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"][0])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_model_round_trip_gives_the_same_scores(tmp_path):
    payload = _payload()
    save_checkpoint(tmp_path / "c.pt", payload)
    model = model_from_checkpoint(load_checkpoint(tmp_path / "c.pt"), feature_dim=6)
    original = hz.create_model("video2gif", feature_dim=6)
    original.load_state_dict(payload["model_state"])
    batch = hz.batch.random_batch(2, 20, 6)
    original.eval(), model.eval()
    assert torch.equal(model(batch).scores, original(batch).scores)


def test_truncated_checkpoint_is_a_checkpoint_error(tmp_path):
    save_checkpoint(tmp_path / "c.pt", _payload())
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")


def test_pickled_objects_are_never_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "highlightzoo-checkpoint", "obj": Evil()}, tmp_path / "evil.pt", pickle_protocol=2)
    with pytest.raises(CheckpointError, match="pickled code"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "raw.pkl")


def test_foreign_or_missing_files_are_checkpoint_errors(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a highlightzoo checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="no checkpoints/best.pt"):
        load_checkpoint(tmp_path)


def test_checkpoint_of_another_model_or_feature_dim_is_refused(tmp_path):
    payload = _payload("video2gif", feature_dim=6)
    save_checkpoint(tmp_path / "c.pt", payload)
    loaded = load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="6-d features but the data has 9-d"):
        model_from_checkpoint(loaded, feature_dim=9)
    with pytest.raises(CheckpointError, match="holds model 'video2gif', not the requested 'fcsn'"):
        model_from_checkpoint(loaded, expected_model="fcsn")
    # weights of one model under another model's card: caught before load_state_dict
    swapped = {**payload, "model_card": hz.get_model_card("phdgifs").to_dict()}
    save_checkpoint(tmp_path / "swapped.pt", swapped)
    with pytest.raises(CheckpointError, match="does not fit model 'phdgifs'"):
        model_from_checkpoint(load_checkpoint(tmp_path / "swapped.pt"))


def _damaged(payload: dict, place: tuple, value) -> dict:
    """A deep-enough copy of ``payload`` with ``place`` (a key path) set to ``value`` (or deleted)."""
    damaged = {k: dict(v) if isinstance(v, dict) else v for k, v in payload.items()}
    set_at(damaged, place, value)
    return damaged

_STATE_KEY = next(iter(_payload()["model_state"]))


@pytest.mark.parametrize(
    "place, value, message",
    [
        (("format_version",), True, "format version True"),
        (("model_state",), GONE, "model_state is missing"),
        (("model_state",), None, "model_state must be an object, got None"),
        (("model_state",), [1, 2], "model_state must be an object"),
        (("model_state", _STATE_KEY), "x", f"model_state[{_STATE_KEY!r}] must be Tensor"),
        (("model_state", _STATE_KEY), 1.5, "must be Tensor, got 1.5"),
        (("build_args",), "x", "build_args must be an object"),
        (("build_args",), None, "build_args must be an object"),
        (("model_card",), "x", "model_card must be an object"),
        (("model_card", "name"), GONE, "model_card.name is missing"),
        (("model_card", "name"), 3, "model_card.name must be str, got 3"),
        (("config",), "x", "config must be an object"),
        (("config",), None, "config must be an object, got None"),
        (("features",), "x", "features must be an object"),
        (("features",), [], "features must be an object"),
        (("features",), {"rate": "2"}, "features.rate must be int or float"),  # predict reads it
        (("history_cap",), "x", "history_cap must be int"),
        (("history_cap",), -1, "history_cap must be an int >= 0, got -1"),
        (("history_cap",), True, "history_cap must be int, got True"),
    ],
)
def test_a_damaged_payload_is_a_checkpoint_error_naming_the_part(tmp_path, place, value, message):
    """Found by replacing one value of a real run's checkpoint at a time: each was a traceback
    (or, for ``format_version=True``, taken as version 1) in evaluate and predict."""
    payload = {**_payload(), "features": None, "history_cap": 3}
    save_checkpoint(tmp_path / "c.pt", _damaged(payload, place, value))
    with pytest.raises(CheckpointError, match="c.pt") as info:
        load_checkpoint(tmp_path / "c.pt")
    assert message in str(info.value)
    with pytest.raises(CheckpointError):
        hz.Detector.from_checkpoint(tmp_path / "c.pt", device="cpu")


def test_weights_of_another_dtype_kind_are_refused_not_truncated(tmp_path):
    """An int64 tensor for float weights would load rounded toward zero, and score without a word."""
    payload = _payload()
    state = dict(payload["model_state"])
    state[_STATE_KEY] = (state[_STATE_KEY] * 100).long()
    save_checkpoint(tmp_path / "c.pt", {**payload, "model_state": state})
    with pytest.raises(CheckpointError, match=f"wrong dtype \\[{_STATE_KEY!r}\\]"):
        model_from_checkpoint(load_checkpoint(tmp_path / "c.pt"))
    # float weights stored in another float precision still load (the values are the same numbers)
    state[_STATE_KEY] = payload["model_state"][_STATE_KEY].double()
    save_checkpoint(tmp_path / "d.pt", {**payload, "model_state": state})
    model_from_checkpoint(load_checkpoint(tmp_path / "d.pt"))


def test_a_payload_given_as_a_dict_is_checked_like_a_file():
    payload = _damaged(_payload(), ("model_state",), None)
    with pytest.raises(CheckpointError, match="'<payload>' is damaged: model_state must be an object"):
        evaluate_checkpoint(payload)
