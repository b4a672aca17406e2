"""Per-user samples of a feature store, and the collate function that makes a Batch.

One item per user of a split: the target video's step features and labels,
and the step features of the user's history segments.

- ``mode="train"`` draws clips of ``clip_len`` steps that contain at least one
  positive step (paper Sec. 3.4: "cut a video into fixed-length segments (256
  frames) and only train those segments that contain highlight frames"), in one
  of two ``sampling`` schemes (docs/training.md, "Training samples"):

  * ``"leave_one_out"`` (default): every annotated video of a training user is a
    target in turn, with the user's segments on their *other* videos as the
    history; every ``clip_len`` chunk of it (a fixed grid from step 0) that
    holds a positive step is one item, shifted each epoch by a random offset of
    up to half a clip (kept only if the shifted clip still holds a positive).
  * ``"last_video"``: one item per user, a clip around a random positive step
    of the user's last (target) video, with the stored history.

  Random draws come from ``(seed, epoch, item index)`` only, so they are the
  same in any process and under any sampler; call
  :meth:`HighlightDataset.set_epoch` each epoch (as with
  ``DistributedSampler``) before creating the iterator. A video no longer than
  the clip is returned whole.
- ``mode="eval"``: the whole target video (offset 0).
- ``history_cap``: ``None`` keeps every history segment, ``0`` none (cold
  start), ``k`` the first ``k`` segments in stored order (for an imported
  PHD-GIFs CSV: the CSV's row order, newest first; under leave-one-out the
  segments of the user's last video, the newest, come before the stored history).
- ``history_order``: ``"stored"`` (default) keeps that order;
  ``"reversed"`` reverses it before the cap, so ``k`` keeps the *last* ``k``
  stored segments. The PHD-GIFs CSV lists each user newest first (evidence in
  docs/models.md, ``prnet_h5``), so ``"stored"`` with ``k = 5`` keeps the five
  most recent highlights and ``"reversed"`` the five oldest.
- ``history_context``: ``None`` (default) gives the history segments only;
  ``K >= 0`` also gives each segment as a slice of its source video with up
  to ``K`` steps on each side and the position of the segment's own steps in
  it (``Sample.history_context`` / ``history_own``, collated into the Batch's
  ``history_context*`` fields), for models built with
  ``history_context="video:K"`` (docs/history.md). Reads stay slices.

Users whose target video has no positive step after label conversion are
never dropped silently: :attr:`HighlightDataset.report` lists them (and, under
leave-one-out, counts the user's videos without one); they are left out of
training (a clip could not contain a positive) and kept in evaluation, where
metrics skip and count them. History segment features are small and read
over and over: they are cached in memory up to ``HISTORY_CACHE_BYTES``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from highlightzoo.batch import Batch
from highlightzoo.checks import int_at_least
from highlightzoo.data.labels import segment_steps, segments_to_step_labels
from highlightzoo.data.store import FeatureStore, HistorySegment
from highlightzoo.errors import ConfigError

SAMPLINGS = ("leave_one_out", "last_video")
#: ``history_order`` values: the order history segments are given in (and capped from).
HISTORY_ORDERS = ("stored", "reversed")
#: per-process memory for cached history-segment features (then reads go to the store)
HISTORY_CACHE_BYTES = 256 * 2**20


@dataclass
class Sample:
    """One user's example: target steps, labels, history segments (unpadded)."""

    video: Tensor  # (T, D) float32
    labels: Tensor  # (T,) float32
    history: list[Tensor]  # N tensors of shape (L_j, D)
    history_video: list[int]  # per-user index of the history video of each segment
    rate: float
    user_id: str
    video_id: str
    offset: int = 0
    #: with ``HighlightDataset(history_context=K)``: N slices (Lc_j, D) of the source videos
    history_context: list[Tensor] | None = None
    #: the (start, stop) of each segment's own steps inside its slice
    history_own: list[tuple[int, int]] | None = None


@dataclass
class DatasetReport:
    """Users of the split, and those whose target has no positive step."""

    split: str
    n_users: int = 0
    no_positive: list[str] = field(default_factory=list)
    #: leave-one-out only: (user, video) pairs whose video has no positive step
    videos_without_positive: int = 0

    def summary(self) -> str:
        extra = (
            f"; {self.videos_without_positive} annotated videos without a positive step"
            if self.videos_without_positive else ""
        )
        return (
            f"split {self.split!r}: {self.n_users} users, {len(self.no_positive)} without a "
            f"positive step after label conversion{extra}"
        )


