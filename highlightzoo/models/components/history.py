"""History-segment embedding: one vector ``h~_j`` per history segment of a user.

PR-Net (Sec. 3.2): ``h~_j`` = mean over the steps of segment ``j`` of the
encoder M applied to that segment's features, with the *same* encoder as the
target video. Padded segments get a zero vector and are masked downstream.

The paper does not say whether M sees a history segment alone or inside its
source video. ``history_context`` (:func:`parse_history_context`) chooses:
``"segment"`` encodes the segment alone (the default); ``"video:K"`` encodes
it with up to ``K`` steps of its source video on each side and averages the
output over the segment's own steps only, so that ``h~_j`` is computed under
the same conditions as the target frames ``s_i`` (docs/history.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn

from highlightzoo.checks import flag, int_at_least
from highlightzoo.errors import ConfigError


def parse_history_context(value: str) -> int | None:
    """``"segment"`` -> None (segments encoded alone); ``"video:K"`` -> ``K`` (>= 0) steps of
    source-video context on each side of each history segment."""
    if value == "segment":
        return None
    match = re.fullmatch(r"video:(\d+)", str(value))
    if match is None:
        raise ConfigError(
            f"history_context must be 'segment' or 'video:K' with K >= 0 steps, got {value!r}"
        )
    return int(match.group(1))


def masked_mean(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Mean of ``x`` over ``dim`` counting only ``mask`` True entries; 0 where none.

    ``mask`` has ``x``'s shape without the trailing feature axis.
    """
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)


#: price of one more encoder call when grouping segments by length, in padded segment-steps:
#: on a CPU any value from 0 to 512 gave the same PR-Net training step on the quick world
#: (1.4-1.5x faster than one call over all segments; docs/performance.md).
CALL_COST_STEPS = 256
#: device types on which segments are grouped by length by default. Elsewhere (a GPU, where
#: a step is bound by kernel launches and device syncs) every segment slot is encoded in
#: one call, padding slots included, which needs no host copy: the step never syncs.
GROUP_ON = ("cpu",)


