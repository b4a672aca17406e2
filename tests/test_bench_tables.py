"""Tables and plots of the benchmark, generated from a hand-made results.json."""

from __future__ import annotations

import csv
import functools
import io
import json
import re

import numpy as np
import pytest

from highlightzoo.bench import report, tables
from highlightzoo.bench.presets import get_preset
from highlightzoo.bench.results import RESULTS_FILE, load_results, new_results, save_results
from highlightzoo.bench.stats import summarise_model
from highlightzoo.errors import DataFormatError, RunFolderError
from highlightzoo.models import get_model_card, list_models

SEEDS = (0, 1)
PAIRS = [(f"u{i}", f"v{i % 4}") for i in range(12)]
# Hand-set per-model AP levels: the full PR-Net is clearly best, A-VHD the best baseline.
LEVEL = {"prnet": 0.60, "avhd": 0.40, "fcsn": 0.30, "phdgifs": 0.35, "video2gif": 0.20}


def make_run(model: str, seed: int, rng: np.random.Generator, level: float) -> dict:
    noise = rng.uniform(-0.05, 0.05, size=len(PAIRS))
    videos = [
        {"user": u, "video": v, "ap": float(np.clip(level + n, 0, 1)), "nmsd": 0.4, "hit": float(i % 2)}
        for i, ((u, v), n) in enumerate(zip(PAIRS, noise, strict=True))
    ]
    return {
        "id": f"{model}/seed{seed}", "model": model, "seed": seed, "lr": 1e-3, "role": "final",
        "selection": {"stop_reason": "patience", "curve": [
            {"step": 50 * k, "val_map": 10.0 * k + seed} for k in (1, 2, 3)]},
        "test": {"videos": videos, "map": 100 * float(np.mean([x["ap"] for x in videos]))},
        "traces": {"u0/v0": list(rng.uniform(size=20))},
    }


def make_results(models: list[str] | None = None) -> dict:
    rng = np.random.default_rng(0)
    models = models or tables.table_models()
    results = new_results(
        preset=get_preset("quick").to_dict(), seeds=SEEDS, models=models,
        world={"key": "abc", "preset": "quick"}, provenance={"device": "cpu"},
    )
    results["traces"] = {"pairs": ["u0/v0"], "labels": {"u0/v0": [0] * 8 + [1] * 4 + [0] * 8},
                         "rate": {"u0/v0": 2.0}}
    for seed in SEEDS:
        for m in models:
            results["runs"].append(make_run(m, seed, rng, LEVEL.get(m, 0.45)))
    return results


@pytest.fixture
def folder(tmp_path):
    save_results(tmp_path / RESULTS_FILE, make_results())
    return tmp_path


def test_table_rows_come_from_the_cards_and_cover_both_paper_tables():
    t1, t2 = tables.table_rows("table1"), tables.table_rows("table2")
    assert set(t1) == {"random", "history_similarity", "video2gif", "fcsn", "phdgifs", "avhd", "prnet"}
    assert set(t1[:2]) == {"random", "history_similarity"}  # the floors open Table 1
    assert len(t2) == 11 and t2[-1] == "prnet" and t1[-1] == "prnet"
    assert {n for n in list_models() if get_model_card(n).table == "table2"} < set(t2)
    papers = [get_model_card(n).paper_map for n in t1[2:]]
    assert papers == sorted(papers)
    assert "random" not in tables.baselines() and "history_similarity" not in tables.baselines()


def test_markdown_and_csv_have_every_row_ci_paper_and_paired_test(folder):
    written = report.write_report(folder, plots=False)
    assert {p.name for p in written} == {"table1.md", "table1.csv", "table2.md", "table2.csv",
                                         "history_value.md", "history_value.csv"}
    for table in tables.TABLES:
        rows = list(csv.DictReader(io.StringIO((folder / f"{table}.csv").read_text())))
        paper_only = [r["model"] for r in rows if r["paper_only"] == "1"]
        assert paper_only == (["fcsn*", "avhd*"] if table == "table1" else [])
        rows = [r for r in rows if r["paper_only"] == "0"]
        assert [r["model"] for r in rows] == tables.table_rows(table)
        md = (folder / f"{table}.md").read_text()
        for r in rows:
            card = get_model_card(r["model"])
            assert r["lr"] == ("0.001" if card.trainable else "")  # a floor trains nothing
            assert r["converged"] == "2" and r["n_seeds"] == "2"
            if card.paper_map is None:  # a floor
                continue
            assert float(r["paper_map"]) == pytest.approx(card.paper_map)
            assert float(r["ci_videos_low"]) <= float(r["map"]) <= float(r["ci_videos_high"])
            assert float(r["ci_seeds_low"]) <= float(r["map"]) <= float(r["ci_seeds_high"])
            assert f"| {r['model']} | {card.paper_map:.2f} |" in md
            if r["model"] == "prnet":
                assert r["wilcoxon_p_vs_prnet"] == ""
            else:
                assert 0 < float(r["wilcoxon_p_vs_prnet"]) < 0.05  # PR-Net is 0.15+ AP better
        assert "95 % CI (videos)" in md and "Wilcoxon p vs prnet" in md


