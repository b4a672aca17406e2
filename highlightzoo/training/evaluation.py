"""The evaluation loop shared by validation, test, ``highlightzoo evaluate`` and the benchmark.

Whole videos (the paper's protocol, Sec. 3.4), batched with padding (every zoo
model gives a video the same scores alone or padded in a batch), in fixed
batches of consecutive dataset items so that a sharded (``torchrun``) and a
one-process evaluation score every video in the same batch and agree exactly.
Per-video metrics come from :mod:`highlightzoo.metrics`; a video without any
positive step is never silently dropped: it is listed in ``skipped``.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from highlightzoo import metrics
from highlightzoo.batch import Batch, check_output, model_name
from highlightzoo.data.dataset import HighlightDataset, collate
from highlightzoo.data.store import FeatureStore
from highlightzoo.device import autocast, check_precision, feature_dtype, resolve_device
from highlightzoo.errors import CheckpointError, ConfigError, MetricInputError, NoPositiveLabelError
from highlightzoo.training.checkpoint import (
    check_run_checkpoint,
    check_store_features,
    checkpoint_history_cap,
    load_checkpoint,
    model_from_checkpoint,
    payload_problem,
    resolve_checkpoint_path,
)
from highlightzoo.training.config import TrainConfig
from highlightzoo.training.distributed import DistContext, ShardedBatchSampler
from highlightzoo.training.runs import pinned_store


@dataclass
class VideoRecord:
    """Metrics of one (user, target video) pair. ``ap`` is in [0, 1]; ``hit`` is hit@k (0/1).

    ``ap`` is the AP under the evaluation's protocol; ``ap_steps`` and
    ``ap_avhd`` are both protocols' APs (NaN where a protocol has no AP for
    the pair, e.g. no positive step but positive frames). ``nmsd``/``hit`` are
    on the step labels (NaN without a positive step). ``n_history``: the
    user's history segments in the store, uncapped (-1 when the dataset has
    no store).
    """

    user: str
    video: str
    ap: float
    nmsd: float
    hit: float
    n_steps: int
    n_positive: int
    ap_steps: float = math.nan
    ap_avhd: float = math.nan
    n_history: int = -1


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
    protocol: str = "steps"
    map_by_protocol: dict[str, float] = field(default_factory=dict)
    n_pairs_by_protocol: dict[str, int] = field(default_factory=dict)

    def ci_text(self) -> str:
        """``ci`` as ``"low-high"`` with two decimals, or ``"n/a"`` when there is none."""
        low, high = self.ci
        return "n/a" if low is None else f"{low:.2f}-{high:.2f}"

    def summary(self) -> dict[str, Any]:
        """The headline numbers only (no per-video lists); ``map`` is ``protocol``'s mAP."""
        return {
            "protocol": self.protocol,
            **{f"map_{p}": v for p, v in self.map_by_protocol.items()},
            "map_by_protocol": dict(self.map_by_protocol),
            "n_pairs_by_protocol": dict(self.n_pairs_by_protocol),
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


def video_ranking_metrics(
    scores: np.ndarray, labels: np.ndarray, rate: float, hit_k: int
) -> tuple[float, float]:
    """(nMSD, hit@k) of one video whose labels have at least one positive step.

    nMSD: mean over ground-truth segments; hit@k: a ground-truth segment's
    centre inside one of the top-k segments (defaults of :mod:`highlightzoo.metrics`).
    The step AP is computed per batch (:func:`~highlightzoo.metrics.batched_average_precision`).
    """
    nmsd = float(metrics.nmsd(labels, scores))
    hit = float(metrics.hit_at_k(labels, scores, rate, k=hit_k))
    return nmsd, hit


def summarise(
    records: list[VideoRecord],
    skipped: list[dict[str, str]],
    hit_k: int,
    scores: dict[str, list[float]] | None = None,
    with_ci: bool = True,
    protocol: str = "steps",
) -> EvalResult:
    """mAP (over pairs), user mAP, bootstrap CI and mean nMSD / hit@k of per-video records.

    The CI is None when skipped (``with_ci=False``) or undefined (fewer than 2 videos).
    ``records[i].ap`` is ``protocol``'s AP; ``map_by_protocol`` also holds the other
    protocol's mAP over the records where it is defined (``n_pairs_by_protocol``).
    """
    records = sorted(records, key=lambda r: (r.user, r.video))
    skipped = sorted(skipped, key=lambda s: (s["user"], s["video"]))
    aps = np.array([r.ap for r in records], dtype=np.float64)
    if len(records):
        res = metrics.mean_average_precision(
            [r.user for r in records], [r.video for r in records], aps
        )
        ci = _ci(aps) if with_ci and len(records) >= 2 else (None, None)
        map_, user_map = float(res.map), float(res.user_map)
        nmsd = _nanmean([r.nmsd for r in records])
        hit = _nanmean([r.hit for r in records])
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
        protocol=protocol,
        **_by_protocol(records, protocol, map_),
    )


