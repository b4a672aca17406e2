"""The benchmark loop with a fake backend: atomic appends, Ctrl-C, resume, progress."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
from pathlib import Path

import pytest

from highlightzoo.bench import plots, report, runner
from highlightzoo.bench.presets import get_preset
from highlightzoo.bench.progress import Progress, format_seconds
from highlightzoo.bench.results import RESULTS_FILE, load_results, strip_timing
from highlightzoo.bench.runner import RunOutcome, World, run_tables
from highlightzoo.errors import ConfigError, DataFormatError, ModelNotFoundError, RunFolderError

MODELS = ["video2gif", "prnet", "prnet_h0"]


class FakeBackend:
    """Deterministic per-(model, seed) results; optionally 'Ctrl-C' before run number ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at, self.calls = stop_at, []

    def build_world(self, preset, *, replay, cache_dir, quiet):
        return World(Path(cache_dir) / "w.h5", "k1", {"preset": preset.world, "seed": 0})

    def trace_targets(self, world, count):
        return {"pairs": ["u0/v0"], "labels": {"u0/v0": [0, 1, 1, 0]}, "rate": {"u0/v0": 1.0}}

    def run(self, preset, model, seed, world, run_dir, *, device, trace_pairs, lr, stop_after=None):
        test = stop_after is None
        self.calls.append((model, seed) if test else (model, seed, lr, stop_after))
        run_dir.mkdir(parents=True)
        (run_dir / "partial.txt").write_text("x")
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            raise KeyboardInterrupt
        val = hashlib.sha256(f"{model}{lr}".encode()).digest()[0] / 2.55
        record = {"config": {"model": model, "seed": seed, "lr": lr},
                  "selection": {"best_val_map": val, "stop_reason": "patience", "curve": []}}
        if not test:
            return RunOutcome(record=record, timing={"train_s": 0.01})
        return RunOutcome(
            record={**record, "test": self._test(model, seed)},
            timing={"train_s": 0.01 * len(self.calls)},
            traces={p: [0.1, 0.5, 0.7, 0.2] for p in trace_pairs},
        )

    def resume_run(self, preset, model, seed, world, run_dir, *, device, trace_pairs):
        self.calls.append(("resume", model, run_dir.name))
        record = {"selection": {"best_val_map": 1.0, "stop_reason": "patience", "curve": []},
                  "test": self._test(model, seed)}
        return RunOutcome(record=record, timing={"test_s": 0.01},
                          traces={p: [0.1, 0.5, 0.7, 0.2] for p in trace_pairs})

    @staticmethod
    def _test(model, seed):
        digest = hashlib.sha256(f"{model}{seed}".encode()).digest()
        videos = [{"user": f"u{i}", "video": f"v{i}", "ap": digest[i] / 255, "nmsd": 0.3,
                   "hit": 1.0} for i in range(6)]
        return {"videos": videos, "map": 100.0 * sum(v["ap"] for v in videos) / len(videos)}


def bench(out: Path, backend: FakeBackend, **kw) -> Path:
    kw.setdefault("models", MODELS)
    kw.setdefault("seeds", 2)
    return run_tables("quick", out, backend=backend, cache_dir=out.parent / "cache",
                      quiet=True, report=False, **kw)


def test_interrupted_benchmark_keeps_finished_runs_and_resumes(tmp_path):
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        bench(out, FakeBackend(stop_at=4))
    partial = load_results(out / RESULTS_FILE)
    assert [r["id"] for r in partial["runs"]] == ["video2gif/seed0", "prnet/seed0", "prnet_h0/seed0"]
    assert not list(out.glob(".results.json.*"))  # no temp file left behind

    again = FakeBackend()
    bench(out, again)
    assert again.calls == [("video2gif", 1), ("prnet", 1), ("prnet_h0", 1)]
    resumed = load_results(out / RESULTS_FILE)
    assert sorted(resumed["timing"]["runs"]) == sorted(r["id"] for r in resumed["runs"])

    straight = tmp_path / "c"
    bench(straight, FakeBackend())
    assert strip_timing(resumed) == strip_timing(load_results(straight / RESULTS_FILE))


