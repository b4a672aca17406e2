"""The benchmark loop: a learning-rate sweep, then every (model, seed) of both tables.

``run_tables`` builds (or reuses from the cache) the preset's synthetic world,
then

1. **sweep** (when the preset has an ``lr_grid``): every trainable model is
   trained with seed 0 at each rate of the grid for the preset's
   ``sweep_steps`` (then paused, resumable); the test users are never read.
   The rate with the highest validation mAP in that prefix is chosen (ties:
   the smaller rate). The same rule for every model.
2. **final runs**: each seed at the model's chosen rate, under the preset's
   stopping rules. Seed 0's final run is the chosen sweep run, resumed (bit for
   bit the run it would have been uninterrupted) until its rule stops it and
   then tested once. Models without trainable parameters (the floors) skip the
   sweep.

Every finished run (sweep or final) is appended to ``DIR/results.json`` at
once; runs already there are skipped, so an interrupted benchmark resumes
where it stopped. With ``jobs > 1`` runs go to that many worker processes,
each with ``cpu_count // jobs`` torch threads (recorded in provenance). Tables
and plots are generated afterwards from results.json alone
(:func:`highlightzoo.bench.report.write_report`).

The world builder and the trainer are reached through a :class:`Backend`
(:mod:`highlightzoo.bench.protocol`), so tests can drive the loop with fakes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from highlightzoo.bench.presets import BenchPreset, get_preset
from highlightzoo.bench.progress import Progress
from highlightzoo.bench.protocol import Backend, RunOutcome, World
from highlightzoo.bench.report import write_report
from highlightzoo.bench.results import (
    RESULTS_FILE,
    TIMING_KEY,
    append_run,
    atomic_write_text,
    finished_run_ids,
    load_results,
    new_results,
    run_id,
    save_results,
    sweep_id,
)
from highlightzoo.bench.tables import table_models
from highlightzoo.device import resolve_device
from highlightzoo.errors import ConfigError, DataFormatError, RunFolderError, TrainingError
from highlightzoo.io import folder_lock, output_folder
from highlightzoo.models.registry import get_model_card
from highlightzoo.provenance import environment

__all__ = ["Backend", "RunOutcome", "World", "choose_lr", "plan_runs", "run_tables"]


def provenance(device: str, threads: int | None = None) -> dict[str, Any]:
    """The benchmark's environment (:func:`highlightzoo.provenance.environment`) with the
    torch threads each run uses."""
    env = environment(device)
    if threads is not None:
        env["threads"] = threads
    return env


def default_cache_dir() -> Path:
    """``$HIGHLIGHTZOO_CACHE/worlds`` or ``~/.cache/highlightzoo/worlds``."""
    base = os.environ.get("HIGHLIGHTZOO_CACHE")
    return Path(base) / "worlds" if base else Path.home() / ".cache" / "highlightzoo" / "worlds"


def plan_runs(models: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """Run order: seed-major (a whole seed of every model finishes before the next seed)."""
    return [(model, seed) for seed in seeds for model in models]


def choose_lr(val_maps: dict[float, float]) -> float:
    """The rate with the highest best-validation mAP; ties go to the smaller rate."""
    if not val_maps:
        raise ConfigError("no sweep run to choose a learning rate from")
    return max(sorted(val_maps), key=lambda lr: (val_maps[lr], -lr))


def _open_results(
    path: Path, preset: BenchPreset, world: World, models: list[str], seeds: list[int],
    device: str, threads: int | None,
) -> dict[str, Any]:
    """Load a folder's results to resume, or start new ones; refuse a folder of another setup."""
    fresh = new_results(
        preset=preset.to_dict(), seeds=seeds, models=models,
        world={"key": world.key, **world.info}, provenance=provenance(device, threads),
    )
    if not path.exists():
        return fresh
    old = load_results(path)
    # a preset's ``target`` is its description, not one of its rules
    old_preset = {k: v for k, v in old["preset"].items() if k != "target"}
    if old_preset != {k: v for k, v in fresh["preset"].items() if k != "target"}:
        raise RunFolderError(
            f"{path} holds results of another preset (preset differs); "
            "use a new --out folder or the same preset, world and replay"
        )
    for key in ("world",):
        if old[key] != fresh[key]:
            raise RunFolderError(
                f"{path} holds results of another {key} ({key} differs); "
                "use a new --out folder or the same preset, world and replay"
            )
    old["models"] = old["models"] + [m for m in models if m not in old["models"]]
    old["seeds"] = old["seeds"] + [s for s in seeds if s not in old["seeds"]]
    return old


