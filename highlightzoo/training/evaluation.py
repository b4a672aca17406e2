"""The evaluation loop shared by validation, test, ``highlightzoo evaluate`` and the benchmark.

Whole videos (the paper's protocol, Sec. 3.4), batched with padding (every zoo
model gives a video the same scores alone or padded in a batch), in fixed
batches of consecutive dataset items so that a sharded (``torchrun``) and a
one-process evaluation score every video in the same batch and agree exactly.
Per-video metrics come from :mod:`highlightzoo.metrics`; a video without any
positive step is never silently dropped: it is listed in ``skipped``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from highlightzoo.batch import Batch
from highlightzoo.training.distributed import DistContext, ShardedBatchSampler


@dataclass
class VideoRecord:
    """Metrics of one (user, target video) pair. ``ap`` is in [0, 1]; ``hit`` is hit@k (0/1)."""

    user: str
    video: str
    ap: float
    nmsd: float
    hit: float
    n_steps: int
    n_positive: int


@dataclass
class EvalResult:
    """An evaluation of one model on one split.

    ``map`` / ``user_map`` are in percent (the field's convention); ``records``
    are sorted by (user, video); ``skipped`` lists the pairs without a positive
    step (no AP exists for them); ``ci`` is the 95 % bootstrap interval of
    ``map`` over videos (None when not computed or with < 2 videos); ``scores`` keeps per-step scores of the first
    ``keep_scores`` pairs (for plots).
    """

    map: float
    user_map: float
    n_pairs: int
    n_skipped: int
    ci: tuple[float | None, float | None]
    nmsd: float
    hit: float
    hit_k: int
    records: list[VideoRecord]
    skipped: list[dict[str, str]]
    scores: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The headline numbers only (no per-video lists)."""
        return {
            "map": self.map,
            "user_map": self.user_map,
            "map_ci95": list(self.ci),
            "n_pairs": self.n_pairs,
            "n_skipped": self.n_skipped,
            "nmsd": self.nmsd,
            f"hit_at_{self.hit_k}": self.hit,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: summary + per-video records + skipped pairs."""
        return {
            **self.summary(),
            "records": [asdict(r) for r in self.records],
            "skipped": list(self.skipped),
            "scores": dict(self.scores),
        }


def video_metrics(
    scores: np.ndarray, labels: np.ndarray, rate: float, hit_k: int
) -> tuple[float, float, float]:
    """(AP, nMSD, hit@k) of one video whose labels have at least one positive step.

    AP: the field's interpolated AP; nMSD: mean over ground-truth segments;
    hit@k: a ground-truth segment's centre inside one of the top-k segments
    (defaults of :mod:`highlightzoo.metrics`).
    """
    from highlightzoo import metrics

    ap = float(metrics.average_precision(labels, scores))
    nmsd = float(metrics.nmsd(labels, scores))
    hit = float(metrics.hit_at_k(labels, scores, rate, k=hit_k))
    return ap, nmsd, hit


def summarise(
    records: list[VideoRecord],
    skipped: list[dict[str, str]],
    hit_k: int,
    scores: dict[str, list[float]] | None = None,
    with_ci: bool = True,
) -> EvalResult:
    """mAP (over pairs), user mAP, bootstrap CI and mean nMSD / hit@k of per-video records.

    The CI is None when skipped (``with_ci=False``) or undefined (fewer than 2 videos).
    """
    from highlightzoo import metrics

    records = sorted(records, key=lambda r: (r.user, r.video))
    skipped = sorted(skipped, key=lambda s: (s["user"], s["video"]))
    aps = np.array([r.ap for r in records], dtype=np.float64)
    if len(records):
        res = metrics.mean_average_precision(
            [r.user for r in records], [r.video for r in records], aps
        )
        ci = _ci(aps) if with_ci and len(records) >= 2 else (None, None)
        map_, user_map = float(res.map), float(res.user_map)
        nmsd = float(np.mean([r.nmsd for r in records]))
        hit = float(np.mean([r.hit for r in records]))
    else:
        map_ = user_map = nmsd = hit = math.nan
        ci = (None, None)
    return EvalResult(
        map=map_,
        user_map=user_map,
        n_pairs=len(records),
        n_skipped=len(skipped),
        ci=ci,
        nmsd=nmsd,
        hit=hit,
        hit_k=hit_k,
        records=records,
        skipped=skipped,
        scores=scores or {},
    )


def _ci(aps: np.ndarray) -> tuple[float, float]:
    """95 % bootstrap interval of the mean AP, in percent (fixed seed: reproducible)."""
    from highlightzoo import metrics

    low, high = metrics.bootstrap_ci(aps * 100.0, confidence=0.95, seed=0)
    return float(low), float(high)


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device | str,
    *,
    batch_size: int = 8,
    precision: str = "fp32",
    hit_k: int = 5,
    keep_scores: int = 0,
    ctx: DistContext | None = None,
    progress: bool = False,
    desc: str = "eval",
    with_ci: bool = True,
) -> EvalResult:
    """Score every item of an eval-mode dataset and compute per-video metrics.

    Under ``torchrun`` pass ``ctx``: each rank scores its share of the fixed
    batches, the per-video records are gathered to every rank, and the result
    equals a one-process evaluation. Memory: one batch of ``batch_size`` whole
    videos on ``device`` at a time; scores go to the CPU right away.
    """
    from highlightzoo.data.dataset import collate

    ctx = ctx or DistContext()
    device = torch.device(device)
    was_training = model.training
    model.eval()
    sampler = ShardedBatchSampler(len(dataset), batch_size, ctx.rank, ctx.world_size)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(0),
    )
    records: list[VideoRecord] = []
    skipped: list[dict[str, str]] = []
    traces: dict[str, list[float]] = {}
    index = ctx.rank * batch_size
    try:
        for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
            batch = batch.to(device)
            with autocast(device, precision):
                scores = model(batch).scores
            for row, (s, y, rate, user, video) in enumerate(_rows(batch, scores)):
                if keep_scores and index + row < keep_scores:
                    traces[f"{user}/{video}"] = s.tolist()
                if y.sum() == 0:
                    skipped.append({"user": user, "video": video, "reason": "no_positive_label"})
                    continue
                ap, nmsd, hit = video_metrics(s, y, rate, hit_k)
                records.append(VideoRecord(user, video, ap, nmsd, hit, len(s), int(y.sum())))
            index += batch_size * ctx.world_size
    finally:
        model.train(was_training)
    gathered = ctx.gather((records, skipped, traces))
    all_records = [r for part in gathered for r in part[0]]
    all_skipped = [s for part in gathered for s in part[1]]
    all_traces = {k: v for part in gathered for k, v in part[2].items()}
    _check_unique(all_records, all_skipped)
    return summarise(all_records, all_skipped, hit_k, all_traces, with_ci=with_ci)


def _rows(batch: Batch, scores: torch.Tensor):
    """Per row: (scores, labels) as float64 arrays cut to the real length, rate, ids."""
    scores = scores.float().cpu().numpy().astype(np.float64)
    labels = batch.labels.cpu().numpy()
    lengths = batch.lengths.cpu().tolist()
    rates = batch.rate.cpu().tolist()
    for i, n in enumerate(lengths):
        yield scores[i, :n], (labels[i, :n] > 0.5).astype(np.int64), rates[i], (
            batch.user_ids[i]
        ), batch.video_ids[i]


def _check_unique(records: list[VideoRecord], skipped: list[dict[str, str]]) -> None:
    """Every (user, video) pair is evaluated once: a repeat means a sharding bug."""
    keys = [(r.user, r.video) for r in records] + [(s["user"], s["video"]) for s in skipped]
    if len(keys) != len(set(keys)):
        raise RuntimeError("evaluation scored a (user, video) pair twice; sharding is broken")


def autocast(device: torch.device, precision: str):
    """bf16 autocast on CUDA when ``precision == "bf16"``; a no-op context otherwise."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )


def evaluate_checkpoint(
    checkpoint: str,
    *,
    data: str | None = None,
    split: str = "test",
    device: str = "cpu",
    batch_size: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate a run folder's best checkpoint (or a checkpoint file) like the trainer's test.

    Same history cap, label rule, evaluation batch size and k of hit@k as the
    run, so on the same device it reproduces the run's test mAP exactly.
    Mismatched data is a :class:`~highlightzoo.errors.CheckpointError`.
    """
    from highlightzoo.data.dataset import HighlightDataset
    from highlightzoo.data.store import FeatureStore
    from highlightzoo.errors import CheckpointError
    from highlightzoo.training.checkpoint import (
        load_checkpoint,
        model_from_checkpoint,
        resolve_checkpoint_path,
    )
    from highlightzoo.training.config import TrainConfig
    from highlightzoo.training.distributed import resolve_device

    payload = load_checkpoint(resolve_checkpoint_path(checkpoint))
    try:
        config = TrainConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {payload['path']!r} has no usable config: {err}") from None
    store = FeatureStore(data or config.data)
    model = model_from_checkpoint(payload, feature_dim=int(store.feature_dim))
    cap = payload.get("history_cap", config.resolved_history_cap(payload["model_card"].get("history_cap")))
    dataset = HighlightDataset(
        store, split, mode="eval", history_cap=cap, clip_len=config.clip_len,
        min_fraction=config.min_fraction, seed=config.seed,
    )  # fmt: skip
    dev = resolve_device(device)
    return evaluate_model(
        model.to(dev),
        dataset,
        dev,
        batch_size=batch_size or config.eval_batch_size,
        precision=config.precision if dev.type == "cuda" else "fp32",
        hit_k=config.hit_k,
        progress=progress,
        desc=f"evaluate {split}",
    )