def test_numbers_match_a_hand_computation(folder):
    results = load_results(folder)
    rows = {r.model: r for r in tables.build_table("table1", results)}
    runs = [r for r in results["runs"] if r["model"] == "avhd"]
    aps = np.array([[v["ap"] for v in r["test"]["videos"]] for r in runs])
    assert rows["avhd"].summary.map == pytest.approx(100 * aps.mean())
    assert rows["avhd"].summary.seed_maps == pytest.approx(tuple(100 * aps.mean(axis=1)))
    # best baseline is A-VHD (by our numbers); relative change is vs it
    assert rows["avhd"].rel_best_baseline == pytest.approx(0.0)
    prnet = rows["prnet"].summary.map
    assert rows["prnet"].rel_best_baseline == pytest.approx((prnet / rows["avhd"].summary.map - 1) * 100)
    assert rows["prnet"].paper_rel_best_baseline == pytest.approx((18.66 / 16.68 - 1) * 100)
    assert rows["video2gif"].summary.hit == pytest.approx(50.0)


def test_models_not_run_keep_their_row(tmp_path):
    save_results(tmp_path / RESULTS_FILE, make_results(["prnet", "fcsn"]))
    report.write_report(tmp_path, plots=False)
    md = (tmp_path / "table2.md").read_text()
    assert md.count("not run") == 10  # ten ablations, PR-Net ran
    rows = list(csv.DictReader(io.StringIO((tmp_path / "table1.csv").read_text())))
    assert {r["model"]: r["map"] == "" for r in rows} == {
        "random": True, "history_similarity": True, "video2gif": True, "fcsn*": True, "fcsn": False,
        "phdgifs": True, "avhd*": True, "avhd": True, "prnet": False}
    assert "| fcsn* | 15.22 |" in (tmp_path / "table1.md").read_text()


def test_a_row_with_a_capped_run_says_it_did_not_converge(tmp_path):
    results = make_results(["prnet", "fcsn"])
    results["runs"][1]["selection"]["stop_reason"] = "cap"  # fcsn seed 0
    save_results(tmp_path / RESULTS_FILE, results)
    report.write_report(tmp_path, plots=False)
    md = (tmp_path / "table1.md").read_text()
    assert "| fcsn (NOT CONVERGED) | 15.15 | 0.001 | 1/2 |" in md
    assert "| prnet | 18.66 | 0.001 | 2/2 |" in md


def test_mismatched_test_videos_across_seeds_is_an_error():
    rng = np.random.default_rng(1)
    a, b = make_run("prnet", 0, rng, 0.5), make_run("prnet", 1, rng, 0.5)
    b["test"]["videos"] = b["test"]["videos"][:-1]
    with pytest.raises(DataFormatError, match="other test videos"):
        summarise_model("prnet", [a, b])


def test_report_of_a_folder_without_results_is_a_typed_error(tmp_path):
    with pytest.raises(RunFolderError, match="no results.json"):
        report.write_report(tmp_path)
    missing = tmp_path / "missing"  # named itself, not as "no results.json in <its parent>"
    with pytest.raises(RunFolderError, match=f"^{re.escape(str(missing))} does not exist"):
        report.write_report(missing)
    (tmp_path / RESULTS_FILE).write_text(json.dumps({"schema": "other"}))
    with pytest.raises(DataFormatError, match="not a benchmark results file"):
        report.write_report(tmp_path)
    (tmp_path / RESULTS_FILE).write_text(json.dumps({"kind": "highlightzoo-train-results"}))
    with pytest.raises(DataFormatError, match="the results of one training run"):
        report.write_report(tmp_path)  # a `highlightzoo train` run folder, named as such


