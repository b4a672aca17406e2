"""The real benchmark backend: the data part's synthetic world and the shared trainer.

- Worlds are cached by (world preset, world seed, resolved world config, replay
  CSV digest): ``<cache>/<preset>-s<seed>-<key>.h5``, written atomically by the
  store writer, so an interrupted build never leaves a half store behind.
- Each run is one :func:`highlightzoo.training.train` call under the preset's
  rules; the trainer selects the best validation step and (unless it is a
  sweep run) tests it once on the test users. The returned
  :class:`~highlightzoo.training.results.TrainResult` is split here into
  deterministic fields (the run record) and timing fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch

from highlightzoo.bench.presets import BenchPreset
from highlightzoo.bench.protocol import RunOutcome, World
from highlightzoo.bench.world_probes import world_probes
from highlightzoo.data.dataset import HighlightDataset
from highlightzoo.data.store import store_fingerprint
from highlightzoo.data.synthetic import get_world_config, synthesize, synthesize_replay
from highlightzoo.errors import DataFormatError
from highlightzoo.io import file_sha256
from highlightzoo.models.registry import create_model
from highlightzoo.training import train
from highlightzoo.training.config import TrainConfig
from highlightzoo.training.evaluation import EvalResult
from highlightzoo.training.results import TrainResult

# Per-validation curve fields that are wall-clock times (moved to the timing key).
_CURVE_TIME_FIELDS = ("val_seconds",)


def _plain(value: Any) -> Any:
    """A dataclass / tuple config as JSON-able plain data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def world_config(name: str) -> dict[str, Any]:
    """The data part's resolved world config of preset ``name``, as plain data."""
    return _plain(get_world_config(name).to_dict())


def world_description(preset: BenchPreset, replay: Path | None) -> dict[str, Any]:
    """Plain data that decides the world's content (its hash is the cache key)."""
    return {
        "preset": preset.world,
        "seed": preset.world_seed,
        "config": world_config(preset.world),
        "replay": None if replay is None else {"file": Path(replay).name,
                                               "sha256": file_sha256(Path(replay))},
    }


def world_key(info: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON of ``info``."""
    blob = json.dumps(info, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class TrainerBackend:
    """Builds worlds with :mod:`highlightzoo.data.synthetic`, trains with the shared trainer."""

    def build_world(
        self, preset: BenchPreset, *, replay: Path | None, cache_dir: Path, quiet: bool
    ) -> World:
        info = world_description(preset, replay)
        key = world_key(info)
        tag = "replay" if replay else preset.world
        path = Path(cache_dir) / f"{tag}-s{preset.world_seed}-{key}.h5"
        # the store writer writes a temp file and renames it on success (highlightzoo.io), so
        # an interrupted build never leaves a half store under the cached name
        if replay is None and not path.exists():
            synthesize(preset.world, preset.world_seed, path, progress=not quiet)
        elif not path.exists():
            synthesize_replay(replay, preset.world_seed, path, config=preset.world, progress=not quiet)
        return World(path=path, key=key, info={**info, "file": path.name})

    def check_models(self, preset: BenchPreset, world: World, models: list[str]) -> None:
        """Each of ``models`` builds with the preset's overrides (``--model-override``) at the
        world's feature width, on the meta device (shapes only, no memory), so a bad
        override is a :class:`ConfigError` before the results file records the preset: a
        folder holding a typo's preset would refuse the corrected command."""
        feature_dim = store_fingerprint(world.path)["feature_dim"]
        with torch.device("meta"):
            for model in models:
                create_model(model, feature_dim, **preset.overrides_for(model))

    def probes(self, world: World, replay: Path | None) -> dict[str, Any] | None:
        """The world's personal signal (docs/history.md): probe mAPs on the generator's latent
        variables, with per-video APs; None for a replayed world (its latents are not kept)."""
        if replay is not None:
            return None
        return world_probes(store_path=world.path)

    def trace_targets(self, world: World, count: int) -> dict[str, Any]:
        """The first ``count`` test users' target videos: labels and rate (for the figure).

        The trainer keeps per-step test scores of the first ``trace_videos``
        items of the test split in the same order, so the pairs line up.
        """
        data = HighlightDataset(world.path, "test", mode="eval")
        pairs, labels, rate = [], {}, {}
        for i in range(min(count, len(data))):
            sample = data[i]
            pair = f"{sample.user_id}/{sample.video_id}"
            pairs.append(pair)
            labels[pair] = [int(x) for x in sample.labels.tolist()]
            rate[pair] = float(sample.rate)
        return {"pairs": pairs, "labels": labels, "rate": rate}

    def train_config(
        self, preset: BenchPreset, model: str, seed: int, world: World, run_dir: Path, device: str,
        lr: float | None = None,
    ):
        """The trainer config of one run: the preset's rules, identical for every model."""
        return TrainConfig(
            model=model,
            data=str(world.path),
            model_overrides=preset.overrides_for(model),
            clip_len=preset.clip_len,
            batch_size=preset.batch_size,
            lr=preset.lr if lr is None else lr,
            epochs=preset.epochs or 1,
            max_steps=preset.max_steps,
            eval_every=preset.eval_every,
            patience=preset.patience,
            min_steps=preset.min_steps,
            min_delta=preset.min_delta,
            sampling=preset.sampling,
            protocol=preset.protocol,
            seed=seed,
            device=device,
            num_workers=preset.num_workers,
            precision=preset.precision,
            hit_k=preset.eval.hit_k,
            trace_videos=preset.eval.trace_videos,
            out=str(run_dir),
        )

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
        lr: float | None = None,
        stop_after: int | None = None,
    ) -> RunOutcome:
        config = self.train_config(preset, model, seed, world, run_dir, device, lr)
        result = train(config, quiet=True, stop_after=stop_after)
        return split_train_result(result, world, run_dir, trace_pairs)

    def resume_run(
        self,
        preset: BenchPreset,
        model: str,
        seed: int,
        world: World,
        run_dir: Path,
        *,
        device: str,
        trace_pairs: list[str],
    ) -> RunOutcome:
        """Continue the paused (sweep) run in ``run_dir`` to its stop, then test it."""
        if not (Path(run_dir) / "checkpoints" / "last.pt").exists():
            raise DataFormatError(
                "the chosen sweep run has no checkpoint to resume; delete its sweep record from "
                "results.json to rerun it", path=str(run_dir),
            )
        # A results.json here means an earlier benchmark process finished this run but died
        # before recording it: the saved stop state makes the resume test it again, bit for bit.
        (Path(run_dir) / "results.json").unlink(missing_ok=True)
        result = train(None, quiet=True, resume=run_dir, overrides={"device": device})
        return split_train_result(result, world, run_dir, trace_pairs)