def test_finished_folder_is_not_retrained_and_more_seeds_extend_it(tmp_path):
    out = tmp_path / "b"
    bench(out, FakeBackend(), seeds=1)
    again = FakeBackend()
    bench(out, again, seeds=1)
    assert again.calls == []
    more = FakeBackend()
    bench(out, more, seeds=2)
    assert more.calls == [(m, 1) for m in MODELS]
    assert load_results(out)["seeds"] == [0, 1]


def test_folder_of_another_preset_is_refused(tmp_path):
    out = tmp_path / "b"
    bench(out, FakeBackend(), seeds=1)
    other = dataclasses.replace(get_preset("quick"), max_steps=99)
    with pytest.raises(RunFolderError, match="another preset"):
        run_tables(other, out, backend=FakeBackend(), models=MODELS, seeds=1,
                   cache_dir=tmp_path / "cache", quiet=True, report=False)


def test_timing_is_separated_from_deterministic_fields(tmp_path):
    out = tmp_path / "b"
    bench(out, FakeBackend(), seeds=1)
    data = json.loads((out / RESULTS_FILE).read_text())
    assert set(data["timing"]["runs"]["prnet/seed0"]) == {"train_s", "total_s"}
    text = json.dumps(strip_timing(data))
    assert "train_s" not in text and "total_s" not in text and "world_seconds" not in text
    assert data["runs"][1]["traces"] == {"u0/v0": [0.1, 0.5, 0.7, 0.2]}
    assert (out / ".gitignore").read_text().strip().endswith("runs/")


def test_bad_arguments_are_typed_errors(tmp_path):
    with pytest.raises(ConfigError, match="neither benchmark table"):
        bench(tmp_path / "b", FakeBackend(), models=["prnet", "nope"])
    with pytest.raises(ConfigError, match="seeds"):
        bench(tmp_path / "b", FakeBackend(), seeds=0)
    with pytest.raises(ConfigError, match="unknown bench preset"):
        run_tables("huge", tmp_path / "b", backend=FakeBackend())


def test_progress_shows_model_seed_and_time_left():
    now = [0.0]
    stream = io.StringIO()
    p = Progress([("a", 0), ("b", 0), ("a", 1), ("b", 1)], stream=stream, clock=lambda: now[0])
    p.starting("a", 0)
    p.finished("a", 0, 10.0, "ok")
    assert p.estimate_left() == pytest.approx(30.0)  # b unknown: overall mean 10 s
    p.finished("b", 0, 30.0, "ok")
    assert p.estimate_left() == pytest.approx(40.0)  # a 10 s + b 30 s
    now[0] = 40.0
    p.starting("a", 1)
    text = stream.getvalue()
    assert "[1/4] training a seed 0" in text and "time left ~estimating" in text
    assert "[3/4] training a seed 1 | elapsed 40s | time left ~40s" in text
    assert format_seconds(3725) == "1h02m05s" and format_seconds(65) == "1m05s"


def test_runner_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HIGHLIGHTZOO_CACHE", str(tmp_path))
    assert runner.default_cache_dir() == tmp_path / "worlds"


@pytest.mark.parametrize("name", ["quick", "converged", "standard", "paper"])
def test_every_model_of_a_preset_gets_the_same_training_budget(tmp_path, name):
    from highlightzoo.bench.backend import TrainerBackend
    from highlightzoo.bench.tables import table_models

    preset = get_preset(name)
    world = World(tmp_path / "w.h5", "k", {})
    configs = {m: TrainerBackend().train_config(preset, m, 1, world, tmp_path / m, "cpu").to_dict()
               for m in table_models()}
    assert len(configs) == 17  # 15 paper rows + the 2 floors
    own = ("model", "out", "model_overrides")
    budget = {k: v for k, v in configs["prnet"].items() if k not in own}
    for config in configs.values():
        assert {k: v for k, v in config.items() if k not in own} == budget
        # overrides only resize (never change training), and only where the preset says
        assert set(config["model_overrides"]) <= {"width_mult"}
    assert budget["max_steps"] == preset.max_steps and budget["seed"] == 1
    assert budget["epochs"] == (preset.epochs or 1)
    if name == "paper":
        assert (budget["epochs"], budget["batch_size"], budget["lr"]) == (150, 32, 1e-3)
        assert budget["patience"] is None and budget["betas"] == [0.9, 0.999]