def _nanmean(values: list[float]) -> float:
    """Mean of the finite values; NaN when there is none."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan


def _by_protocol(records: list[VideoRecord], protocol: str, map_: float) -> dict[str, dict]:
    """mAP (%) and pair count of each protocol: the selected one's is ``map_``."""
    maps, counts = {}, {}
    for name in metrics.PROTOCOLS:
        if name == protocol:
            maps[name], counts[name] = map_, len(records)
            continue
        kept = [r for r in records if math.isfinite(getattr(r, f"ap_{name}"))]
        aps = np.array([getattr(r, f"ap_{name}") for r in kept], dtype=np.float64)
        counts[name] = len(kept)
        maps[name] = (
            float(metrics.mean_average_precision([r.user for r in kept], [r.video for r in kept], aps).map)
            if kept
            else math.nan
        )
    return {"map_by_protocol": maps, "n_pairs_by_protocol": counts}


def _ci(aps: np.ndarray) -> tuple[float, float]:
    """95 % bootstrap interval of the mean AP, in percent (fixed seed: reproducible)."""
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
    protocol: str = "steps",
    selection_only: bool = False,
) -> EvalResult:
    """Score every item of an eval-mode dataset and compute per-video metrics.

    Every pair gets both protocols' AP (docs/evaluation.md): ``"steps"`` (scores
    vs step labels) and ``"avhd"`` (``ModelOutput.probs`` under
    :func:`~highlightzoo.metrics.avhd_protocol_ap`, ground truth from
    ``dataset.ground_truth(index)``); ``protocol`` picks the one in
    ``VideoRecord.ap`` and ``EvalResult.map``, and which pairs are skipped (no
    AP under it). Under ``"avhd"`` a model without ``probs`` or a dataset
    without ``ground_truth`` is a :class:`~highlightzoo.errors.ConfigError`.

    Under ``torchrun`` pass ``ctx``: each rank scores its share of the fixed
    batches, the per-video records are gathered to every rank, and the result
    equals a one-process evaluation. Memory: one batch of ``batch_size`` whole
    videos on ``device`` at a time; scores go to the CPU right away.

    ``selection_only``: compute only what model selection reads (``protocol``'s
    AP per pair, so ``map``, ``user_map`` and the skips); nMSD, hit@k and, under
    ``"steps"``, the A-VHD protocol's AP are NaN (the trainer's validation: on a
    CPU those cost about a third of a PR-Net validation).
    """
    metrics.protocols.check_protocol(protocol)
    if protocol == "avhd" and not hasattr(dataset, "ground_truth"):
        raise ConfigError(
            f"protocol 'avhd' needs the eval dataset's ground_truth(index) (duration and "
            f"segments in seconds); {type(dataset).__name__} has none"
        )
    ctx = ctx or DistContext()
    device = resolve_device(device)  # "xpu" or a bare index: a typed error, not torch's
    precision = check_precision(precision, device)
    was_training = model.training
    model.eval()
    # batches of similar-length videos (less padding); the order is fixed, so every rank and
    # every rerun scores each video in the same batch
    lengths = getattr(dataset, "item_length", None)
    order = sorted(range(len(dataset)), key=lambda i: (lengths(i), i)) if lengths else None
    sampler = ShardedBatchSampler(len(dataset), batch_size, ctx.rank, ctx.world_size, order)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=functools.partial(collate, feature_dtype=feature_dtype(precision)),
        generator=torch.Generator().manual_seed(0),
    )
    records: list[VideoRecord] = []
    skipped: list[dict[str, str]] = []
    traces: dict[str, list[float]] = {}
    try:
        batches = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
        for batch, items in zip(batches, sampler.batches, strict=True):
            batch = batch.to(device)
            with autocast(device, precision):
                out = check_output(model(batch), batch, model)
            if protocol == "avhd" and out.probs is None:
                raise ConfigError(
                    f"model {model_name(model)!r} gives no per-step probability "
                    "(ModelOutput.probs), which protocol 'avhd' averages; set probs in its "
                    "forward (docs/evaluation.md) or evaluate with protocol 'steps'"
                )
            probs = None if out.probs is None else out.probs.float().cpu().numpy()
            rows = list(_rows(batch, out.scores))
            # every row's step AP in one vectorised call (bit-identical to average_precision)
            try:  # a NaN score names the model, the user and the video
                aps = metrics.batched_average_precision(
                    [r[1] for r in rows], [r[0] for r in rows],
                    ids=[f"{user}/{video}" for *_, user, video in rows],
                ).values
            except MetricInputError as err:
                raise MetricInputError(f"model {model_name(model)!r}: {err}") from None
            for row, (s, y, rate, user, video) in enumerate(rows):
                index = items[row]
                if keep_scores and index < keep_scores:  # the first items in dataset order
                    traces[f"{user}/{video}"] = s.tolist()
                p = None if probs is None else probs[row, : len(s)].astype(np.float64)
                try:
                    rec = _pair_record(
                        dataset, index, s, y, p, rate, user, video, hit_k, protocol,
                        float(aps[row]), selection_only,
                    )
                except MetricInputError as err:  # NaN probabilities, say: name where
                    raise MetricInputError(f"model {model_name(model)!r}, user {user!r}, video "
                                           f"{video!r}: {err}") from None
                if isinstance(rec, str):
                    skipped.append({"user": user, "video": video, "reason": rec})
                else:
                    records.append(rec)
    finally:
        model.train(was_training)
    gathered = ctx.gather((records, skipped, traces))
    all_records = [r for part in gathered for r in part[0]]
    all_skipped = [s for part in gathered for s in part[1]]
    all_traces = {k: v for part in gathered for k, v in part[2].items()}
    _check_unique(all_records, all_skipped)
    return summarise(
        all_records, all_skipped, hit_k, all_traces, with_ci=with_ci, protocol=protocol
    )


