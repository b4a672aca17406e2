"""TrainConfig: JSON round trip, validation errors, model-override parsing."""

from __future__ import annotations

import json

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
    ],
)
def test_bad_values_are_config_errors_naming_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(model="prnet", data="x.h5", **change)


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
