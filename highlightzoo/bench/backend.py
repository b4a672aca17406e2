"""The real benchmark backend: the data part's synthetic world and the shared trainer.

- Worlds are cached by (world preset, world seed, resolved world config, replay
  CSV digest): ``<cache>/<preset>-s<seed>-<key>.h5``, written to a temp name
  and renamed, so an interrupted build never leaves a half store behind.
- Each (model, seed) run is one :func:`highlightzoo.training.train` call with
  the preset's budget; the trainer selects the best epoch on the validation
  users and tests it once on the test users. Its run folder's results.json is
  split here into deterministic fields (the run record) and timing fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from highlightzoo.bench.presets import BenchPreset
from highlightzoo.bench.runner import RunOutcome, World
from highlightzoo.errors import DataFormatError

# Per-epoch history fields that are wall-clock times (moved to the timing key).
_EPOCH_TIME_FIELDS = ("train_seconds", "seconds")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """A dataclass / tuple config as JSON-able plain data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def world_config(name: str) -> dict[str, Any]:
    """The data part's resolved world config of preset ``name``, as plain data."""
    from highlightzoo.data import synthetic

    return _plain(synthetic.get_preset(name).to_dict())


def world_description(preset: BenchPreset, replay: Path | None) -> dict[str, Any]:
    """Plain data that decides the world's content (its hash is the cache key)."""
    return {
        "preset": preset.world,
        "seed": preset.world_seed,
        "config": world_config(preset.world),
        "replay": None if replay is None else {"file": Path(replay).name,
                                               "sha256": _file_digest(Path(replay))},
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
        from highlightzoo.data import synthetic

        info = world_description(preset, replay)
        key = world_key(info)
        tag = "replay" if replay else preset.world
        path = Path(cache_dir) / f"{tag}-s{preset.world_seed}-{key}.h5"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                if replay is None:
                    synthetic.synthesize(preset.world, preset.world_seed, tmp, progress=not quiet)
                else:
                    synthetic.synthesize_replay(
                        replay, preset.world_seed, tmp, config=preset.world, progress=not quiet
                    )
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return World(path=path, key=key, info={**info, "file": path.name})

    def trace_targets(self, world: World, count: int) -> dict[str, Any]:
        """The first ``count`` test users' target videos: labels and rate (for the figure).

        The trainer keeps per-step test scores of the first ``trace_videos``
        items of the test split in the same order, so the pairs line up.
        """
        from highlightzoo.data.dataset import HighlightDataset

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
        self, preset: BenchPreset, model: str, seed: int, world: World, run_dir: Path, device: str
    ):
        """The trainer config of one run: the preset's budget, identical for every model."""
        from highlightzoo.training.config import TrainConfig

        return TrainConfig(
            model=model,
            data=str(world.path),
            model_overrides=preset.overrides_for(model),
            clip_len=preset.clip_len,
            batch_size=preset.batch_size,
            lr=preset.lr,
            epochs=preset.epochs,
            patience=preset.patience,
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
    ) -> RunOutcome:
        from highlightzoo.training import train

        config = self.train_config(preset, model, seed, world, run_dir, device)
        folder = train(config, quiet=True)
        path = Path(folder) / "results.json"
        try:
            trained = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataFormatError(f"trainer results unreadable: {err}", path=str(path)) from err
        return split_trainer_results(trained, world, run_dir, trace_pairs)


def split_trainer_results(
    trained: dict[str, Any], world: World, run_dir: Path, trace_pairs: list[str]
) -> RunOutcome:
    """Turn a trainer results.json into (deterministic record, timing, traces).

    Absolute paths become relative names (the world file, ``runs/<name>``)
    so two identical benchmarks in different folders give equal records.
    """
    config = dict(trained["config"])
    config["data"] = world.path.name
    config["out"] = f"runs/{Path(run_dir).name}"
    history, epoch_times = [], []
    for epoch in trained.get("history", []):
        history.append({k: v for k, v in epoch.items() if k not in _EPOCH_TIME_FIELDS})
        epoch_times.append({k: epoch[k] for k in _EPOCH_TIME_FIELDS if k in epoch})
    provenance = dict(trained.get("provenance", {}))
    created = provenance.pop("created", None)
    hit_key = next((k for k in trained if k.startswith("hit_at_")), None)
    record = {
        "config": config,
        "card": trained.get("model_card"),
        "build_args": trained.get("build_args"),
        "history_cap": trained.get("history_cap"),
        "selection": {k: trained.get(k) for k in
                      ("best_epoch", "best_val_map", "epochs_run", "stopped_early")},
        "history": history,
        "test": {
            "map": trained["map"],
            "user_map": trained.get("user_map"),
            "n_pairs": trained.get("n_pairs"),
            "n_skipped": trained.get("n_skipped"),
            "nmsd": trained.get("nmsd"),
            "hit": trained.get(hit_key) if hit_key else None,
            "ap_mode": trained.get("ap_mode"),
            "videos": [{k: r[k] for k in ("user", "video", "ap", "nmsd", "hit", "n_steps",
                                          "n_positive") if k in r} for r in trained["records"]],
            "skipped": trained.get("skipped", []),
        },
        "provenance": provenance,
    }
    scores = trained.get("scores", {})
    missing = [p for p in trace_pairs if p not in scores]
    if missing:
        raise DataFormatError(
            f"trainer results lack per-step scores of the traced test videos {missing}",
            path=str(Path(run_dir) / "results.json"),
        )
    timing = {
        "training_time_s": trained.get("training_time_s"),
        "test_time_s": trained.get("test_time_s"),
        "epochs": epoch_times,
        "created": created,
    }
    return RunOutcome(record=record, timing=timing,
                      traces={p: scores[p] for p in trace_pairs})
