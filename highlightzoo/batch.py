"""The one batch format and the one model output format of the zoo.

Every model consumes a :class:`Batch` and returns a :class:`ModelOutput`;
every loss is ``loss(output, batch) -> scalar``. The trainer, the evaluator and
the inference API only ever see these two types, never a model's internals.

Shapes (``B`` users, ``T`` video steps, ``N`` history segments, ``L`` steps per
history segment, ``D`` feature dim); padding is zero and masked out:

- ``video``         (B, T, D) float  target-video features
- ``video_mask``    (B, T)    bool   True on real steps
- ``labels``        (B, T)    float  1 on highlight steps, 0 elsewhere and on padding
- ``history``       (B, N, L, D) float  step features of each history segment
- ``history_mask``  (B, N, L) bool   True on real steps of real segments
- ``history_video`` (B, N)    long   index of the history *video* each segment
  comes from, local to the user (0..), -1 on padding; lets models that
  pool per history video (A-VHD) do so
- ``rate``          (B,)      float  feature steps per second of each target video
- ``user_ids``, ``video_ids``: one string per row
- ``offsets``       (B,)      long   first step of the clip inside its video (0 for whole videos)

Optional, only when the data pipeline is asked for history context
(``HighlightDataset(history_context=K)``, for models built with
``history_context="video:K"``; docs/history.md); ``None`` otherwise:

- ``history_context``      (B, N, Lc, D) float  each history segment's steps with up to
  ``K`` steps of its source video on each side (a slice of that video)
- ``history_context_mask`` (B, N, Lc) bool   True on real steps of the slice
- ``history_context_own``  (B, N, Lc) bool   True on the segment's own steps in the slice
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from highlightzoo.errors import ConfigError

#: the Batch tensors that :class:`HostCounts` describes
HOST_DESCRIBED = ("video_mask", "history_mask", "history_video", "rate", "offsets")
#: the values a :class:`HostCounts` holds or derives (what a model may read from it)
COUNT_VALUES = ("lengths", "longest", "one_length", "history_videos", "rates", "offsets")
#: the Batch tensors of feature vectors (``Batch.to(feature_dtype=...)`` casts these)
FEATURE_FIELDS = ("video", "history", "history_context")


@dataclass(frozen=True)
class HostCounts:
    """What the collate knew on the host about a batch, so that a model need not copy it
    back from the device (a device sync on a GPU).

    ``lengths``: real steps of each row (``video_mask`` is a prefix of each row), and
    derived from them ``longest`` (the largest) and ``one_length`` (all equal): a model
    that needs only these two reads them, so that batches of other lengths can share its
    CUDA graph (:mod:`highlightzoo.training.graphs`); ``history_videos``: 1 + the largest
    ``history_video`` index (0 without history), and no segment with real steps has index
    -1; ``rates``, ``offsets``: the values of ``rate`` (as stored, float32) and ``offsets``
    (0 when None). Valid only for the very tensors it
    was taken from, unchanged: it keeps them and their in-place version counters, and
    :meth:`Batch.host_counts` returns it only while the batch still holds those objects at
    those versions (a mask replaced or edited after the collate makes models read the
    device again, so a stale count can never be used).
    """

    lengths: tuple[int, ...]
    history_videos: int
    rates: tuple[float, ...]
    offsets: tuple[int, ...]
    tensors: tuple[Tensor | None, ...] = field(repr=False, compare=False)
    versions: tuple[int | None, ...] = field(repr=False, compare=False)

    @property
    def longest(self) -> int:
        """The largest of :attr:`lengths` (0 for no rows)."""
        return length_extent(self.lengths)[0]

    @property
    def one_length(self) -> bool:
        """Whether every row has the same length."""
        return length_extent(self.lengths)[1]

    @classmethod
    def of(
        cls, batch: Batch, lengths: Sequence[int], history_videos: int,
        rates: Sequence[float], offsets: Sequence[int],
    ) -> HostCounts | None:
        """The counts for ``batch`` now; None for inference-mode tensors (they keep no
        version counter, so a later in-place change could not be seen)."""
        tensors = tuple(getattr(batch, name) for name in HOST_DESCRIBED)
        if any(t is not None and t.is_inference() for t in tensors):
            return None
        return cls(tuple(int(n) for n in lengths), int(history_videos),
                   tuple(float(r) for r in rates), tuple(int(o) for o in offsets), tensors,
                   _versions(tensors))

    def describes(self, batch: Batch) -> bool:
        """True while ``batch`` holds the same tensor objects, not changed in place."""
        return all(getattr(batch, name) is t for name, t in zip(HOST_DESCRIBED, self.tensors,
                                                                 strict=True)) \
            and _versions(self.tensors) == self.versions

    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "versions"}

    def __setstate__(self, state: dict) -> None:
        # unpickled (e.g. from a DataLoader worker) with fresh tensors: re-read their versions
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "versions", _versions(self.tensors))


def length_extent(lengths: Sequence[int]) -> tuple[int, bool]:
    """``(longest, one_length)`` of rows' lengths: the largest (0 for no rows), and whether
    they are all equal. What a model that pads to the longest row needs to know."""
    return max(lengths, default=0), len(set(lengths)) <= 1


def _extent(mask: Tensor) -> int:
    """1 + the index of the last True in a 1-D ``mask`` (0 when none)."""
    real = mask.nonzero()
    return int(real.max()) + 1 if len(real) else 0


def _versions(tensors: tuple[Tensor | None, ...]) -> tuple[int | None, ...]:
    return tuple(None if t is None else t._version for t in tensors)


@dataclass
class Batch:
    """A padded batch of per-user samples (see module docstring for shapes).

    ``host``: optional :class:`HostCounts` from the collate (read it through
    :meth:`host_counts`, which checks that it still describes this batch).
    """

    video: Tensor
    video_mask: Tensor
    labels: Tensor
    history: Tensor
    history_mask: Tensor
    history_video: Tensor
    rate: Tensor
    user_ids: list[str] = field(default_factory=list)
    video_ids: list[str] = field(default_factory=list)
    offsets: Tensor | None = None
    history_context: Tensor | None = None
    history_context_mask: Tensor | None = None
    history_context_own: Tensor | None = None
    host: HostCounts | None = field(default=None, repr=False, compare=False)

    @property
    def history_segment_mask(self) -> Tensor:
        """(B, N) bool: True for real history segments (at least one real step)."""
        return self.history_mask.any(dim=-1)

    @property
    def lengths(self) -> Tensor:
        """(B,) long: number of real steps of each video."""
        return self.video_mask.sum(dim=1)

    def to(self, device: torch.device | str, non_blocking: bool = False,
           feature_dtype: torch.dtype | None = None) -> Batch:
        """Move every tensor to ``device`` (ids and valid host counts stay as they are).

        ``feature_dtype``: the video and history features in this dtype once moved
        (a no-op when the collate already gave them that dtype; otherwise a cast on the
        device), e.g. ``torch.bfloat16`` under bf16 autocast (``device.feature_dtype``).
        """

        def move(name: str, value: Tensor) -> Tensor:
            value = value.to(device, non_blocking=non_blocking)
            cast = feature_dtype is not None and name in FEATURE_FIELDS
            return value.to(feature_dtype) if cast else value

        return self._map(move)

    def pin_memory(self) -> Batch:
        """Every tensor in page-locked host memory, host counts kept. ``DataLoader(...,
        pin_memory=True)`` calls this; a pinned batch moves to a GPU with ``to(device,
        non_blocking=True)`` while the GPU still computes (from pageable memory it waits)."""
        return self._map(lambda name, value: value.pin_memory())

    def clone(self) -> Batch:
        """A copy with its own tensors (host counts kept)."""
        return self._map(lambda name, value: value.clone())

    def _map(self, fn: Callable[[str, Tensor], Tensor]) -> Batch:
        """A copy of this batch with ``fn(field name, tensor)`` for every tensor field, and
        the host counts carried over when they described this batch."""
        changed = {f.name: fn(f.name, getattr(self, f.name)) for f in fields(self)
                   if isinstance(getattr(self, f.name), Tensor)}
        counts = self.host_counts()
        out = replace(self, **changed, host=None)
        if counts is not None:
            out.host = HostCounts.of(out, counts.lengths, counts.history_videos, counts.rates,
                                     counts.offsets)
        return out

    def row(self, i: int) -> Batch:
        """Row ``i`` as a batch of its own, cut to its real extents (video steps, history
        segments and their steps): that sample as a model sees it alone, e.g. to check
        that a model's output does not depend on its batch. No host counts (a model
        reads the new masks)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} of a batch of {len(self)} rows")
        one = slice(i % len(self), i % len(self) + 1)
        steps = _extent(self.video_mask[one][0])
        segments = _extent(self.history_mask[one][0].any(dim=-1))
        seg_steps = _extent(self.history_mask[one][0, :segments].any(dim=0))
        cut = {"video": (one, slice(steps)), "video_mask": (one, slice(steps)),
               "labels": (one, slice(steps)),
               "history": (one, slice(segments), slice(seg_steps)),
               "history_mask": (one, slice(segments), slice(seg_steps)),
               "history_video": (one, slice(segments))}
        changed = {f.name: getattr(self, f.name)[cut.get(f.name, (one,))] for f in fields(self)
                   if isinstance(getattr(self, f.name), Tensor)}
        return replace(self, **changed, user_ids=self.user_ids[one],
                       video_ids=self.video_ids[one], host=None)

    def with_host_counts(self, lengths: Sequence[int], history_videos: int) -> Batch:
        """This batch (its tensors on the CPU) with :class:`HostCounts` taken now; the caller
        vouches for ``lengths`` and ``history_videos`` (the collate, which built the masks from
        the very same numbers). None under inference mode."""
        offsets = self.offsets.tolist() if self.offsets is not None else [0] * len(lengths)
        self.host = HostCounts.of(self, lengths, history_videos, self.rate.tolist(), offsets)
        return self

    def host_counts(self) -> HostCounts | None:
        """The collate's :class:`HostCounts` if they still describe this batch, else None."""
        return self.host if self.host is not None and self.host.describes(self) else None

    def __len__(self) -> int:
        return int(self.video.shape[0])