def length_groups(extents: Sequence[int], call_cost: int, multiple: int = 1) -> list[tuple[int, list[int]]]:
    """Group segments into encoder calls: ``[(length, indices), ...]``, fewest padded steps.

    ``extents[i]``: steps the encoder must see for segment ``i`` (0: skip it). Each call
    encodes its segments cut to their longest extent; its cost is ``count x padded length``
    (lengths rounded up to ``multiple``, the encoder's own padding) plus ``call_cost`` for
    the call itself. Groups are runs of the segments sorted by extent, chosen by dynamic
    programming over the distinct padded lengths (exactly minimal). Indices ascend within
    a group; groups ascend by length.
    """
    by_length: dict[int, list[int]] = {}
    for i, e in enumerate(extents):
        if e > 0:
            by_length.setdefault(-(-e // multiple) * multiple, []).append(i)
    lengths = sorted(by_length)
    counts = [len(by_length[n]) for n in lengths]
    best = [0.0] + [float("inf")] * len(lengths)  # best[j]: cost of the first j lengths
    cut = [0] * (len(lengths) + 1)
    for j in range(1, len(lengths) + 1):
        members = 0
        for i in range(j, 0, -1):  # group = lengths[i-1 .. j-1], padded to lengths[j-1]
            members += counts[i - 1]
            cost = best[i - 1] + members * lengths[j - 1] + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    groups, j = [], len(lengths)
    while j > 0:
        i = cut[j]
        idx = sorted(k for n in lengths[i:j] for k in by_length[n])
        groups.append((max(extents[k] for k in idx), idx))
        j = i
    return groups[::-1]


class HistoryEmbedding(nn.Module):
    """Encode each history segment with ``encoder`` and average its own steps.

    ``history`` (B, N, L, d), ``history_mask`` (B, N, L) -> (B, N, width).
    ``own_mask`` (B, N, L), default ``history_mask``: the steps averaged into
    the embedding; the encoder sees every ``history_mask`` step, so steps in
    ``history_mask`` but not in ``own_mask`` act as context only (history
    context ``video:K``). Two ways to encode, equal up to float rounding (tested):

    - grouped by length (``group_by_length``; the default on a CPU): only segments with
      an own step are encoded, those of similar length together, cut to their longest
      (:func:`length_groups` with ``call_cost``; history segments are short and uneven,
      ~10 steps on average padded to ~46 in the synthetic worlds' batches). Costs one
      host copy (the segment lengths).
    - every slot at once (the default elsewhere): all ``B x N`` slots at the padded
      length, padding slots giving zeros; no host copy, so no device sync.

    Either way in chunks of at most ``chunk_segments`` segments and ``chunk_steps``
    padded steps, so a user with thousands of segments stays within memory. Each
    segment is encoded on its own (its own padding mask), so its embedding does not
    depend on what else is in the batch.
    """

    def __init__(
        self, encoder: nn.Module, chunk_segments: int = 2048, chunk_steps: int = 65536,
        group_by_length: bool | None = None, call_cost: int = CALL_COST_STEPS,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise ConfigError(f"encoder must be an nn.Module (features, mask -> steps), got "
                              f"{type(encoder).__name__}")
        self.encoder = encoder
        self.chunk_segments = int_at_least(chunk_segments, 1, "chunk_segments")
        self.chunk_steps = int_at_least(chunk_steps, 1, "chunk_steps")
        self.group_by_length = flag(group_by_length, "group_by_length", allow_none=True)
        self.call_cost = int_at_least(call_cost, 0, "call_cost (steps)")

    def forward(self, history: Tensor, history_mask: Tensor, own_mask: Tensor | None = None) -> Tensor:
        batch, segments, steps = history.shape[:3]
        own = history_mask if own_mask is None else own_mask & history_mask
        flat = rearrange(history, "b n l d -> (b n) l d")
        flat_mask = rearrange(history_mask, "b n l -> (b n) l")
        flat_own = rearrange(own, "b n l -> (b n) l")
        width = _out_width(self.encoder, history.shape[-1])
        grouped = self.group_by_length
        if grouped is None:
            grouped = history.device.type in GROUP_ON
        if not flat.shape[0] or not steps:
            out = history.new_zeros(batch * segments, width)
        elif grouped:
            out = self._grouped(flat, flat_mask, flat_own, width)
        else:
            per_chunk = max(1, min(self.chunk_segments, self.chunk_steps // steps))
            out = torch.cat([
                masked_mean(self.encoder(flat[i : i + per_chunk], flat_mask[i : i + per_chunk]),
                            flat_own[i : i + per_chunk], dim=1)
                for i in range(0, flat.shape[0], per_chunk)
            ])
        return rearrange(out, "(b n) w -> b n w", b=batch)

    def _grouped(self, flat: Tensor, flat_mask: Tensor, flat_own: Tensor, width: int) -> Tensor:
        """(B*N, w) embeddings, the real segments encoded in groups of similar length."""
        # steps to encode per segment: up to its last real step, 0 without an own step
        position = torch.arange(1, flat.shape[1] + 1, device=flat.device)
        extent = torch.where(flat_mask, position, 0).amax(dim=-1) * flat_own.any(dim=-1)
        out = flat.new_zeros(flat.shape[0], width)
        for length, members in length_groups(extent.tolist(), self.call_cost,
                                             _step_multiple(self.encoder)):
            per_chunk = max(1, min(self.chunk_segments, self.chunk_steps // length))
            rows = torch.tensor(members, device=flat.device)
            for start in range(0, len(members), per_chunk):
                idx = rows[start : start + per_chunk]
                encoded = self.encoder(flat[idx, :length], flat_mask[idx, :length])  # (k, l, w)
                out = out.index_copy(0, idx, masked_mean(encoded, flat_own[idx, :length], dim=1))
        return out


def _step_multiple(encoder: nn.Module) -> int:
    """The multiple an encoder pads its input length to (its ``step_multiple``), else 1."""
    return int(getattr(encoder, "step_multiple", 1))


def _out_width(encoder: nn.Module, in_dim: int) -> int:
    """Output width of a zoo encoder (``.width``), else its input width."""
    return int(getattr(encoder, "width", in_dim))


def mean_history(embeddings: Tensor, segment_mask: Tensor) -> Tensor:
    """(B, N, w) + (B, N) -> (B, w): mean of the real history embeddings (holistic preference
    of PR-Net_meanU); a zero vector for a user with no history."""
    return masked_mean(embeddings, segment_mask, dim=1)
