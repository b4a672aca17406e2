"""The benchmark's results.json: schema, atomic writes, resume bookkeeping.

One file per benchmark folder holds every finished run (config, model card,
per-video test metrics, model-selection summary, optional per-step score
traces) in run order. Everything that changes between two identical
invocations (wall-clock times, timestamps) lives under the single top-level
key ``"timing"``, so ``strip_timing(a) == strip_timing(b)`` is the
determinism check. Each finished run is written at once (temp file +
``os.replace``), so Ctrl-C never loses a finished run and never leaves a
half-written file.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from highlightzoo.errors import DataFormatError, RunFolderError
from highlightzoo.io import atomic_write_bytes, atomic_write_text, file_kind_note  # noqa: F401  (re-exported)
from highlightzoo.shapes import (
    COUNT,
    MAYBE_NUMBER,
    NUMBER,
    MappingOf,
    OrNull,
    Where,
    shape_problem,
    strict_json,
)
from highlightzoo.training.config import PROTOCOLS
from highlightzoo.training.results import RESULTS_KIND

SCHEMA = "highlightzoo.bench/1"
RESULTS_FILE = "results.json"
TIMING_KEY = "timing"


def run_id(model: str, seed: int) -> str:
    """The id of one final (model, seed) run inside a results file, e.g. ``prnet/seed0``."""
    return f"{model}/seed{seed}"


def sweep_id(model: str, lr: float) -> str:
    """The id of one learning-rate sweep run (seed 0), e.g. ``prnet/lr0.001/seed0``."""
    return f"{model}/lr{lr:g}/seed0"


def final_runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs the tables are made of (sweep runs are evidence, not table rows)."""
    return [run for run in results["runs"] if run.get("role", "final") == "final"]


def dumps(results: dict[str, Any]) -> str:
    """Canonical JSON text (sorted keys, fixed indent) so equal data gives equal bytes."""
    return json.dumps(results, sort_keys=True, indent=1, allow_nan=False) + "\n"


def save_results(path: Path, results: dict[str, Any]) -> None:
    """Atomically (re)write ``results`` to ``path``."""
    atomic_write_text(path, dumps(results))


@contextlib.contextmanager
def naming_file(path: Path) -> Iterator[None]:
    """A :class:`DataFormatError` raised inside without a file (a check of the results'
    contents, deep in a table) is raised again naming ``path``."""
    try:
        yield
    except DataFormatError as err:
        if err.path is not None:
            raise
        raise DataFormatError(str(err), path=str(path), user=err.user, video=err.video,
                              reason=err.reason) from err


def load_results(path: Path) -> dict[str, Any]:
    """Read and sanity-check a results.json (typed errors name the file)."""
    path = Path(path)
    if not path.exists():
        raise RunFolderError(f"{path} does not exist (a benchmark folder is what "
                             "`highlightzoo bench tables --out DIR` writes)")
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.exists():
        raise RunFolderError(f"no {RESULTS_FILE} in {path.parent} (run `highlightzoo bench tables`)")
    try:
        data = strict_json(path.read_text(encoding="utf-8"))
    except ValueError as err:  # JSONDecodeError, or NaN / Infinity (strict_json)
        raise DataFormatError(f"results file is not valid JSON: {err}"
                              f"{file_kind_note(path, 'text')}", path=str(path)) from err
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        hint = ""
        if isinstance(data, dict) and data.get("kind") == RESULTS_KIND:
            hint = ("; it is the results of one training run (`highlightzoo train`), not a "
                    "benchmark folder of `highlightzoo bench tables`")
        raise DataFormatError(
            f"not a benchmark results file (schema {data.get('schema') if isinstance(data, dict) else None!r},"
            f" expected {SCHEMA!r}){hint}",
            path=str(path),
        )
    for key in ("runs", "preset", TIMING_KEY):
        if key not in data:
            raise DataFormatError(f"results file lacks the {key!r} key", path=str(path))
    problem = shape_problem(data, RESULTS_SHAPE, "")
    if not problem:  # a final run is a table row: its test is what it shows
        untested = [i for i, run in enumerate(data["runs"])
                    if run.get("role", "final") == "final" and "test" not in run]
        if untested:
            problem = f"runs[{untested[0]}].test is missing (a final run)"
        else:
            problem = next(filter(None, (_test_problem(i, run.get("test"))
                                         for i, run in enumerate(data["runs"]))), None)
    if not problem:
        problem = next(filter(None, map(_id_problem, range(len(data["runs"])), data["runs"])), None)
    if problem:  # a hand edit or another version's file: one line, not a KeyError deep in a table
        raise DataFormatError(f"results file is malformed: {problem}", path=str(path))
    return data