def _pair_record(
    dataset: Dataset,
    index: int,
    scores: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray | None,
    rate: float,
    user: str,
    video: str,
    hit_k: int,
    protocol: str,
    ap_steps: float,
    selection_only: bool = False,
) -> VideoRecord | str:
    """The pair's record with both protocols' AP, or the skip reason under ``protocol``.

    ``ap_steps``: the pair's step AP (NaN without a positive step), computed for
    its whole batch by :func:`~highlightzoo.metrics.batched_average_precision`.
    ``selection_only``: only ``protocol``'s AP (the rest NaN; see :func:`evaluate_model`).
    """
    nmsd = hit = math.nan
    if labels.sum() > 0 and not selection_only:
        nmsd, hit = video_ranking_metrics(scores, labels, rate, hit_k)
    ap_avhd = math.nan
    wants_avhd = protocol == "avhd" or not selection_only
    if wants_avhd and probs is not None and hasattr(dataset, "ground_truth"):
        duration, segments = dataset.ground_truth(index)
        try:
            ap_avhd = metrics.avhd_protocol_ap(probs, rate, duration, segments)
        except NoPositiveLabelError:
            pass
    ap = ap_avhd if protocol == "avhd" else ap_steps
    if not math.isfinite(ap):
        return "no_positive_frame" if protocol == "avhd" else "no_positive_label"
    store = getattr(dataset, "store", None)
    n_history = len(store.user(user).history) if store is not None else -1
    return VideoRecord(
        user, video, ap, nmsd, hit, len(scores), int(labels.sum()), ap_steps, ap_avhd, n_history
    )


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


def evaluate_checkpoint(
    checkpoint: str | dict[str, Any],
    *,
    data: str | None = None,
    split: str = "test",
    device: str = "cpu",
    batch_size: int | None = None,
    progress: bool = False,
    protocol: str | None = None,
) -> EvalResult:
    """Evaluate a run folder's best checkpoint (or a checkpoint file) like the trainer's test.

    ``protocol`` (``"avhd"`` or ``"steps"``): the AP in ``map``; default the
    run's configured protocol, or ``"steps"`` for runs that predate the option.

    Same history cap, label rule, evaluation batch size and k of hit@k as the
    run, so on the same device it reproduces the run's test mAP exactly.
    Mismatched data is a :class:`~highlightzoo.errors.CheckpointError`.
    ``checkpoint`` may also be a payload from ``load_checkpoint``. Without
    ``data`` the run's recorded store is read and must be unchanged; with it,
    a store other than the run's is used and a note is logged
    (docs/reliability.md). A checkpoint that is not its run folder's model is refused.
    """
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ConfigError(f"--batch-size must be an int >= 1 (whole videos per batch), got {batch_size!r}")
    if isinstance(checkpoint, dict):  # not read by load_checkpoint, so not checked yet
        payload, problem = checkpoint, payload_problem(checkpoint)
        if problem:
            raise CheckpointError(f"checkpoint {checkpoint.get('path', '<payload>')!r} is damaged: {problem}")
    else:
        payload = load_checkpoint(resolve_checkpoint_path(checkpoint))
    where = payload.get("path", "<payload>")
    try:
        config = TrainConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {where!r} has no usable config: {err}") from None
    check_run_checkpoint(payload)
    path, _, note = pinned_store(config.data, config.data_fingerprint, data, f"checkpoint {where!r}")
    if note:
        logging.getLogger("highlightzoo.evaluation").warning("%s", note)
    store = FeatureStore(path)
    check_store_features(payload, store.metadata.get("features"), path)
    if not store.users(split):
        raise ConfigError(f"split {split!r} of {path!r} has no valid users: nothing to evaluate")
    model = model_from_checkpoint(payload, feature_dim=int(store.feature_dim))
    cap = checkpoint_history_cap(payload)
    dataset = HighlightDataset(
        store, split, mode="eval", history_cap=cap, clip_len=config.clip_len,
        min_fraction=config.min_fraction, seed=config.seed,
        history_context=getattr(model, "history_context_steps", None),
        history_order=config.history_order,
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
        protocol=protocol or payload["config"].get("protocol", "steps"),
    )