def test_cli_tables_passes_its_options_through(tmp_path, monkeypatch, capsys):
    from highlightzoo.cli import main

    fake = FakeBackend()
    monkeypatch.setattr(runner, "default_backend", lambda: fake)
    argv = ["bench", "tables", "--preset", "quick", "--seeds", "2", "--max-steps", "7",
            "--models", "prnet", "video2gif", "--out", str(tmp_path / "b"),
            "--cache", str(tmp_path / "c"), "--quiet", "--no-report", "--jobs", "1"]
    assert main(argv) == 0
    assert fake.calls == [("prnet", 0), ("video2gif", 0), ("prnet", 1), ("video2gif", 1)]
    results = load_results(tmp_path / "b")
    assert results["preset"]["max_steps"] == 7 and results["preset"]["name"] == "quick"
    assert capsys.readouterr().out.strip().endswith("results.json")
    assert main(["bench", "tables", "--out", str(tmp_path / "d"), "--models", "nope"]) == 2


def test_sweep_chooses_each_rate_on_validation_and_tests_only_the_chosen_run(tmp_path):
    grid = dataclasses.replace(get_preset("quick"), lr_grid=(1e-4, 1e-3, 3e-3), sweep_steps=100)
    fake = FakeBackend()
    out = tmp_path / "b"
    run_tables(grid, out, backend=fake, models=["video2gif", "prnet", "random"], seeds=2,
               cache_dir=tmp_path / "c", quiet=True, report=False)
    results = load_results(out)
    sweep = [r for r in results["runs"] if r["role"] == "sweep"]
    assert len(sweep) == 6 and all("test" not in r for r in sweep)  # test never read in the sweep
    assert {c[3] for c in fake.calls if len(c) == 4} == {2}  # paused after 100 steps = 2 validations
    for model in ("video2gif", "prnet"):
        vals = {r["lr"]: r["selection"]["best_val_map"] for r in sweep if r["model"] == model}
        chosen = results["lr_choice"][model]["chosen"]
        assert vals[chosen] == max(vals.values())
        finals = [r for r in results["runs"] if r["role"] == "final" and r["model"] == model]
        assert [r["lr"] for r in finals] == [chosen, chosen]
        assert finals[0]["source"] == f"{model}/lr{chosen:g}/seed0" and finals[1]["source"] is None
        assert ("resume", model, f"{model}-lr{chosen:g}-seed0") in fake.calls  # seed 0 continues
        assert (model, 1) in fake.calls and (model, 0) not in fake.calls
    assert not any(r["model"] == "random" for r in sweep)  # a floor has nothing to sweep
    assert runner.choose_lr({1e-3: 5.0, 1e-4: 5.0, 3e-3: 1.0}) == 1e-4  # ties: the smaller rate
    again = FakeBackend()
    run_tables(grid, out, backend=again, models=["video2gif", "prnet", "random"], seeds=2,
               cache_dir=tmp_path / "c", quiet=True, report=False)
    assert again.calls == []  # everything resumed


def test_a_run_record_is_strict_json_with_missing_values_as_null():
    from highlightzoo.bench.backend import test_record
    from highlightzoo.bench.results import dumps
    from highlightzoo.training.evaluation import VideoRecord, summarise

    nan = float("nan")
    records = [VideoRecord("u0", "v0", 0.5, nan, nan, 10, 0, nan, 0.5, 3),
               VideoRecord("u1", "v1", 0.25, 0.3, 1.0, 10, 2, 0.2, 0.25, 1)]
    record = test_record(summarise(records, [], 5, protocol="avhd"))
    assert record["videos"][0]["ap_steps"] is None and record["videos"][0]["nmsd"] is None
    dumps({"runs": [record]})  # allow_nan=False: would raise on a NaN


def test_model_overrides_from_the_command_line_are_part_of_the_preset(tmp_path):
    base = get_preset("quick")
    preset = base.with_model_overrides(["prnet.history_context=video:16", "fcsn.width_mult=0.5"])
    assert preset.overrides_for("prnet") == {"history_context": "video:16"}
    assert preset.overrides_for("fcsn") == {"width_mult": 0.5}  # JSON value, replaces the preset's
    assert preset.overrides_for("avhd") == base.overrides_for("avhd")
    assert base.overrides_for("prnet") == {}  # the registered preset is not changed
    out = tmp_path / "b"
    bench(out, FakeBackend(), seeds=1)
    with pytest.raises(RunFolderError, match="another preset"):  # resume with other overrides
        run_tables(preset, out, backend=FakeBackend(), models=MODELS, seeds=1,
                   cache_dir=tmp_path / "cache", quiet=True, report=False)