def test_plots_are_written_when_matplotlib_is_present(folder):
    pytest.importorskip("matplotlib")
    names = {p.name for p in report.write_report(folder)}
    assert {"table1_map.png", "table2_map.png", "score_traces.png", "table1_curves.png",
            "table2_curves.png"} <= names
    for name in ("table1_map.png", "table2_map.png", "score_traces.png", "table1_curves.png"):
        data = (folder / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_cli_report_regenerates_tables(folder, capsys):
    from highlightzoo.cli import main

    assert main(["bench", "report", str(folder), "--no-plots"]) == 0
    assert (folder / "table1.md").exists()
    assert "table2.csv" in capsys.readouterr().out


def test_readme_block_is_filled_from_the_generated_table(folder, tmp_path):
    from highlightzoo.errors import ConfigError

    report.write_report(folder, plots=False)
    name = f"{folder.name}/table1.md"
    readme = tmp_path / "README.md"
    readme.write_text(f"# R\n<!-- BEGIN generated from {name} -->\nSTALE-TABLE\n"
                      f"<!-- END generated from {name} -->\ntail\n")
    report.embed_table(readme, folder)
    text = readme.read_text()
    assert "STALE-TABLE" not in text and text.endswith("tail\n")
    assert "| prnet | 18.66 |" in text and "# Table 1" not in text
    with pytest.raises(ConfigError, match="no '<!-- BEGIN"):
        report.embed_table(folder / "table2.md", folder)


def test_cli_report_checks_the_readme_before_rewriting_anything(folder, tmp_path, capsys):
    """A missing README was a FileNotFoundError traceback, after the report was rewritten."""
    from highlightzoo.cli import main

    for readme, match in ((tmp_path / "nope" / "R.md", "cannot read the README to fill"),
                          (folder / "results.json", "block to fill")):
        capsys.readouterr()
        assert main(["bench", "report", str(folder), "--readme", str(readme), "--no-plots"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and match in err and str(readme) in err
        assert not (folder / "table1.md").exists()  # refused before the report was written


def test_footnote_names_the_model_overrides_of_the_preset(tmp_path):
    results = make_results(["prnet", "fcsn"])
    preset = get_preset("quick").with_model_overrides(["prnet.history_context=video:16"])
    results["preset"] = preset.to_dict()
    save_results(tmp_path / RESULTS_FILE, results)
    report.write_report(tmp_path, plots=False)
    md = (tmp_path / "table1.md").read_text()
    assert ("model overrides (create_model arguments): avhd width_mult=0.25, fcsn width_mult=0.25, "
            "prnet history_context=video:16, video2gif width_mult=0.25;") in md


def _key_paths(obj, prefix=(), depth=6):
    """Paths to every value of ``obj`` down to ``depth`` (the first item of each list)."""
    items = obj.items() if isinstance(obj, dict) else ([(0, obj[0])] if obj else [])
    for key, value in items:
        yield (*prefix, key)
        if depth > 1 and isinstance(value, (dict, list)):
            yield from _key_paths(value, (*prefix, key), depth - 1)


def test_a_damaged_results_file_is_one_line_never_a_traceback(tmp_path, capsys):
    """Each value the reports read, deleted or replaced by a string: `bench report` exits 0
    (the value was not needed) or 2 with one line naming the file and the place. A hand edit
    or another version's file was a KeyError / TypeError deep in a table before."""
    from highlightzoo.cli import main

    good = make_results(["prnet", "prnet_g", "fcsn", "random"])
    for n, path in enumerate(p for p in _key_paths(good) if "traces" not in p):
        broken = json.loads(json.dumps(good))
        parent = functools.reduce(lambda node, key: node[key], path[:-1], broken)
        if n % 2 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = "x"
        folder = tmp_path / str(n)
        folder.mkdir()
        (folder / RESULTS_FILE).write_text(json.dumps(broken))
        capsys.readouterr()
        code = main(["bench", "report", str(folder), "--no-plots"])
        err = capsys.readouterr().err.strip()
        assert code in (0, 2), (path, err)
        if code == 2:
            assert "\n" not in err and str(folder) in err, (path, err)
