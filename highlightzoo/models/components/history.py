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

from einops import rearrange
from torch import Tensor, nn

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


class HistoryEmbedding(nn.Module):
    """Encode each history segment with ``encoder`` and average its own steps.

    ``history`` (B, N, L, d), ``history_mask`` (B, N, L) -> (B, N, width).
    ``own_mask`` (B, N, L), default ``history_mask``: the steps averaged into
    the embedding; the encoder sees every ``history_mask`` step, so steps in
    ``history_mask`` but not in ``own_mask`` act as context only (history
    context ``video:K``). Only segments with an own step are encoded (padding
    segments cost nothing), in chunks of at most ``chunk_segments`` segments
    and ``chunk_steps`` padded steps, so a user with thousands of segments stays
    within memory. Each segment is encoded on its own (its own padding mask),
    so its embedding does not depend on what else is in the batch.
    """

    def __init__(
        self, encoder: nn.Module, chunk_segments: int = 2048, chunk_steps: int = 65536
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.chunk_segments, self.chunk_steps = chunk_segments, chunk_steps

    def forward(self, history: Tensor, history_mask: Tensor, own_mask: Tensor | None = None) -> Tensor:
        batch, segments, steps = history.shape[:3]
        own = history_mask if own_mask is None else own_mask & history_mask
        flat = rearrange(history, "b n l d -> (b n) l d")
        flat_mask = rearrange(history_mask, "b n l -> (b n) l")
        flat_own = rearrange(own, "b n l -> (b n) l")
        real_idx = flat_own.any(dim=-1).nonzero().squeeze(-1)
        width = _out_width(self.encoder, history.shape[-1])
        out = history.new_zeros(batch * segments, width)
        per_chunk = max(1, min(self.chunk_segments, self.chunk_steps // max(steps, 1)))
        for start in range(0, real_idx.numel(), per_chunk):
            idx = real_idx[start : start + per_chunk]
            encoded = self.encoder(flat[idx], flat_mask[idx])  # (k, L, width)
            out = out.index_copy(0, idx, masked_mean(encoded, flat_own[idx], dim=1))
        return rearrange(out, "(b n) w -> b n w", b=batch)


def _out_width(encoder: nn.Module, in_dim: int) -> int:
    """Output width of a zoo encoder (``.width``), else its input width."""
    return int(getattr(encoder, "width", in_dim))


def mean_history(embeddings: Tensor, segment_mask: Tensor) -> Tensor:
    """(B, N, w) + (B, N) -> (B, w): mean of the real history embeddings (holistic preference
    of PR-Net_meanU); a zero vector for a user with no history."""
    return masked_mean(embeddings, segment_mask, dim=1)