@dataclass(frozen=True)
class _Item:
    """One sample: a user, a target video of theirs, and a clip start (-1 = around a positive)."""

    user: str
    video: str
    chunk: int


class HighlightDataset(Dataset):
    """A torch Dataset of :class:`Sample` s from a :class:`FeatureStore` (see the module docstring)."""

    def __init__(
        self,
        store_or_path: FeatureStore | str | os.PathLike,
        split: str,
        *,
        mode: Literal["train", "eval"] = "train",
        history_cap: int | None = None,
        clip_len: int = 256,
        min_fraction: float = 0.5,
        seed: int = 0,
        sampling: str = "leave_one_out",
        history_order: str = "stored",
        history_context: int | None = None,
    ) -> None:
        history_context = int_at_least(history_context, 0, "history_context (steps)",
                                       allow_none=True)
        self.history_context = history_context
        if history_order not in HISTORY_ORDERS:
            raise ConfigError(
                f"history_order must be one of {HISTORY_ORDERS}, got {history_order!r}"
            )
        self.history_order = history_order
        if mode not in ("train", "eval"):
            raise ConfigError(f"mode must be 'train' or 'eval', got {mode!r}")
        if sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        history_cap = int_at_least(history_cap, 0, "history_cap", allow_none=True)
        clip_len = int_at_least(clip_len, 1, "clip_len")
        seed = int_at_least(seed, 0, "seed")
        self.store = (
            store_or_path if isinstance(store_or_path, FeatureStore) else FeatureStore(store_or_path)
        )
        self.split, self.mode = split, mode
        self.sampling = sampling if mode == "train" else "last_video"
        self.history_cap, self.clip_len = history_cap, clip_len
        self.min_fraction, self.seed, self.epoch = min_fraction, seed, 0
        self.report = DatasetReport(split)
        self._items: list[_Item] = []
        self._labels: dict[tuple[str, str], np.ndarray] = {}
        self._cache: dict[tuple[str, int, int], Tensor] = {}
        self._cache_bytes = 0
        for uid in self.store.users(split):
            self.report.n_users += 1
            rec = self.store.user(uid)
            target = self._video_labels(uid, rec.target_video)
            if not target.any():
                self.report.no_positive.append(uid)
            if self.sampling == "last_video":
                if target.any() or mode == "eval":
                    self._items.append(_Item(uid, rec.target_video, -1))
                continue
            for vid in [*rec.history_videos, rec.target_video]:
                labels = self._video_labels(uid, vid)
                if not labels.any():
                    self.report.videos_without_positive += 1
                    continue
                for k in range(-(-len(labels) // clip_len)):
                    if labels[k * clip_len : (k + 1) * clip_len].any():
                        self._items.append(_Item(uid, vid, k))

    @property
    def user_ids(self) -> list[str]:
        """User id of each item, in item order."""
        return [item.user for item in self._items]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose clips ``__getitem__`` draws (train mode)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._items)

    def item_length(self, index: int) -> int:
        """Steps of item ``index`` without reading features (the whole video in eval mode)."""
        item = self._items[index]
        n = len(self._labels[(item.user, item.video)])
        return n if self.mode == "eval" else min(n, self.clip_len)

    def __getitem__(self, index: int) -> Sample:
        item = self._items[index]
        labels = self._labels[(item.user, item.video)]
        start, stop = self._clip(index, item, labels)
        video = self.store.video_features(item.video, start, stop)
        history, history_video = self._history(item.user, item.video)
        context, own = self._history_in_context(item.user, item.video)
        return Sample(
            video=torch.from_numpy(video),
            labels=torch.from_numpy(labels[start:stop].copy()),
            history=history,
            history_video=history_video,
            rate=self.store.video_rate(item.video),
            user_id=item.user,
            video_id=item.video,
            offset=start,
            history_context=context,
            history_own=own,
        )

    # ------------------------------------------------------------------ internals
    def _segments_on(self, uid: str, video_id: str) -> list[tuple[float, float]]:
        """The user's highlight segments (seconds) on one of their annotated videos."""
        rec = self.store.user(uid)
        if video_id == rec.target_video:
            return [(float(s), float(e)) for s, e in rec.target_segments]
        return [(h.start, h.end) for h in rec.history if h.video_id == video_id]

    def _video_labels(self, uid: str, video_id: str) -> np.ndarray:
        """Step labels of the user on ``video_id`` (cached: they are read every epoch)."""
        key = (uid, video_id)
        if key not in self._labels:
            n = self.store.video_length(video_id)
            rate = self.store.video_rate(video_id)
            self._labels[key] = segments_to_step_labels(
                self._segments_on(uid, video_id), n, rate, self.min_fraction
            )
        return self._labels[key]

    def _clip(self, index: int, item: _Item, labels: np.ndarray) -> tuple[int, int]:
        """Step range of the item: the whole video (eval, short videos) or a clip with a positive."""
        n, clip = len(labels), self.clip_len
        if self.mode == "eval" or n <= clip:
            return 0, n
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if item.chunk < 0:  # last_video: a clip around a random positive step
            positives = np.flatnonzero(labels)
            p = int(positives[rng.integers(len(positives))])
            lo, hi = max(0, p - clip + 1), min(p, n - clip)
            start = int(rng.integers(lo, hi + 1))
            return start, start + clip
        base = min(item.chunk * clip, n - clip)  # a full-length clip holding the chunk's positives
        shifted = int(np.clip(base + rng.integers(-(clip // 2), clip // 2 + 1), 0, n - clip))
        start = shifted if labels[shifted : shifted + clip].any() else base
        return start, start + clip

    def _history_segments(self, uid: str, target_video: str) -> list[HistorySegment]:
        """The user's segments on videos other than ``target_video``, stored order, then capped.

        For the user's own target video this is exactly the stored history; for
        another of their videos (leave-one-out) the segments of the user's last video
        come first: stored histories are newest first (the PHD-GIFs CSV's order,
        docs/models.md, ``prnet_h5``) and the last video is the newest, so a cap keeps
        the most recent segments under either sampling.
        """
        rec = self.store.user(uid)
        segments = [h for h in rec.history if h.video_id != target_video]
        if target_video != rec.target_video:
            newest = [HistorySegment(rec.target_video, float(s), float(e))
                      for s, e in rec.target_segments]
            segments = newest + segments
        if self.history_order == "reversed":  # docs/models.md, prnet_h5: CSV order is newest first
            segments = segments[::-1]
        return segments if self.history_cap is None else segments[: self.history_cap]

    def _segment_features(self, video_id: str, first: int, stop: int) -> Tensor:
        key = (video_id, first, stop)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        feats = torch.from_numpy(self.store.video_features(video_id, first, stop))
        if self._cache_bytes + feats.nbytes <= HISTORY_CACHE_BYTES:
            self._cache[key] = feats
            self._cache_bytes += feats.nbytes
        return feats

    def _history(self, uid: str, target_video: str) -> tuple[list[Tensor], list[int]]:
        video_index: dict[str, int] = {}
        feats, owners = [], []
        for seg in self._history_segments(uid, target_video):
            n = self.store.video_length(seg.video_id)
            first, stop = segment_steps(seg.start, seg.end, self.store.video_rate(seg.video_id), n)
            feats.append(self._segment_features(seg.video_id, first, stop))
            owners.append(video_index.setdefault(seg.video_id, len(video_index)))
        return feats, owners

    def _history_in_context(
        self, uid: str, target_video: str
    ) -> tuple[list[Tensor] | None, list[tuple[int, int]] | None]:
        """Each history segment as a slice of its video with ``history_context`` steps each
        side (clipped to the video), and its own steps' (start, stop) in the slice."""
        k = self.history_context
        if k is None:
            return None, None
        slices, own = [], []
        for seg in self._history_segments(uid, target_video):
            n = self.store.video_length(seg.video_id)
            first, stop = segment_steps(seg.start, seg.end, self.store.video_rate(seg.video_id), n)
            lo, hi = max(0, first - k), min(n, stop + k)
            slices.append(self._segment_features(seg.video_id, lo, hi))
            own.append((first - lo, stop - lo))
        return slices, own

    def ground_truth(self, index: int) -> tuple[float, list[tuple[float, float]]]:
        """(duration_s, the user's highlight segments in seconds) of item ``index``'s video.

        What the ``"avhd"`` evaluation protocol builds its frame labels from
        (docs/evaluation.md); the segments are the user's own on that video.
        """
        item = self._items[index]
        return self.store.video_duration(item.video), self._segments_on(item.user, item.video)


def collate(samples: list[Sample], feature_dtype: torch.dtype | None = None,
            bucket_history: bool = False) -> Batch:
    """Pad a list of samples into a :class:`~highlightzoo.batch.Batch` with masks.

    Videos are zero-padded to the longest ``T``; histories to the most
    segments ``N`` and the longest segment ``L`` (``N = 0`` for the whole
    batch gives ``history`` of shape ``(B, 0, 1, D)``); ``history_video`` is
    -1 on padded segments. ``feature_dtype``: the padded feature tensors' dtype
    (float32 when None); bf16 under bf16 training halves the bytes to move to
    the GPU, and the cast costs nothing extra (it happens in the padding copy,
    in the DataLoader's workers). ``bucket_history``: ``N`` and ``L`` rounded up
    to powers of two, so batches fall into a few shapes, which a CUDA graph
    needs to be replayed (``TrainConfig.cuda_graphs``); every model's scores are
    invariant to padding (tests/test_models_common.py), so only the work grows.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    b = len(samples)
    d = samples[0].video.shape[-1]
    t_max = max(s.video.shape[0] for s in samples)
    n_max = max(len(s.history) for s in samples)
    l_max = max([h.shape[0] for s in samples for h in s.history], default=1)
    if bucket_history:
        n_max, l_max = power_of_two_at_least(n_max), power_of_two_at_least(l_max)
    dtype = feature_dtype or torch.float32
    video = torch.zeros(b, t_max, d, dtype=dtype)
    video_mask = torch.zeros(b, t_max, dtype=torch.bool)
    labels = torch.zeros(b, t_max)
    history = torch.zeros(b, n_max, l_max, d, dtype=dtype)
    history_mask = torch.zeros(b, n_max, l_max, dtype=torch.bool)
    history_video = torch.full((b, n_max), -1, dtype=torch.long)
    for i, s in enumerate(samples):
        t = s.video.shape[0]
        video[i, :t], video_mask[i, :t], labels[i, :t] = s.video, True, s.labels
        for j, (h, owner) in enumerate(zip(s.history, s.history_video, strict=True)):
            history[i, j, : h.shape[0]] = h
            history_mask[i, j, : h.shape[0]] = True
            history_video[i, j] = owner
    return Batch(
        video=video,
        video_mask=video_mask,
        labels=labels,
        history=history,
        history_mask=history_mask,
        history_video=history_video,
        rate=torch.tensor([s.rate for s in samples], dtype=torch.float32),
        user_ids=[s.user_id for s in samples],
        video_ids=[s.video_id for s in samples],
        offsets=torch.tensor([s.offset for s in samples], dtype=torch.long),
        **collate_history_context(samples, n_max, d, dtype, bucket_history),
    ).with_host_counts(
        [s.video.shape[0] for s in samples],
        max([owner + 1 for s in samples for owner in s.history_video], default=0),
    )


def power_of_two_at_least(n: int) -> int:
    """The smallest power of two >= ``n`` (0 for 0): a padded size's bucket."""
    return 0 if n <= 0 else 1 << (n - 1).bit_length()


def collate_history_context(samples: list[Sample], n_max: int, d: int,
                            dtype: torch.dtype = torch.float32,
                            bucket: bool = False) -> dict[str, Tensor]:
    """The Batch's ``history_context``/``_mask``/``_own`` fields (empty when no sample has them).

    Padded like ``history``: slices to the longest slice ``Lc`` (its power-of-two
    bucket with ``bucket``), segments to ``n_max``.
    """
    if all(s.history_context is None for s in samples):
        return {}
    if any(s.history_context is None or s.history_own is None for s in samples):
        raise ConfigError("collate: some samples have history_context and some do not")
    b = len(samples)
    lc_max = max([c.shape[0] for s in samples for c in s.history_context], default=1)
    lc_max = power_of_two_at_least(lc_max) if bucket else lc_max
    context = torch.zeros(b, n_max, lc_max, d, dtype=dtype)
    mask = torch.zeros(b, n_max, lc_max, dtype=torch.bool)
    own = torch.zeros(b, n_max, lc_max, dtype=torch.bool)
    for i, s in enumerate(samples):
        for j, (c, (first, stop)) in enumerate(zip(s.history_context, s.history_own, strict=True)):
            context[i, j, : c.shape[0]] = c
            mask[i, j, : c.shape[0]] = True
            own[i, j, first:stop] = True
    return {"history_context": context, "history_context_mask": mask, "history_context_own": own}
