"""Per-user samples of a feature store, and the collate function that makes a Batch.

One item per user of a split: the target video's step features and labels,
and the step features of the user's history segments.

- ``mode="train"``: a clip of ``clip_len`` steps that contains at least one
  positive step (paper Sec. 3.4: "cut a video into fixed-length segments (256
  frames) and only train those segments that contain highlight frames"). The
  clip is drawn from ``(seed, epoch, item index)`` only, so it is the same in
  any process and under any sampler; call :meth:`HighlightDataset.set_epoch`
  each epoch (as with ``DistributedSampler``) before creating the iterator. A
  video no longer than the clip is returned whole.
- ``mode="eval"``: the whole target video (offset 0).
- ``history_cap``: ``None`` keeps every history segment, ``0`` none (cold
  start), ``k`` the first ``k`` segments in stored order (for an imported
  PHD-GIFs CSV: the CSV's row order).

Users whose target video has no positive step after label conversion are
never dropped silently: :attr:`HighlightDataset.report` lists them; they are
left out of training (a clip could not contain a positive) and kept in
evaluation, where metrics skip and count them.
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
from highlightzoo.data.labels import segment_steps, segments_to_step_labels
from highlightzoo.data.store import FeatureStore
from highlightzoo.errors import ConfigError


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


@dataclass
class DatasetReport:
    """Users of the split, and those whose target has no positive step."""

    split: str
    n_users: int = 0
    no_positive: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"split {self.split!r}: {self.n_users} users, {len(self.no_positive)} without a "
            f"positive step after label conversion"
        )


class HighlightDataset(Dataset):
    """A torch Dataset of per-user :class:`Sample` s from a :class:`FeatureStore`."""

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
    ) -> None:
        if mode not in ("train", "eval"):
            raise ConfigError(f"mode must be 'train' or 'eval', got {mode!r}")
        if history_cap is not None and history_cap < 0:
            raise ConfigError(f"history_cap must be None or >= 0, got {history_cap}")
        if clip_len < 1:
            raise ConfigError(f"clip_len must be >= 1, got {clip_len}")
        store = store_or_path if isinstance(store_or_path, FeatureStore) else None
        self.store = store or FeatureStore.open(store_or_path)
        self.split, self.mode = split, mode
        self.history_cap, self.clip_len = history_cap, clip_len
        self.min_fraction, self.seed, self.epoch = min_fraction, seed, 0
        self.report = DatasetReport(split)
        self._items: list[str] = []
        self._labels: dict[str, np.ndarray] = {}
        for uid in self.store.users(split):
            labels = self._target_labels(uid)
            self.report.n_users += 1
            if labels.any():
                self._items.append(uid)
            else:
                self.report.no_positive.append(uid)
                if mode == "train":
                    continue
                self._items.append(uid)
            self._labels[uid] = labels

    @property
    def user_ids(self) -> list[str]:
        """User id of each item, in item order."""
        return list(self._items)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose clips ``__getitem__`` draws (train mode)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Sample:
        uid = self._items[index]
        rec = self.store.user(uid)
        labels = self._labels[uid]
        start, stop = self._clip(index, labels)
        video = self.store.video_features(rec.target_video, start, stop)
        history, history_video = self._history(uid)
        return Sample(
            video=torch.from_numpy(video),
            labels=torch.from_numpy(labels[start:stop].copy()),
            history=history,
            history_video=history_video,
            rate=self.store.video_rate(rec.target_video),
            user_id=uid,
            video_id=rec.target_video,
            offset=start,
        )

    # ------------------------------------------------------------------ internals
    def _target_labels(self, uid: str) -> np.ndarray:
        rec = self.store.user(uid)
        n = self.store.video_length(rec.target_video)
        rate = self.store.video_rate(rec.target_video)
        return segments_to_step_labels(rec.target_segments, n, rate, self.min_fraction)

    def _clip(self, index: int, labels: np.ndarray) -> tuple[int, int]:
        """Step range of the item: a clip around a random positive step, or everything."""
        n = len(labels)
        if self.mode == "eval" or n <= self.clip_len:
            return 0, n
        rng = np.random.default_rng([self.seed, self.epoch, index])
        positives = np.flatnonzero(labels)
        p = int(positives[rng.integers(len(positives))])
        lo, hi = max(0, p - self.clip_len + 1), min(p, n - self.clip_len)
        start = int(rng.integers(lo, hi + 1))
        return start, start + self.clip_len

    def _history(self, uid: str) -> tuple[list[Tensor], list[int]]:
        segments = self.store.user(uid).history
        if self.history_cap is not None:
            segments = segments[: self.history_cap]
        video_index: dict[str, int] = {}
        feats, owners = [], []
        for seg in segments:
            n = self.store.video_length(seg.video_id)
            first, stop = segment_steps(seg.start, seg.end, self.store.video_rate(seg.video_id), n)
            feats.append(torch.from_numpy(self.store.video_features(seg.video_id, first, stop)))
            owners.append(video_index.setdefault(seg.video_id, len(video_index)))
        return feats, owners


def collate(samples: list[Sample]) -> Batch:
    """Pad a list of samples into a :class:`~highlightzoo.batch.Batch` with masks.

    Videos are zero-padded to the longest ``T``; histories to the most
    segments ``N`` and the longest segment ``L`` (``N = 0`` for the whole
    batch gives ``history`` of shape ``(B, 0, 1, D)``); ``history_video`` is
    -1 on padded segments.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    b = len(samples)
    d = samples[0].video.shape[-1]
    t_max = max(s.video.shape[0] for s in samples)
    n_max = max(len(s.history) for s in samples)
    l_max = max([h.shape[0] for s in samples for h in s.history], default=1)
    video = torch.zeros(b, t_max, d)
    video_mask = torch.zeros(b, t_max, dtype=torch.bool)
    labels = torch.zeros(b, t_max)
    history = torch.zeros(b, n_max, l_max, d)
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
    )