@dataclass
class ModelOutput:
    """What every model returns.

    ``scores`` (B, T): per-step highlight score, higher = more highlight; the
    only thing evaluation uses. Values on padded steps are meaningless.
    ``extras``: named tensors a loss or an explanation needs (for PR-Net
    ``l``, ``b``, ``attention``, ``user_weight``, ``generic_weight``; for
    2-class models ``logits`` (B, T, 2); for segment models
    ``segment_scores``/``segment_index``/``segment_mask``).
    ``probs`` (B, T) or None: the model's own per-step highlight probability,
    what the ``"avhd"`` evaluation protocol averages over 5-second windows
    (2-class models: softmax of class 1; PR-Net: ``l~/(l~+b~)``; ranking-only
    models: their raw score; docs/evaluation.md). None = the model defines
    none, and the ``"avhd"`` protocol refuses it. Built-in models give
    ``scores`` and ``probs`` in float32, also under bf16 autocast.
    """

    scores: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)
    probs: Tensor | None = None

    def require(self, key: str, who: str) -> Tensor:
        """Return ``extras[key]`` or raise a clear error naming the consumer."""
        if key not in self.extras:
            raise ConfigError(
                f"{who} needs the model output extra {key!r}, but the model only gives "
                f"{sorted(self.extras) or 'none'}; pick a loss that fits this model"
            )
        return self.extras[key]


