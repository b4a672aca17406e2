"""Per-model summaries of a benchmark: mAP with its two intervals, and the paired test.

Definitions (the tables' footnotes repeat them):

- Per-video AP of a model = mean over its training seeds of that video's AP
  (every seed is evaluated on the same test (user, video) pairs).
- ``map`` = mean over seeds of the per-seed mAP = mean of the per-video APs
  above, in percent.
- ``ci_videos`` = 95 % percentile bootstrap interval of that mean over test
  videos (videos resampled with replacement, the same resample for every
  seed: what a different draw of test videos would do).
- ``ci_seeds`` = 95 % Student-t interval of the mean of the per-seed mAPs
  (n_seeds - 1 degrees of freedom: what a different draw of training seeds
  would do); undefined with one seed.
- the paired test of a model against the reference (PR-Net) = two-sided
  Wilcoxon signed-rank test on the per-video APs (seed-averaged), paired by
  (user, video).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from highlightzoo.errors import DataFormatError
from highlightzoo.metrics import aggregate_seeds, bootstrap_ci, paired_test

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ModelSummary:
    """Test-set summary of one model over its seeds (mAP, nMSD, hit@k in percent)."""

    model: str
    n_seeds: int
    n_videos: int
    map: float
    seed_maps: tuple[float, ...]
    ci_videos: tuple[float, float] | None
    ci_seeds: tuple[float, float] | None
    nmsd: float | None
    hit: float | None
    per_video_ap: dict[str, float]
    #: mAP under the other AP protocol ("steps" when the primary is "avhd"), None if not recorded
    map_other: float | None = None
    #: runs stopped by patience (or floors, which have nothing to train) / runs
    n_converged: int = 0
    #: the learning rates of the runs (one value after a sweep)
    lrs: tuple[float, ...] = ()
    #: AP protocol of ``map`` ("avhd", "steps"; "steps" for results made before protocols)
    protocol: str = "steps"

    @property
    def converged(self) -> bool:
        return self.n_converged == self.n_seeds


def pair_id(user: str, video: str) -> str:
    """Key of one test (user, video) pair."""
    return f"{user}/{video}"


def _metric(records: Sequence[dict[str, Any]], name: str) -> float | None:
    values = [r[name] for r in records if r.get(name) is not None]
    return float(np.mean(values)) if values else None


def summarise_model(model: str, runs: Sequence[dict[str, Any]]) -> ModelSummary:
    """Summarise the runs (one per seed) of ``model`` from their per-video test records.

    Every seed must cover the same (user, video) pairs; a mismatch is an error
    rather than a silent intersection.
    """
    per_seed: list[dict[str, dict[str, Any]]] = []
    for run in runs:
        videos = {pair_id(v["user"], v["video"]): v for v in run["test"]["videos"]}
        per_seed.append(videos)
    keys = sorted(per_seed[0])
    for run, videos in zip(runs, per_seed, strict=True):
        if sorted(videos) != keys:
            raise DataFormatError(
                f"run {run['id']} was evaluated on other test videos than {runs[0]['id']}"
                f" ({len(videos)} vs {len(keys)} pairs)"
            )
    if not keys:
        raise DataFormatError(f"runs of {model} have no evaluated test video")
    ap = np.array([[videos[k]["ap"] for k in keys] for videos in per_seed], dtype=np.float64)
    seed_maps = ap.mean(axis=1) * 100.0
    per_video = ap.mean(axis=0)
    records = [v for videos in per_seed for v in videos.values()]
    nmsd, hit = _metric(records, "nmsd"), _metric(records, "hit")
    protocol = runs[0]["test"].get("protocol", "steps")
    other_key = "ap_steps" if protocol == "avhd" else "ap_avhd"
    other = _metric(records, other_key) if all(other_key in r for r in records) else None
    return ModelSummary(
        model=model,
        n_seeds=len(runs),
        n_videos=len(keys),
        map=float(per_video.mean() * 100.0),
        seed_maps=tuple(float(m) for m in seed_maps),
        ci_videos=video_interval(per_video * 100.0),
        ci_seeds=seed_interval(seed_maps),
        nmsd=None if nmsd is None else nmsd * 100.0,
        hit=None if hit is None else hit * 100.0,
        per_video_ap=dict(zip(keys, per_video.tolist(), strict=True)),
        map_other=None if other is None else other * 100.0,
        n_converged=sum(run_converged(run) for run in runs),
        lrs=tuple(sorted({float(run.get("lr", run.get("config", {}).get("lr", math.nan))) for run in runs})),
        protocol=protocol,
    )


def run_converged(run: dict[str, Any]) -> bool:
    """Whether a run stopped by patience (or had nothing to train).

    Results made before budgets were counted in steps record ``stopped_early``:
    a run that was not stopped early ran to its cap.
    """
    selection = run.get("selection", {})
    if "stop_reason" in selection:
        return selection["stop_reason"] in ("patience", "untrained")
    return bool(selection.get("stopped_early"))


def video_interval(values: np.ndarray) -> tuple[float, float] | None:
    """95 % percentile bootstrap interval of the mean over videos (None with one video)."""
    if len(values) < 2:
        return None
    ci = bootstrap_ci(
        values, confidence=CONFIDENCE, n_resamples=BOOTSTRAP_SAMPLES, seed=BOOTSTRAP_SEED
    )
    return float(ci.low), float(ci.high)


def seed_interval(seed_maps: np.ndarray) -> tuple[float, float] | None:
    """95 % Student-t interval of the mean of per-seed mAPs (None with one seed)."""
    if len(seed_maps) < 2:
        return None
    summary = aggregate_seeds(list(map(float, seed_maps)))
    return float(summary.ci_low), float(summary.ci_high)


def paired_p_value(a: ModelSummary, b: ModelSummary) -> float | None:
    """Two-sided Wilcoxon p-value of ``a`` vs ``b`` on their shared test videos.

    None when the two were evaluated on different videos or every
    difference is zero (the test is undefined, e.g. a model against itself).
    """
    if sorted(a.per_video_ap) != sorted(b.per_video_ap):
        return None
    keys = sorted(a.per_video_ap)
    x = np.array([a.per_video_ap[k] for k in keys])
    y = np.array([b.per_video_ap[k] for k in keys])
    if np.all(x == y):
        return None
    p = paired_test(x, y).p_value
    return None if p is None or math.isnan(p) else float(p)
