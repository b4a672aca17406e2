"""End to end on the tiny world with the real trainer: determinism and resume after Ctrl-C."""

from __future__ import annotations

import dataclasses
import json

import pytest

from highlightzoo.bench import backend as bench_backend
from highlightzoo.bench import get_preset, load_results, run_tables, strip_timing
from highlightzoo.bench.results import RESULTS_FILE

MODELS = ["video2gif", "prnet"]
TINY = dataclasses.replace(
    get_preset("quick"), name="tiny-test", world="tiny", max_steps=4, eval_every=2, batch_size=4,
    patience=None,
)


@pytest.fixture(autouse=True)
def fixed_git(monkeypatch):
    """The lead may commit while this runs; provenance's commit is not what is tested here."""
    from highlightzoo import provenance

    monkeypatch.setattr(provenance, "git_state", lambda: {"commit": "test", "dirty": False})


def bench(out, cache, **kw):
    return run_tables(TINY, out, seeds=1, models=MODELS, cache_dir=cache, quiet=True, **kw)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("worlds")


def test_same_command_gives_identical_results_apart_from_timing(tmp_path, cache):
    first = load_results(bench(tmp_path / "a", cache))
    second_path = bench(tmp_path / "b", cache)
    second = load_results(second_path)
    assert [r["id"] for r in first["runs"]] == ["video2gif/seed0", "prnet/seed0"]
    assert strip_timing(first) == strip_timing(second)
    # the canonical file text (what a diff sees) is identical too, timing key removed
    dump = lambda d: json.dumps(strip_timing(d), sort_keys=True)  # noqa: E731
    assert dump(first) == dump(second)
    assert first["timing"]["runs"]["prnet/seed0"]["training_time_s"] > 0
    run = first["runs"][1]
    assert run["test"]["videos"] and all(0 <= v["ap"] <= 1 for v in run["test"]["videos"])
    assert run["config"]["data"].endswith(".h5") and "/" not in run["config"]["data"]
    assert set(run["traces"]) == set(first["traces"]["pairs"]) and first["traces"]["pairs"]
    assert (tmp_path / "a" / "table1.md").exists() and (tmp_path / "a" / "table2.csv").exists()


def test_interrupted_real_benchmark_resumes_to_the_same_results(tmp_path, cache, monkeypatch):
    straight = load_results(bench(tmp_path / "a", cache, report=False))
    real_run = bench_backend.TrainerBackend.run
    calls = []

    def interrupting(self, preset, model, seed, world, run_dir, **kwargs):
        calls.append(model)
        if len(calls) == 2:  # Ctrl-C while the second model trains: a partial run folder
            (run_dir / "checkpoints").mkdir(parents=True)
            raise KeyboardInterrupt
        return real_run(self, preset, model, seed, world, run_dir, **kwargs)

    monkeypatch.setattr(bench_backend.TrainerBackend, "run", interrupting)
    with pytest.raises(KeyboardInterrupt):
        bench(tmp_path / "b", cache, report=False)
    assert [r["id"] for r in load_results(tmp_path / "b" / RESULTS_FILE)["runs"]] == [
        "video2gif/seed0"
    ]
    monkeypatch.setattr(bench_backend.TrainerBackend, "run", real_run)
    resumed = load_results(bench(tmp_path / "b", cache, report=False))
    assert strip_timing(resumed) == strip_timing(straight)
