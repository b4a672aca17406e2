"""How much personal signal a synthetic world holds: probes that read the generator's latents.

No model is trained. For each test user the generator's own hidden variables
of the target video are redrawn (:func:`highlightzoo.data.synthetic.target_latents`)
and turned into step scores by three fixed rules:

- ``generic``: the generic appeal of the step (shot appeal x its profile), what
  anybody would find interesting; no knowledge of the user;
- ``interest``: 1 when the step's shot topic is one of the user's interest
  topics, else 0; no knowledge of appeal;
- ``both``: ``interest + generic``; as appeal is at most 1, steps of the user's
  topics come first, ordered by appeal, then the other steps by appeal.

Each probe's mAP uses the evaluation's AP (:func:`highlightzoo.metrics.average_precision`,
default mode) on the evaluation's step labels. ``interest`` and ``both`` use
the *latent* interests, which a model can only estimate from the history, so
``both`` is a ceiling-like reference rather than an achievable score, and
``both - generic`` (``personal_gain``) is what knowing the user adds to a
perfect generic appeal under this rule. See docs/history.md.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from highlightzoo import metrics
from highlightzoo.data.labels import segments_to_step_labels
from highlightzoo.data.store import FeatureStore
from highlightzoo.data.synthetic import (
    WORLD_PRESETS,
    StepLatents,
    WorldConfig,
    WorldRenderer,
    get_world_config,
    target_latents,
)
from highlightzoo.errors import ConfigError, DataFormatError
from highlightzoo.io import atomic_write_text, output_folder

PROBES = ("generic", "interest", "both")
SPLIT_ORDER = ("train", "val", "test")


def probe_scores(steps: StepLatents, interests: np.ndarray) -> dict[str, np.ndarray]:
    """The three probes' (T,) step scores from one video's latents and the user's interests."""
    generic = np.asarray(steps.appeal, dtype=np.float64)
    interest = np.isin(steps.topic, interests).astype(np.float64)
    return {"generic": generic, "interest": interest, "both": interest + generic}


def config_from_store(meta: dict[str, Any], path: str) -> tuple[WorldConfig, int]:
    """The :class:`WorldConfig` and seed recorded in a synthetic store's ``generator_config``."""
    if not meta or meta.get("mode") != "synthetic":
        mode = None if not meta else meta.get("mode")
        raise ConfigError(
            f"{path}: world probes need a store written by `highlightzoo data synth` "
            f"(generator mode 'synthetic'), this one has mode {mode!r}"
        )
    names = {f.name for f in dataclasses.fields(WorldConfig)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.items() if k in names}
    return WorldConfig(**values).validate(), int(meta["seed"])


def split_user_indices(config: WorldConfig, split: str) -> range:
    """Generator indices of the users of ``split`` (users are drawn train, val, test in order)."""
    if split not in SPLIT_ORDER:
        raise ConfigError(f"unknown split {split!r}; choose one of {SPLIT_ORDER}")
    sizes = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    start = sum(sizes[s] for s in SPLIT_ORDER[: SPLIT_ORDER.index(split)])
    return range(start, start + sizes[split])


