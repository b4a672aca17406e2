"""The benchmark loop: every (model, seed) of both tables, resumable, appended atomically.

``run_tables`` builds (or reuses from the cache) the preset's synthetic world,
then for each seed and each model trains through the shared trainer (model
selection on the validation users), evaluates on the test users and appends
the run to ``DIR/results.json`` at once. Runs already in that file are
skipped, so an interrupted benchmark resumes where it stopped. Tables and
plots are generated afterwards from results.json alone
(:func:`highlightzoo.bench.report.write_report`).

The world builder and the trainer are reached through a small
:class:`Backend`, so tests can drive the loop with fakes.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from highlightzoo.bench.presets import BenchPreset, get_preset
from highlightzoo.bench.progress import Progress
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
)
from highlightzoo.bench.tables import table_models
from highlightzoo.errors import ConfigError, RunFolderError


@dataclass(frozen=True)
class World:
    """A built synthetic world: its HDF5 store and plain-data description."""

    path: Path
    key: str
    info: dict[str, Any]


@dataclass
class RunOutcome:
    """What one finished (model, seed) run gives the results file.

    ``record``: deterministic plain data (config, card, selection, per-epoch
    history without times, ``test`` with per-video records); ``timing``:
    wall-clock fields only; ``traces``: ``{pair_id: per-step scores}`` for the
    preset's trace videos.
    """

    record: dict[str, Any]
    timing: dict[str, Any]
    traces: dict[str, list[float]] = field(default_factory=dict)


class Backend(Protocol):
    """How the loop reaches the data and training parts (real or fake)."""

    def build_world(
        self, preset: BenchPreset, *, replay: Path | None, cache_dir: Path, quiet: bool
    ) -> World: ...

    def trace_targets(self, world: World, count: int) -> dict[str, Any]: ...

    def run(
        self,
        preset: BenchPreset,
        model: str,
        seed: int,
        world: World,
        run_dir: Path,
        *,
        device: str,
        trace_pairs: list[str],
    ) -> RunOutcome: ...


def provenance(device: str) -> dict[str, Any]:
    """Versions, git commit and device: what a reader needs to trust or rerun a result."""
    import platform

    import torch

    from highlightzoo import __version__

    return {
        "highlightzoo": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": device,
        "device_name": _device_name(device),
        "git": _git_state(),
    }


def _device_name(device: str) -> str:
    """GPU name, or the CPU model and core count (from /proc/cpuinfo where there is one)."""
    import os
    import platform

    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores)"


def _git_state() -> dict[str, Any]:
    """Commit and dirty flag of the checkout the package runs from (None outside git)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip() != ""
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def default_cache_dir() -> Path:
    """``$HIGHLIGHTZOO_CACHE/worlds`` or ``~/.cache/highlightzoo/worlds``."""
    import os

    base = os.environ.get("HIGHLIGHTZOO_CACHE")
    return Path(base) / "worlds" if base else Path.home() / ".cache" / "highlightzoo" / "worlds"


def plan_runs(models: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """Run order: seed-major (a whole seed of every model finishes before the next seed)."""
    return [(model, seed) for seed in seeds for model in models]


def _open_results(
    path: Path, preset: BenchPreset, world: World, models: list[str], seeds: list[int], device: str
) -> dict[str, Any]:
    """Load a folder's results to resume, or start new ones; refuse a folder of another setup."""
    fresh = new_results(
        preset=preset.to_dict(), seeds=seeds, models=models,
        world={"key": world.key, **world.info}, provenance=provenance(device),
    )
    if not path.exists():
        return fresh
    old = load_results(path)
    for key in ("preset", "world"):
        if old[key] != fresh[key]:
            raise RunFolderError(
                f"{path} holds results of another {key} ({key} differs); "
                "use a new --out folder or the same preset, world and replay"
            )
    old["models"] = old["models"] + [m for m in models if m not in old["models"]]
    old["seeds"] = old["seeds"] + [s for s in seeds if s not in old["seeds"]]
    return old


def _fresh_run_dir(out: Path, model: str, seed: int) -> Path:
    """The trainer's folder for a run; a leftover of an interrupted attempt is removed."""
    run_dir = out / "runs" / f"{model}-seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # never recorded as finished: a partial run of ours
    return run_dir


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
) -> Path:
    """Train and evaluate every model of both tables with each seed; return results.json.

    ``seeds``: number of training seeds (0..seeds-1; default from the
    preset); ``models``: a subset of the tables' models (default all of
    both tables); ``replay``: a PHD-GIFs CSV whose user/segment structure
    the world replays. Finished runs in ``out`` are kept and skipped.
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
    n_seeds = preset.seeds if seeds is None else seeds
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {n_seeds}")
    seed_list = list(range(n_seeds))
    device = device or preset.device
    progress = Progress(plan_runs(chosen, seed_list), quiet=quiet)

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / ".gitignore", "# trainer run folders (checkpoints): not results\nruns/\n")
    t0 = time.monotonic()
    world = backend.build_world(
        preset, replay=replay, cache_dir=cache_dir or default_cache_dir(), quiet=quiet
    )
    world_seconds = time.monotonic() - t0
    path = out / RESULTS_FILE
    results = _open_results(path, preset, world, chosen, seed_list, device)
    if not results["traces"]:
        results["traces"] = backend.trace_targets(world, preset.eval.trace_videos)
    results[TIMING_KEY].setdefault("world_seconds", []).append(world_seconds)
    save_results(path, results)

    done = finished_run_ids(results)
    for model, seed in progress.plan:
        if run_id(model, seed) in done:
            seconds = results[TIMING_KEY]["runs"].get(run_id(model, seed), {}).get("total_s", 0.0)
            progress.record(model, seed, seconds)
            progress.skipped(model, seed)
            continue
        progress.starting(model, seed)
        started = time.monotonic()
        outcome = backend.run(
            preset, model, seed, world, _fresh_run_dir(out, model, seed),
            device=device, trace_pairs=list(results["traces"].get("pairs", [])),
        )
        total = time.monotonic() - started
        run = {"id": run_id(model, seed), "model": model, "seed": seed, **outcome.record,
               "traces": outcome.traces}
        append_run(path, results, run, {**outcome.timing, "total_s": total})
        test = outcome.record.get("test", {})
        progress.finished(model, seed, total, f"test mAP {test.get('map', float('nan')):.2f}")

    if report:
        from highlightzoo.bench.report import write_report

        write_report(out)
        progress.message(f"tables and plots written to {out}")
    return path


def default_backend() -> Backend:
    """The real backend: the synthetic world of the data part and the shared trainer."""
    from highlightzoo.bench.backend import TrainerBackend

    return TrainerBackend()
