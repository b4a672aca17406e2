"""The stopping rule on scripted validation curves: known answers, no training."""

from __future__ import annotations

import pytest

from highlightzoo.errors import ConfigError
from highlightzoo.training.stopping import StoppingRule, StopState, observe, replay


def curve(values, every=50):
    return [(every * (i + 1), v) for i, v in enumerate(values)]


def test_a_plateau_then_a_rise_is_not_cut_short_by_min_steps():
    # FCSN-like: flat for 4 validations, then it learns. Without min_steps patience 3 stops at
    # step 200 on the plateau; with min_steps 400 the run sees the rise and stops after it.
    values = [10.0, 10.0, 10.0, 10.0, 20.0, 30.0, 40.0, 39.0, 38.0, 39.5]
    early = replay(StoppingRule(max_steps=1000, patience=3), curve(values))
    assert (early.stop_reason, early.best_step, early.best_value) == ("patience", 50, 10.0)
    late = replay(StoppingRule(max_steps=1000, patience=3, min_steps=400), curve(values))
    assert (late.stop_reason, late.best_step, late.best_value) == ("patience", 350, 40.0)


def test_a_noisy_plateau_stops_on_min_delta_but_keeps_the_highest_checkpoint():
    # improvements of 0.05 are noise under min_delta 0.1: patience counts through them,
    # while the best checkpoint still follows the highest value
    values = [50.0, 50.05, 50.08, 49.9, 50.09]
    state = replay(StoppingRule(max_steps=1000, patience=4, min_delta=0.1), curve(values))
    assert state.stop_reason == "patience" and state.bad == 4
    assert (state.best_step, state.best_value, state.ref_value) == (250, 50.09, 50.0)
    # without min_delta each tiny gain resets patience: no stop yet
    assert replay(StoppingRule(max_steps=1000, patience=4), curve(values)).stop_reason is None


def test_the_cap_stops_a_rising_run_and_is_not_convergence():
    state = replay(StoppingRule(max_steps=200, patience=2), curve([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert (state.stop_reason, state.best_step) == ("cap", 200)


def test_patience_wins_over_the_cap_at_the_same_validation():
    state = replay(StoppingRule(max_steps=150, patience=2), curve([5.0, 4.0, 3.0]))
    assert state.stop_reason == "patience"


def test_observe_reports_a_new_best_and_refuses_after_the_stop():
    rule = StoppingRule(max_steps=100, patience=1)
    state, best = observe(rule, StopState(), 50, 3.0)
    assert best and state.best_step == 50
    state, best = observe(rule, state, 100, float("nan"))  # NaN never improves
    assert not best and state.stop_reason == "patience"
    with pytest.raises(ValueError, match="already stopped"):
        observe(rule, state, 150, 4.0)


@pytest.mark.parametrize("kwargs", [dict(max_steps=0), dict(max_steps=10, patience=0),
                                    dict(max_steps=10, min_delta=-1.0),
                                    dict(max_steps=10, min_steps=-1)])
def test_bad_rules_are_typed_errors(kwargs):
    with pytest.raises(ConfigError):
        StoppingRule(**kwargs)
