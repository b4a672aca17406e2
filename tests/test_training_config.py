"""TrainConfig: JSON round trip, validation errors, model-override parsing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from highlightzoo.errors import ConfigError
from highlightzoo.training.config import TrainConfig, parse_override


def test_defaults_follow_the_paper_protocol():
    cfg = TrainConfig(model="prnet", data="x.h5")
    assert (cfg.clip_len, cfg.batch_size, cfg.betas, cfg.history_cap) == (256, 32, (0.9, 0.999), "card")
    assert cfg.resolved_history_cap(5) == 5  # "card" -> the card's cap
    assert cfg.replace(history_cap=None).resolved_history_cap(5) is None
    assert cfg.replace(history_cap=2).resolved_history_cap(5) == 2


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    lr=st.floats(1e-6, 1.0),
    cap=st.one_of(st.none(), st.just("card"), st.integers(0, 50)),
    patience=st.one_of(st.none(), st.integers(1, 10)),
    overrides=st.dictionaries(st.sampled_from(["width", "dropout", "variant"]),
                              st.one_of(st.integers(1, 9), st.floats(0, 1), st.text(max_size=4))),
)
def test_json_round_trip_is_exact(seed, lr, cap, patience, overrides):
    cfg = TrainConfig(model="fcsn", data="d.h5", seed=seed, lr=lr, history_cap=cap,
                      patience=patience, model_overrides=overrides)
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert isinstance(back.betas, tuple)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"precision": "fp16"}, "precision"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"history_cap": "all"}, "history_cap"),
        ({"history_cap": -1}, "history_cap"),
        ({"patience": 0}, "patience"),
        ({"lr": 0.0}, "lr"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"min_fraction": 0.0}, "min_fraction"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_values_are_config_errors_naming_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(model="prnet", data="x.h5", **change)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lr": "abc"}, "lr must be a number, got 'abc'"),
        ({"betas": ["a", 0.9]}, "betas must be a list of 2 numbers"),
        ({"betas": [0.9]}, "betas must be a list of 2 numbers"),
        ({"seed": 1.5}, "seed must be an int, got 1.5"),
        ({"seed": True}, "seed must be an int"),
        ({"patience": "3"}, "patience must be an int or null"),
        ({"num_workers": None}, "num_workers must be an int"),
        ({"trace_videos": "x"}, "trace_videos must be an int"),
        ({"weight_decay": "x"}, "weight_decay must be a number"),
        ({"max_train_users": 2.5}, "max_train_users must be an int or null"),
        ({"min_fraction": "0.5"}, "min_fraction must be a number"),
        ({"model_overrides": None}, "model_overrides must be an object"),
        ({"data": 5}, "data must be a string"),
        ({"history_cap": True}, "history_cap must be an int or a string or null"),
        ({"test_split": 3}, "test_split must be a string or null"),
    ],
)
def test_a_json_config_of_the_wrong_types_is_a_config_error_naming_the_field(change, message):
    """A config read from JSON can hold any type; each is refused with the field's name and
    what it must be, never a TypeError from a comparison deep inside."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig.from_dict({"model": "prnet", "data": "x.h5", **change})


def test_paths_are_kept_as_text_and_int_betas_as_floats():
    cfg = TrainConfig(model="prnet", data=Path("d/x.h5"), out=Path("runs/r"), betas=[0, 0.9])
    assert (cfg.data, cfg.out, cfg.betas) == ("d/x.h5", "runs/r", (0.0, 0.9))
    assert json.loads(json.dumps(cfg.to_dict()))["data"] == "d/x.h5"


def test_unknown_or_missing_keys_are_refused():
    with pytest.raises(ConfigError, match="unknown training config keys"):
        TrainConfig.from_dict({"model": "prnet", "data": "x", "lrr": 1.0})
    with pytest.raises(ConfigError, match="data"):
        TrainConfig.from_dict({"model": "prnet"})


def test_parse_override_reads_json_values_and_falls_back_to_strings():
    assert parse_override("width=0.5") == ("width", 0.5)
    assert parse_override("layers=3") == ("layers", 3)
    assert parse_override("variant=attn") == ("variant", "attn")
    assert parse_override("dims=[1, 2]") == ("dims", [1, 2])
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("width")