def _id_problem(index: int, run: dict[str, Any]) -> str | None:
    """A run's id must be the one its model, seed (and rate, for a sweep run) give: a resume
    skips runs by id, and the tables read the model."""
    if run.get("role", "final") == "sweep":
        expected = sweep_id(run["model"], run["lr"]) if "lr" in run else run["id"]
    else:
        expected = run_id(run["model"], run["seed"])
    if run["id"] != expected:
        return (f"runs[{index}].id {run['id']!r} does not fit its model {run['model']!r} and "
                f"seed {run['seed']!r} (expected {expected!r})")
    config = run.get("config")
    if "lr" in run and isinstance(config, dict) and "lr" in config and config["lr"] != run["lr"]:
        return (f"runs[{index}].lr {run['lr']!r} is not the rate its config trained with "
                f"({config['lr']!r})")
    return None


def _test_problem(index: int, test: dict[str, Any] | None) -> str | None:
    """Whether a run's per-video test records still give its recorded summary.

    The tables are made of the per-video records; ``n_pairs`` and ``map`` (mean AP x 100 of
    the headline protocol) were written from the same records, so a record removed or edited
    since shows here instead of moving a table row without a word. Files without them pass.
    """
    if not test:
        return None
    videos, where = test["videos"], f"runs[{index}].test"
    for key in _OPTIONAL_VIDEO_KEYS:  # a table averages what the records have: all or none
        have = [key in v for v in videos]
        if any(have) and not all(have):
            return (f"{where}.videos[{have.index(False)}].{key} is missing (the run's other "
                    f"records have it)")
    if "n_pairs" in test and test["n_pairs"] != len(videos):
        return (f"{where}.videos has {len(videos)} records but n_pairs says {test['n_pairs']!r} "
                f"(a record was removed or added)")
    for key in ("nmsd", "hit"):  # the run's mean of the records that have one
        values = [float(v[key]) for v in videos if v.get(key) is not None]
        if test.get(key) is not None and values:
            mean = sum(values) / len(values)
            if not abs(mean - test[key]) <= 1e-9 * max(1.0, abs(test[key])):
                return (f"{where}.{key} {test[key]:.4f} is not the mean {key} of its video "
                        f"records ({mean:.4f}): a record was edited")
    counts = test.get("n_pairs_by_protocol", {})  # (summary, record field, value, count):
    checks = [("map", "ap", test.get("map"), None)] + [
        (f"map_by_protocol.{p}", f"ap_{p}", value, counts.get(p))
        for p, value in test.get("map_by_protocol", {}).items()]
    for summary, field, value, count in checks:
        if value is None or not videos or any(field not in v for v in videos):
            continue
        aps = [float(v[field]) for v in videos if v[field] is not None]  # null: no positive
        if count is not None and count != len(aps):
            return (f"{where}.n_pairs_by_protocol says {count!r} videos have an AP under "
                    f"{field}, the records give {len(aps)}: a record was edited")
        mean = 100.0 * sum(aps) / len(aps) if aps else float("nan")
        if not abs(mean - value) <= 1e-6 * max(1.0, abs(value)):
            return (f"{where}.{summary} {value:.4f} is not the mean {field} of its "
                    f"{len(videos)} video records ({mean:.4f}): a record was edited")
    return None


# What the reports and a resume read of a results file, as a shape (highlightzoo.shapes).
# Files of earlier releases fit it (docs/results/ holds some).

_OPTIONAL_VIDEO_KEYS = ("n_history", "ap_avhd", "ap_steps", "nmsd", "hit")
_AP = Where(NUMBER, lambda ap: 0.0 <= ap <= 1.0, "an AP in [0, 1]")
_SHARE = Where(NUMBER, lambda x: 0.0 <= x <= 1.0, "a number in [0, 1]")  # nMSD, hit@k
_VIDEO_SHAPE = {"user": str, "video": str, "ap": _AP, "n_history?": int,
                "ap_avhd?": OrNull(_AP), "ap_steps?": OrNull(_AP), "nmsd?": OrNull(_SHARE),
                "hit?": OrNull(_SHARE)}