@pytest.mark.parametrize("item", ["prnet=3", "prnet.=3", ".width=3", "prnet.width"])
def test_malformed_model_override_is_a_config_error(item):
    with pytest.raises(ConfigError, match="MODEL.KEY=VALUE"):
        get_preset("quick").with_model_overrides([item])


def test_model_override_of_an_unknown_model_or_option_is_refused():
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'"):
        get_preset("quick").with_model_overrides(["nope.width=3"])
    with pytest.raises(ConfigError, match="has no option 'width'"):
        get_preset("quick").with_model_overrides(["fcsn.width=3"])


def test_a_model_that_cannot_be_built_is_refused_before_any_folder_is_written(tmp_path):
    """``--model-override fcsn.width_mult=abc``: refused by the trainer backend's check (every
    chosen model built on the meta device at the world's width) before ``out`` exists. Before,
    results.json recorded the typo's preset, and the corrected command was refused as
    "another preset"."""
    from training_support import write_tiny_store

    from highlightzoo.bench.backend import TrainerBackend

    store = write_tiny_store(tmp_path / "tiny.h5")
    world = World(store, "k", {})
    bad = get_preset("quick").with_model_overrides(["fcsn.width_mult=\"abc\""])
    with pytest.raises(ConfigError, match="width_mult must be a number"):
        TrainerBackend().check_models(bad, world, ["prnet", "fcsn"])
    TrainerBackend().check_models(get_preset("quick"), world, ["prnet", "fcsn"])  # builds

    class CheckedBackend(FakeBackend):
        def check_models(self, preset, world, models):
            assert models == MODELS
            raise ConfigError("model 'prnet': no")

    out = tmp_path / "b"
    with pytest.raises(ConfigError, match="no"):
        run_tables("quick", out, backend=CheckedBackend(), models=MODELS, seeds=1,
                   cache_dir=tmp_path / "cache", quiet=True, report=False)
    assert not out.exists()


def test_budget_and_device_overrides_are_checked_up_front(tmp_path):
    """``bench tables --epochs 0`` used to train one pass anyway (``epochs or 1``), and
    ``--device tpu`` ended in a RuntimeError traceback; both are ConfigErrors now, and
    nothing is written."""
    quick = get_preset("quick")
    for change, flag in (({"epochs": 0, "max_steps": None}, "--epochs"),
                         ({"max_steps": -1}, "--max-steps")):
        with pytest.raises(ConfigError, match=f"\\({flag}\\) must be an int >= 1"):
            dataclasses.replace(quick, **change)
    out = tmp_path / "b"
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        run_tables("quick", out, backend=FakeBackend(), models=MODELS, seeds=1, device="tpu",
                   cache_dir=tmp_path / "cache", quiet=True, report=False)
    assert not out.exists()


def test_an_out_path_that_is_a_file_or_a_missing_replay_csv_is_refused_first(tmp_path):
    """Both were tracebacks (``FileExistsError``, ``FileNotFoundError``); now one typed error
    naming the path, before the world is built."""
    from highlightzoo.errors import DataFormatError, WriteError

    class NoWorld(FakeBackend):
        def build_world(self, *args, **kwargs):  # noqa: ANN002, ANN003
            raise AssertionError("the world was built before the paths were checked")

    file = tmp_path / "results.h5"
    file.write_text("")
    common = {"backend": NoWorld(), "models": MODELS, "seeds": 1, "quiet": True,
              "cache_dir": tmp_path / "cache", "report": False}
    with pytest.raises(WriteError, match="it is a file, not a folder"):
        run_tables("quick", file, **common)
    with pytest.raises(DataFormatError, match="the CSV to replay does not exist") as info:
        run_tables("quick", tmp_path / "b", replay=tmp_path / "nope.csv", **common)
    assert info.value.path == str(tmp_path / "nope.csv") and not (tmp_path / "b").exists()
    with pytest.raises(WriteError, match="it is a file, not a folder"):  # --cache FILE
        run_tables("quick", tmp_path / "b", **{**common, "cache_dir": file})
    with pytest.raises(ConfigError, match=f"--models names '{MODELS[0]}' more than once"):
        # the second pass over its runs failed on the first's folders, after training them
        run_tables("quick", tmp_path / "b", **{**common, "models": [*MODELS, MODELS[0]]})
    assert not (tmp_path / "b").exists()