def test_record(test: EvalResult) -> dict[str, Any]:
    """The deterministic test fields of a run record (headline numbers + per-video records).

    A value that does not exist (e.g. the per-step AP of a video whose highlight covers no
    whole step, or its nMSD) is NaN in the evaluation and ``null`` here: results.json is
    strict JSON.
    """
    data = test.to_dict()
    return _json_safe({
        **{k: v for k, v in data.items() if k not in ("records", "scores", "map_ci95")},
        "hit": test.hit,
        "videos": data["records"],
    })


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _traces(test: EvalResult, run_dir: Path, trace_pairs: list[str]) -> dict[str, list[float]]:
    missing = [p for p in trace_pairs if p not in test.scores]
    if missing:
        raise DataFormatError(
            f"the test evaluation lacks per-step scores of the traced test videos {missing}",
            path=str(run_dir),
        )
    return {p: test.scores[p] for p in trace_pairs}


def split_train_result(
    result: TrainResult, world: World, run_dir: Path, trace_pairs: list[str]
) -> RunOutcome:
    """Turn a :class:`TrainResult` into (deterministic record, timing, traces).

    Absolute paths become relative names (the world file, ``runs/<name>``)
    so two identical benchmarks in different folders give equal records.
    """
    config = result.config.to_dict()
    config["data"] = world.path.name
    config["out"] = f"runs/{Path(run_dir).name}"
    selection = result.selection.to_dict()
    curve, curve_times = [], []
    for point in selection.pop("curve"):
        curve.append({k: v for k, v in point.items() if k not in _CURVE_TIME_FIELDS})
        curve_times.append({k: point[k] for k in _CURVE_TIME_FIELDS if k in point})
    provenance = dict(result.provenance)
    created = provenance.pop("created", None)
    record: dict[str, Any] = {
        "config": config,
        "card": result.card,
        "build_args": result.build_args,
        "history_cap": result.history_cap,
        "n_parameters": result.n_parameters,
        "selection": {**selection, "curve": curve},
        "provenance": provenance,
    }
    traces: dict[str, list[float]] = {}
    if result.test is not None:
        record["test"] = test_record(result.test)
        traces = _traces(result.test, run_dir, trace_pairs)
    timing = {
        "training_time_s": result.training_time_s,
        "test_time_s": result.test_time_s,
        "validations": curve_times,
        "created": created,
    }
    return RunOutcome(record=record, timing=timing, traces=traces)