def model_name(model: object) -> str:
    """The registered name of ``model`` (its card's), else its class name: for messages."""
    card = getattr(model, "card", None)
    return getattr(card, "name", None) or type(model).__name__


def check_output(output: object, batch: Batch, model: object) -> ModelOutput:
    """``output`` if it is what a model must return for ``batch``, else a :class:`ConfigError`
    naming the model and what is wrong: a :class:`ModelOutput` whose ``scores`` (and ``probs``,
    when given) are real-valued (B, T) tensors of the batch's shape.

    A model of the zoo always passes; a new detector that returns a tuple, (B,) scores or
    scores one step short failed inside a loss or the evaluation with an ``IndexError`` or an
    ``AttributeError``, and (B, 1) probabilities were broadcast over the video without a word.
    Shapes and dtypes only: nothing is read from the device.
    """
    if not isinstance(output, ModelOutput):
        raise ConfigError(f"model {model_name(model)!r} returned {type(output).__name__}, not "
                          "a ModelOutput (docs/new-detector.md)")
    want = tuple(batch.video_mask.shape)
    for key in ("scores", "probs"):
        value = getattr(output, key)
        if value is None and key == "probs":
            continue
        if not isinstance(value, Tensor) or value.dtype.is_complex or value.dtype == torch.bool:
            raise ConfigError(f"model {model_name(model)!r} returned {key} of type "
                              f"{type(value).__name__}{_dtype_of(value)}; ModelOutput.{key} "
                              f"must be a real-valued (B, T) tensor")
        if tuple(value.shape) != want:
            raise ConfigError(f"model {model_name(model)!r} returned {key} of shape "
                              f"{tuple(value.shape)} for a batch of (B, T) = {want}; one "
                              "value per step of each video is needed")
    return output