def _fresh_run_dir(out: Path, name: str) -> Path:
    """The trainer's folder for a run; a leftover of an interrupted attempt is removed."""
    run_dir = out / "runs" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)  # never recorded as finished: a partial run of ours
    return run_dir


def _lr_tag(lr: float) -> str:
    return f"lr{lr:g}"


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _timed_call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and its own wall seconds (in the worker: queue time excluded)."""
    start = time.monotonic()
    return fn(*args, **kwargs), time.monotonic() - start


def _execute(
    tasks: list[tuple[Any, Callable[..., Any], tuple, dict]], jobs: int, threads: int | None
) -> Iterator[tuple[Any, Any, float]]:
    """Run ``fn(*args, **kwargs)`` per task (in-process, or on ``jobs`` worker processes);
    yield ``(key, result, seconds)`` as each finishes. A key is ``(model, lr or seed)``; a
    worker that dies is a :class:`TrainingError` naming the run it held."""
    if jobs <= 1:
        for key, fn, args, kwargs in tasks:
            yield key, *_timed_call(fn, args, kwargs)
        return
    pool = ProcessPoolExecutor(  # no more workers than tasks: each one imports torch
        max_workers=min(jobs, max(1, len(tasks))), mp_context=get_context("spawn"),
        initializer=_worker_init,
        initargs=(threads or 1,),
    )
    try:
        keys = {pool.submit(_timed_call, fn, args, kwargs): key for key, fn, args, kwargs in tasks}
        order = list(keys)
        pending = set(keys)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=order.index):
                try:
                    result = future.result()
                except BrokenProcessPool as err:  # a worker killed (kill -9, the OOM killer)
                    model, label = keys[future]
                    raise TrainingError(
                        f"a benchmark worker process ended without a result for {model} "
                        f"({label}): it was killed, often by the system for lack of memory; "
                        "the runs finished so far are saved, so rerun the same command to go "
                        "on (with fewer --jobs if memory is short)"
                    ) from err
                yield keys[future], *result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_tables(
    preset: BenchPreset | str,
    out: Path,
    *,
    seeds: int | None = None,
    models: Sequence[str] | None = None,
    replay: Path | None = None,
    device: str | None = None,
    cache_dir: Path | None = None,
    quiet: bool = False,
    backend: Backend | None = None,
    report: bool = True,
    jobs: int | None = 1,
) -> Path:
    """Sweep, train and evaluate every model of both tables with each seed; return results.json.

    ``seeds``: number of training seeds (0..seeds-1; default from the
    preset); ``models``: a subset of the tables' models (default all of
    both tables); ``replay``: a PHD-GIFs CSV whose user/segment structure
    the world replays; ``jobs``: runs at once (worker processes; None: one
    per CPU core, at most 4, on a CPU device, else 1). Finished runs in ``out``
    are kept and skipped.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    backend = backend or default_backend()
    out = Path(out)
    all_models = table_models()
    chosen = list(models) if models else all_models
    unknown = [m for m in chosen if m not in all_models]
    if unknown:
        raise ConfigError(
            f"models {unknown} are in neither benchmark table; choices: {', '.join(all_models)}"
        )
    twice = sorted({m for m in chosen if chosen.count(m) > 1})
    if twice:  # else its runs would be planned twice, and the second would find the first's folder
        raise ConfigError(f"--models names {', '.join(map(repr, twice))} more than once")
    n_seeds = preset.seeds if seeds is None else seeds
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {n_seeds}")
    device = device or preset.device
    resolve_device(device)  # an unknown device, or CUDA where there is none: refused up front
    output_folder(out, make=False)
    if cache_dir is not None:
        output_folder(cache_dir, make=False)
    if replay is not None and not Path(replay).is_file():
        raise DataFormatError("the CSV to replay does not exist", path=str(replay))
    if jobs is None:
        jobs = min(os.cpu_count() or 1, 4) if device == "cpu" else 1
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    seed_list = list(range(n_seeds))
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    swept = [m for m in chosen if preset.lr_grid and get_model_card(m).trainable]
    sweep_plan = [(m, _lr_tag(lr)) for m in swept for lr in preset.lr_grid]
    progress = Progress(sweep_plan + plan_runs(chosen, seed_list), quiet=quiet, jobs=jobs)

    t0 = time.monotonic()
    world = backend.build_world(
        preset, replay=replay, cache_dir=cache_dir or default_cache_dir(), quiet=quiet
    )
    world_seconds = time.monotonic() - t0
    check_models = getattr(backend, "check_models", None)  # optional: fakes need not have it
    if check_models is not None:
        check_models(preset, world, chosen)
    # only now: a command refused above leaves no folder behind
    output_folder(out)
    with folder_lock(out, "bench tables"):  # one benchmark per folder at a time
        atomic_write_text(out / ".gitignore", "# trainer run folders (checkpoints): not results\nruns/\n")
        path = out / RESULTS_FILE
        results = _open_results(path, preset, world, chosen, seed_list, device, threads)
        if not results["traces"]:
            results["traces"] = backend.trace_targets(world, preset.eval.trace_videos)
        probes = getattr(backend, "probes", None)  # optional: fakes need not have it
        if probes is not None and "world_probes" not in results:
            results["world_probes"] = probes(world, replay)
        results[TIMING_KEY].setdefault("world_seconds", []).append(world_seconds)
        save_results(path, results)
        trace_pairs = list(results["traces"].get("pairs", []))
        common = {"device": device, "trace_pairs": trace_pairs}

        # 1. the sweep: seed 0 at every rate for a prefix of sweep_steps, then paused; no test
        done = finished_run_ids(results)
        pause = max(1, preset.sweep_steps // (preset.eval_every or 1)) if swept else 0
        tasks = []
        for model in swept:
            for lr in preset.lr_grid:
                key = sweep_id(model, lr)
                if key in done:
                    _resumed(progress, results, model, _lr_tag(lr), key)
                    continue
                run_dir = _fresh_run_dir(out, f"{model}-{_lr_tag(lr)}-seed0")
                tasks.append(((model, lr), backend.run, (preset, model, 0, world, run_dir),
                              {**common, "lr": lr, "stop_after": pause}))
                progress.starting(model, _lr_tag(lr))
        for (model, lr), outcome, seconds in _execute(tasks, jobs, threads):
            run = {"id": sweep_id(model, lr), "model": model, "seed": 0, "lr": lr, "role": "sweep",
                   **outcome.record}
            append_run(path, results, run, {**outcome.timing, "total_s": seconds})
            progress.finished(model, _lr_tag(lr), seconds,
                              f"val mAP {run['selection']['best_val_map']:.2f} after "
                              f"{run['selection'].get('steps_run', '?')} steps")

        # 2. the chosen rates, then the final runs
        lrs = {m: preset.lr for m in chosen}
        for model in swept:
            val = {r["lr"]: r["selection"]["best_val_map"] for r in results["runs"]
                   if r["model"] == model and r.get("role") == "sweep"}
            lrs[model] = choose_lr(val)
            results.setdefault("lr_choice", {})[model] = {
                "chosen": lrs[model],
                "rule": f"highest validation mAP of seed 0 within {preset.sweep_steps} steps (ties: smaller lr)",
                "val_map": {f"{lr:g}": v for lr, v in sorted(val.items())},
            }
        save_results(path, results)
        done = finished_run_ids(results)
        tasks = []
        for model, seed in plan_runs(chosen, seed_list):
            key = run_id(model, seed)
            if key in done:
                _resumed(progress, results, model, seed, key)
                continue
            progress.starting(model, seed)
            if model in swept and seed == 0:
                source = out / "runs" / f"{model}-{_lr_tag(lrs[model])}-seed0"
                tasks.append(((model, seed), backend.resume_run, (preset, model, 0, world, source), common))
            else:
                run_dir = _fresh_run_dir(out, f"{model}-seed{seed}")
                tasks.append(((model, seed), backend.run, (preset, model, seed, world, run_dir),
                              {**common, "lr": lrs[model]}))
        for (model, seed), outcome, seconds in _execute(tasks, jobs, threads):
            source = sweep_id(model, lrs[model]) if model in swept and seed == 0 else None
            run = {"id": run_id(model, seed), "model": model, "seed": seed, "lr": lrs[model],
                   "role": "final", "source": source, **outcome.record, "traces": outcome.traces}
            append_run(path, results, run, {**outcome.timing, "total_s": seconds})
            test = run.get("test", {})
            progress.finished(model, seed, seconds, f"test mAP {test.get('map', float('nan')):.2f} "
                              f"({run.get('selection', {}).get('stop_reason', '?')})")

        if report:
            write_report(out)
            progress.message(f"tables and plots written to {out}")
        return path


def _resumed(progress: Progress, results: dict[str, Any], model: str, label: Any, key: str) -> None:
    seconds = results[TIMING_KEY]["runs"].get(key, {}).get("total_s", 0.0)
    progress.record(model, label, seconds)
    progress.skipped(model, label)


def default_backend() -> Backend:
    """The real backend: the synthetic world of the data part and the shared trainer."""
    # imported here: it loads the trainer, which `highlightzoo --help`, `bench report` and the
    # runner's tests with a scripted backend do not need
    from highlightzoo.bench.backend import TrainerBackend

    return TrainerBackend()