_CURVE_POINT = {"step": COUNT, "val_map": MAYBE_NUMBER}  # null: a NaN validation
#: roles of a run: a table row, or a learning-rate sweep run (evidence)
ROLES = ("final", "sweep")
_RUN_SHAPE = {
    "id": str, "model": str, "seed": int,
    "role?": Where(str, lambda r: r in ROLES, f"one of {ROLES}"),
    "lr?": Where(NUMBER, lambda lr: lr > 0, "a number > 0"), "config?": dict, "card?": dict,
    "selection?": {"best_val_map?": MAYBE_NUMBER, "curve?": [_CURVE_POINT], "stop_reason?": str},
    "test?": {"videos": [_VIDEO_SHAPE], "map?": NUMBER, "n_pairs?": COUNT,
              "map_by_protocol?": MappingOf(MAYBE_NUMBER), "n_pairs_by_protocol?": MappingOf(COUNT),
              "nmsd?": MAYBE_NUMBER, "hit?": MAYBE_NUMBER,
              "protocol?": Where(str, lambda p: p in PROTOCOLS, f"one of {PROTOCOLS}")},
    "traces?": MappingOf([NUMBER]),
}
_TRACES = Where(
    {"pairs?": [str], "labels?": MappingOf([NUMBER]),
     "rate?": MappingOf(Where(NUMBER, lambda r: r > 0, "a number > 0"))},
    lambda t: all(pair in t.get("labels", {}) for pair in t.get("pairs", [])),
    "an object with labels for every pair",
)
_PROBE = {"map": NUMBER}
RESULTS_SHAPE = {
    "models?": [str], "seeds": [int], "runs": [_RUN_SHAPE], "provenance": dict,
    "world": {"key": str}, "traces?": _TRACES,
    TIMING_KEY: {"runs?": MappingOf({"total_s?": NUMBER}), "world_seconds?": [NUMBER]},
    "preset": {
        "name": str, "eval": {"hit_k": int}, "batch_size": int, "clip_len": int,
        "lr": NUMBER, "patience": (int, type(None)), "epochs?": (int, type(None)),
        "max_steps?": (int, type(None)), "model_overrides?": MappingOf(dict),
        "lr_grid?": [NUMBER], "world": str,
        "eval_every?": (int, type(None)), "min_delta?": NUMBER, "min_steps?": int,
        "sampling?": str,
    },
    "world_probes?": OrNull({"probes": {"generic": _PROBE, "interest": _PROBE, "both": _PROBE},
                             "seed": int, "n_videos": int, "personal_gain": NUMBER}),
}


def new_results(
    *,
    preset: dict[str, Any],
    seeds: Iterable[int],
    models: Iterable[str],
    world: dict[str, Any],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """An empty results document for a benchmark about to start."""
    return {
        "schema": SCHEMA,
        "preset": preset,
        "seeds": list(seeds),
        "models": list(models),
        "world": world,
        "provenance": provenance,
        "traces": {},
        "runs": [],
        TIMING_KEY: {"runs": {}},
    }


def finished_run_ids(results: dict[str, Any]) -> set[str]:
    """Ids of the runs already recorded (these are skipped on resume)."""
    return {run["id"] for run in results["runs"]}


def append_run(
    path: Path, results: dict[str, Any], run: dict[str, Any], timing: dict[str, Any]
) -> None:
    """Record one finished run (and its timing) and rewrite the file atomically."""
    if run["id"] in finished_run_ids(results):
        raise RunFolderError(f"run {run['id']} is already recorded in {path}")
    results["runs"].append(run)
    results["runs"].sort(key=lambda r: _run_order(results, r))
    results[TIMING_KEY]["runs"][run["id"]] = timing
    save_results(path, results)


def _run_order(results: dict[str, Any], run: dict[str, Any]) -> tuple:
    """Canonical run order (sweep runs first, then seed-major in model order), so the file is
    the same whichever order parallel runs finish in."""
    models = results.get("models", [])
    index = models.index(run["model"]) if run["model"] in models else len(models)
    return (run.get("role") != "sweep", run["seed"], index, run.get("lr") or 0.0)


def strip_timing(results: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``results`` without the timing key (what determinism compares)."""
    return {k: v for k, v in results.items() if k != TIMING_KEY}
