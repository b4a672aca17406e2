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
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor


@dataclass
class Batch:
    """A padded batch of per-user samples (see module docstring for shapes)."""

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

    @property
    def history_segment_mask(self) -> Tensor:
        """(B, N) bool: True for real history segments (at least one real step)."""
        return self.history_mask.any(dim=-1)

    @property
    def lengths(self) -> Tensor:
        """(B,) long: number of real steps of each video."""
        return self.video_mask.sum(dim=1)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Move every tensor to ``device`` (ids stay as they are)."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)

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
    """

    scores: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    def require(self, key: str, who: str) -> Tensor:
        """Return ``extras[key]`` or raise a clear error naming the consumer."""
        if key not in self.extras:
            from highlightzoo.errors import ConfigError

            raise ConfigError(
                f"{who} needs the model output extra {key!r}, but the model only gives "
                f"{sorted(self.extras) or 'none'}; pick a loss that fits this model"
            )
        return self.extras[key]