def _dtype_of(value: object) -> str:
    return f" ({value.dtype})" if isinstance(value, Tensor) else ""


def random_batch(
    batch_size: int = 2,
    steps: int = 32,
    feature_dim: int = 16,
    history_segments: int = 3,
    segment_steps: int = 4,
    *,
    seed: int = 0,
    lengths: list[int] | None = None,
    history_counts: list[int] | None = None,
    rate: float = 2.0,
) -> Batch:
    """A random, valid :class:`Batch` for tests and examples.

    ``lengths`` / ``history_counts`` give each row's real video length and
    number of history segments (default: all full); features are non-negative
    like ReLU features; each row has at least one positive step when it has
    any step. Deterministic in ``seed``.
    """
    g = torch.Generator().manual_seed(seed)
    lengths = lengths or [steps] * batch_size
    history_counts = history_counts if history_counts is not None else [history_segments] * batch_size
    t_max, n_max = max(lengths), max(max(history_counts), 0)
    video = torch.rand(batch_size, t_max, feature_dim, generator=g)
    video_mask = torch.arange(t_max)[None, :] < torch.tensor(lengths)[:, None]
    labels = (torch.rand(batch_size, t_max, generator=g) < 0.2).float()
    for i, t in enumerate(lengths):
        labels[i, torch.randint(0, t, (1,), generator=g)] = 1.0
    video, labels = video * video_mask[..., None], labels * video_mask
    history = torch.rand(batch_size, n_max, segment_steps, feature_dim, generator=g)
    seg_len = torch.randint(1, segment_steps + 1, (batch_size, n_max), generator=g)
    history_mask = torch.arange(segment_steps)[None, None, :] < seg_len[..., None]
    history_mask &= (torch.arange(n_max)[None, :] < torch.tensor(history_counts)[:, None])[..., None]
    history = history * history_mask[..., None]
    history_video = torch.where(
        history_mask.any(-1), torch.arange(n_max)[None, :] // 2, torch.full((), -1)
    ).expand(batch_size, n_max).clone()
    return Batch(
        video=video,
        video_mask=video_mask,
        labels=labels,
        history=history,
        history_mask=history_mask,
        history_video=history_video,
        rate=torch.full((batch_size,), float(rate)),
        user_ids=[f"u{i}" for i in range(batch_size)],
        video_ids=[f"v{i}" for i in range(batch_size)],
        offsets=torch.zeros(batch_size, dtype=torch.long),
    ).with_host_counts(lengths, int(history_video.max()) + 1 if history_video.numel() else 0)