def test_cli_model_override_for_a_model_not_run_is_refused(tmp_path, capsys):
    """It was recorded in the preset, named in the footnote, and used by no run."""
    from highlightzoo.cli import main

    argv = ["bench", "tables", "--models", "fcsn", "--model-override", "prnet.width=8",
            "--out", str(tmp_path / "b"), "--quiet"]
    assert main(argv) == 2
    assert "--model-override prnet.width=8 is for a model that is not among --models (fcsn)" \
        in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def _edit_results(out: Path, edit) -> None:
    data = json.loads((out / RESULTS_FILE).read_text())
    edit(data)
    (out / RESULTS_FILE).write_text(json.dumps(data))  # Python writes NaN as the bare word NaN


def _set(path, value):
    def edit(data):
        *parents, last = path
        for key in parents:
            data = data[key]
        data[last] = value
    return edit


# A damaged results.json met on resume: each of these was a traceback (AttributeError,
# TypeError, KeyError, OverflowError) in the runner or the report, or, for NaN, a ValueError
# from the writer after the run had been done again (the reader took NaN, JSON has none).
DAMAGED_RESULTS = {
    "nan": (_set(["runs", 0, "test", "videos", 0, "ap"], float("nan")), "NaN is not a JSON value"),
    "timing_run": (_set(["timing", "runs", "video2gif/seed0"], 1.5),
                   "timing.runs['video2gif/seed0'] must be an object"),
    "timing_total": (_set(["timing", "runs", "video2gif/seed0", "total_s"], "x"),
                     "total_s must be int or float"),
    "world_seconds": (_set(["timing", "world_seconds"], None), "world_seconds must be a list"),
    "traces": (_set(["traces"], 3), "traces must be an object"),
    "trace_pairs": (_set(["traces", "pairs"], True), "traces.pairs must be a list"),
    "trace_labels": (_set(["traces", "labels"], {}), "traces must be an object with labels for "
                                                     "every pair"),
    "curve_point": (_set(["runs", 0, "selection", "curve"], [{}]), "curve[0].step is missing"),
    "curve_step": (_set(["runs", 0, "selection", "curve"], [{"step": 1e308, "val_map": 1.0}]),
                   "curve[0].step must be int"),
    "run_traces": (_set(["runs", 0, "traces"], {"u0/v0": None}), "runs[0].traces['u0/v0'] must "
                                                                   "be a list"),
    # a per-video record removed or edited moved the table row without a word
    "video_removed": (lambda d: d["runs"][0]["test"]["videos"].pop(0),
                      "is not the mean ap of its 5 video records"),
    "ap_edited": (_set(["runs", 0, "test", "videos", 0, "ap"], 0.99), "a record was edited"),
    "n_pairs": (_set(["runs", 0, "test", "n_pairs"], 7),
                "runs[0].test.videos has 6 records but n_pairs says 7"),
    "nmsd_removed": (lambda d: d["runs"][0]["test"]["videos"][2].pop("nmsd"),
                     "runs[0].test.videos[2].nmsd is missing (the run's other records have it)"),
    "role": (_set(["runs", 0, "role"], "x"), "runs[0].role must be one of ('final', 'sweep')"),
    "lr": (_set(["runs", 0, "lr"], -1), "runs[0].lr must be a number > 0, got -1"),
    "protocol": (_set(["runs", 0, "test", "protocol"], "x"), "runs[0].test.protocol must be one of"),
    "model": (_set(["runs", 0, "model"], "x"),
              "runs[0].id 'video2gif/seed0' does not fit its model 'x' and seed 0"),
    "ap_range": (_set(["runs", 0, "test", "videos", 0, "ap"], -1), "must be an AP in [0, 1]"),
    "nmsd_range": (_set(["runs", 0, "test", "videos", 0, "nmsd"], -1), "must be a number in [0, 1]"),
    "nmsd_edited": (lambda d: (d["runs"][0]["test"].update(nmsd=0.3),
                               d["runs"][0]["test"]["videos"][0].update(nmsd=0.9)),
                    "runs[0].test.nmsd 0.3000 is not the mean nmsd of its video records"),
    "protocol_map_text": (_set(["runs", 0, "test", "map_by_protocol"], {"steps": "x"}),
                          "runs[0].test.map_by_protocol['steps'] must be int or float or null"),
    "n_pairs_text": (_set(["runs", 0, "test", "n_pairs"], "6"), "runs[0].test.n_pairs must be int"),
    "lr_config": (_set(["runs", 0, "lr"], 0.5), "runs[0].lr 0.5 is not the rate its config trained"),
    "ap_steps_nulled": (lambda d: _with_steps_protocol(d)["runs"][0]["test"]["videos"][0].update(
        ap_steps=None), "runs[0].test.map_by_protocol.steps"),
}  # fmt: skip