def world_probes(
    store_path: str | Path | None = None,
    world_config: str | WorldConfig | None = None,
    seed: int | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """mAP (%) of the three probes on ``split``'s target videos, with per-video APs.

    With ``store_path`` the world's config and seed default to the ones the
    store records, and each redrawn target video is checked against the
    stored features (a mismatch raises :class:`DataFormatError` naming the
    user). Without a store, ``world_config`` (a preset name or config) and
    ``seed`` are required and nothing is read from disk.
    """
    store = None
    if store_path is not None:
        store = FeatureStore(store_path, check_features=False)
        stored_cfg, stored_seed = config_from_store(
            store.metadata.get("generator_config"), str(store_path)
        )
        if seed is not None and seed != stored_seed:
            raise ConfigError(f"{store_path} was generated with seed {stored_seed}, not {seed}")
        config = stored_cfg if world_config is None else get_world_config(world_config)
        seed = stored_seed
    elif world_config is None or seed is None:
        raise ConfigError("world_probes needs a store_path, or both world_config and seed")
    else:
        config = get_world_config(world_config)
    world = WorldRenderer(config, seed)
    records, skipped = [], []
    try:
        for index in split_user_indices(config, split):
            user = f"u{index:06d}"
            latent = target_latents(world, seed, index)
            video = _check_against_store(store, user, latent, config) if store else None
            steps = latent.features.shape[0]
            labels = segments_to_step_labels(
                [(s.start, s.end) for s in latent.segments], steps, config.rate
            )
            if not labels.any():
                skipped.append({"user": user, "video": video, "reason": "no_positive_label"})
                continue
            scores = probe_scores(latent.steps, latent.interests)
            record = {"user": user, "video": video, "n_steps": steps}
            for name in PROBES:
                record[name] = float(metrics.average_precision(labels, scores[name]))
            records.append(record)
    finally:
        if store is not None:
            store.close()
    if not records:
        raise DataFormatError(
            f"no {split} video with a positive step to probe", path=str(store_path)
        )
    summary = {}
    for name in PROBES:
        aps = np.array([r[name] for r in records]) * 100.0
        ci = metrics.bootstrap_ci(aps, n_resamples=2000, seed=0) if len(aps) > 1 else None
        summary[name] = {"map": float(aps.mean()), "ci95": None if ci is None else list(ci)}
    return {
        "world": config.name,
        "seed": seed,
        "split": split,
        "n_videos": len(records),
        "n_skipped": len(skipped),
        "ap": "highlightzoo.metrics.average_precision (default mode), evaluation step labels",
        "probes": summary,
        "personal_gain": summary["both"]["map"] - summary["generic"]["map"],
        "records": records,
        "skipped": skipped,
    }


def _check_against_store(store, user: str, latent, config: WorldConfig) -> str:
    """The user's stored target video id, after checking the redrawn features equal it."""
    record = store.user(user)
    stored = store.video_features(record.target_video)
    redrawn = latent.features.astype(config.dtype).astype(np.float32)
    if stored.shape != redrawn.shape or not np.array_equal(stored, redrawn):
        raise DataFormatError(
            "the redrawn target video differs from the stored one: the store was not "
            f"generated by world {config.name!r} with this seed",
            path=store.path, user=user, video=record.target_video, reason="not_this_world",
        )  # fmt: skip
    return record.target_video


def all_preset_probes(seed: int = 0, presets: tuple[str, ...] | None = None) -> dict[str, Any]:
    """:func:`world_probes` of every synthetic preset (no store needed), by preset name."""
    return {name: world_probes(world_config=name, seed=seed) for name in presets or tuple(WORLD_PRESETS)}


def probes_markdown(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table of probe mAPs, one row per world (``results``: name -> world_probes)."""
    lines = [
        "# The worlds' personal signal: probes on the generator's latent variables",
        "",
        "| world | seed | test videos | generic appeal only | interest topics only | both "
        "| both - generic |",
        "|" + "---|" * 7,
    ]
    for name, r in results.items():
        p = r["probes"]
        cells = [f"{p[k]['map']:.2f}" for k in PROBES]
        lines.append(
            f"| {name} | {r['seed']} | {r['n_videos']} | {' | '.join(cells)} "
            f"| {r['personal_gain']:+.2f} |"
        )
    lines += [
        "",
        "mAP in %, over the test (user, target video) pairs, with the evaluation's AP and step "
        "labels. generic: the step's generic appeal (shot appeal x profile); interest: 1 when the "
        "step's shot topic is one of the user's latent interest topics; both: interest + generic "
        "(the user's topics first, by appeal). The probes know the generator's hidden variables, "
        "which no model sees: `both - generic` is what the user's latent topics add to a perfect "
        "generic appeal under this fixed rule, a reference for what history could add, not a "
        "score a model should reach. See docs/history.md.",
    ]
    return "\n".join(lines) + "\n"


def write_world_probes(folder: str | Path, results: dict[str, dict[str, Any]]) -> list[Path]:
    """Write ``world_probes.json`` (with per-video APs) and ``world_probes.md`` into ``folder``."""
    folder = output_folder(folder)
    paths = [folder / "world_probes.json", folder / "world_probes.md"]
    atomic_write_text(paths[0], json.dumps(results, indent=1, sort_keys=True) + "\n")
    atomic_write_text(paths[1], probes_markdown(results))
    return paths
