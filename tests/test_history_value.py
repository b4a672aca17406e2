"""History-value report on a small hand-made results dict: known differences, bins, files."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from highlightzoo.bench.history_value import (
    history_bin,
    history_value,
    history_value_csv,
    history_value_markdown,
    write_history_value,
)
from highlightzoo.bench.presets import get_preset
from highlightzoo.bench.results import SCHEMA, TIMING_KEY

# (user, n_history) of six test videos: two in each of the bins 0-1, 2-5 and >20
VIDEOS = [("a", 0), ("b", 1), ("c", 3), ("d", 5), ("e", 21), ("f", 400)]
USES_HISTORY = {"prnet": True, "prnet_g": False, "history_similarity": True, "avhd": True}


def _run(model: str, seed: int, aps: list[float], with_history: bool = True) -> dict:
    videos = []
    for (user, n), ap in zip(VIDEOS, aps, strict=True):
        rec = {"user": user, "video": f"v-{user}", "ap": ap, "n_positive": 1, "n_steps": 10}
        if with_history:
            rec["n_history"] = n
        videos.append(rec)
    return {
        "id": f"{model}/seed{seed}",
        "model": model,
        "seed": seed,
        "card": {"name": model, "uses_history": USES_HISTORY[model]},
        "test": {"videos": videos},
    }


def _results(with_history: bool = True) -> dict:
    base = np.array([0.2, 0.4, 0.3, 0.5, 0.1, 0.6])
    runs = []
    for seed in (0, 1):
        # prnet: +0.10 on seed 0 and +0.20 on seed 1 over prnet_g on every video -> +15 points
        runs.append(_run("prnet_g", seed, list(base), with_history))
        runs.append(_run("prnet", seed, list(base + 0.1 * (seed + 1)), with_history))
        # the floor: prnet_g - 0.05 on videos with > 20 history segments, equal to prnet_g elsewhere
        floor = base - np.array([0, 0, 0, 0, 0.05, 0.05])
        runs.append(_run("history_similarity", seed, list(floor), with_history))
    # the rest of a real file's skeleton: load_results checks what the reports read
    return {"schema": SCHEMA, "preset": get_preset("quick").to_dict(), TIMING_KEY: {},
            "runs": runs, "seeds": [0, 1], "world": {"key": "k"}, "provenance": {}}


def _row(report, model: str, baseline: str, label: str):
    return next(r for r in report.rows if (r.model, r.baseline, r.bin) == (model, baseline, label))


def test_history_bins():
    assert [history_bin(n) for n in (0, 1, 2, 5, 6, 20, 21, 1347)] == [
        "0-1", "0-1", "2-5", "2-5", "6-20", "6-20", ">20", ">20",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        history_bin(-1)


def test_known_differences_overall_and_by_bin():
    report = history_value(_results())
    overall = _row(report, "prnet", "prnet_g", "all")
    assert overall.n_videos == 6
    assert overall.mean_diff == pytest.approx(15.0)
    assert overall.model_map == pytest.approx(
        100 * (np.mean([0.2, 0.4, 0.3, 0.5, 0.1, 0.6]) + 0.15)
    )
    assert overall.ci_low == pytest.approx(15.0) and overall.ci_high == pytest.approx(15.0)
    bins = [r.bin for r in report.rows if (r.model, r.baseline) == ("prnet", "prnet_g")]
    assert bins == ["all", "0-1", "2-5", ">20"]  # no row for the empty 6-20 bin
    assert not [r for r in report.rows if r.model == "prnet_g"]  # no history: not compared
    floor_big = _row(report, "prnet", "history_similarity", ">20")
    assert floor_big.n_videos == 2 and floor_big.mean_diff == pytest.approx(20.0)
    floor_small = _row(report, "prnet", "history_similarity", "0-1")
    assert floor_small.mean_diff == pytest.approx(15.0)
    assert report.history_source.startswith("results")
    assert not report.notes


def test_every_personalized_model_meets_the_floor_and_counterparts_only_when_run():
    report = history_value(_results())
    pairs = {(r.model, r.baseline) for r in report.rows}
    assert pairs == {("prnet", "prnet_g"), ("prnet", "history_similarity")}


def test_old_results_without_history_counts_give_only_the_overall_row():
    report = history_value(_results(with_history=False))
    assert {r.bin for r in report.rows} == {"all"}
    assert any("history-size bins are skipped" in n for n in report.notes)
    assert "bins are skipped" in history_value_markdown(report)


def test_p_value_and_interval_come_from_the_paired_test():
    results = _results()
    for run in results["runs"]:  # make prnet's gain uneven so the test has something to do
        if run["model"] == "prnet":
            for i, v in enumerate(run["test"]["videos"]):
                v["ap"] += 0.01 * i
    row = _row(history_value(results), "prnet", "prnet_g", "all")
    assert row.ci_low < row.mean_diff < row.ci_high
    assert 0.0 < row.p_value < 1.0


def test_csv_and_markdown_agree_and_files_are_written(tmp_path):
    import json

    results = _results()
    (tmp_path / "results.json").write_text(json.dumps(results))
    paths = write_history_value(tmp_path, plots=True)
    names = {p.name for p in paths}
    assert {"history_value.md", "history_value.csv"} <= names
    rows = list(csv.DictReader(io.StringIO((tmp_path / "history_value.csv").read_text())))
    report = history_value(results)
    assert len(rows) == len(report.rows)
    assert float(rows[0]["mean_diff"]) == pytest.approx(report.rows[0].mean_diff)
    assert history_value_csv(report) == (tmp_path / "history_value.csv").read_text()
    md = (tmp_path / "history_value.md").read_text()
    assert "| prnet | prnet_g | all | 6 |" in md and "+15.00" in md


def test_history_counts_come_from_the_store_for_old_results(tmp_path):
    from training_support import write_tiny_store

    from highlightzoo.bench.history_value import store_history_counts
    from highlightzoo.data.store import FeatureStore

    path = write_tiny_store(tmp_path / "tiny.h5")
    with FeatureStore(path) as store:
        users = store.users("test")
        keys = [f"{u}/{store.user(u).target_video}" for u in users]
        want = {k: len(store.user(k.split("/")[0]).history) for k in keys}
    got = store_history_counts(path, keys + ["nobody/v"])
    assert got == want and sorted(set(want.values())) == [0, 1, 2, 3]