def _with_steps_protocol(data):
    """Every final run's records with an ``ap_steps`` and its ``map_by_protocol``, as written."""
    for run in data["runs"]:
        for v in run["test"]["videos"]:
            v["ap_steps"] = v["ap"]
        run["test"]["map_by_protocol"] = {"steps": run["test"]["map"]}
    return data


@pytest.mark.parametrize("case", sorted(DAMAGED_RESULTS))
def test_a_damaged_results_file_is_refused_on_resume_naming_the_place(tmp_path, case):
    out = tmp_path / "b"
    bench(out, FakeBackend(), seeds=1)
    edit, message = DAMAGED_RESULTS[case]
    _edit_results(out, edit)
    before = (out / RESULTS_FILE).read_bytes()
    with pytest.raises(DataFormatError, match=re.escape(message)) as info:
        bench(out, FakeBackend(), seeds=2)
    assert str(out / RESULTS_FILE) in str(info.value)
    assert (out / RESULTS_FILE).read_bytes() == before  # nothing run, nothing rewritten


def test_a_null_validation_map_is_left_out_of_the_learning_curve(tmp_path):
    out = tmp_path / "b"
    bench(out, FakeBackend(), seeds=1)
    curve = [{"step": 2, "val_map": 10.0}, {"step": 4, "val_map": None}]  # null: a NaN validation
    _edit_results(out, _set(["runs", 0, "selection", "curve"], curve))
    report.write_report(out)
    assert (out / "table1_curves.png").stat().st_size > 0
    steps, mean, _, _ = plots.curve_points(load_results(out)["runs"][:1])
    assert steps.tolist() == [2] and mean.tolist() == [10.0]


def test_the_process_pool_has_no_more_workers_than_tasks(monkeypatch):
    """--jobs 64 on two tasks started 64 workers' worth of pool (each imports torch)."""
    seen = {}

    class Pool:
        def __init__(self, max_workers, **kwargs):
            seen["workers"] = max_workers
            raise RuntimeError("stop here")

    monkeypatch.setattr(runner, "ProcessPoolExecutor", Pool)
    tasks = [(i, print, (), {}) for i in range(2)]
    with pytest.raises(RuntimeError, match="stop here"):
        list(runner._execute(tasks, jobs=64, threads=None))
    assert seen["workers"] == 2


def test_a_worker_process_that_dies_is_a_training_error_naming_the_run():
    """A worker killed mid-run (the system's OOM killer, kill -9) ended ``bench tables
    --jobs N`` in concurrent.futures' BrokenProcessPool traceback; the message now names the
    run and says the finished runs are kept for a rerun."""
    import os

    from highlightzoo.errors import TrainingError

    tasks = [(("fcsn", 0.001), os._exit, (9,), {})]  # the worker process ends at once
    with pytest.raises(TrainingError, match=r"worker process ended without a result for fcsn "
                                            r"\(0\.001\).*rerun the same command"):
        list(runner._execute(tasks, jobs=2, threads=1))


def test_a_benchmark_folder_in_use_is_refused_and_released_after(tmp_path):
    from highlightzoo.io import LOCK_FILE, folder_lock

    out = tmp_path / "b"
    out.mkdir()
    with folder_lock(out, "bench tables"), pytest.raises(RunFolderError, match="is in use by"):
        bench(out, FakeBackend(), seeds=1)
    assert not (out / RESULTS_FILE).exists()  # nothing written into the held folder
    bench(out, FakeBackend(), seeds=1)
    assert not (out / LOCK_FILE).exists()
