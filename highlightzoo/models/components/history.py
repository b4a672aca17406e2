"""History-segment embedding: one vector ``h~_j`` per history segment of a user.

PR-Net (Sec. 3.2): ``h~_j`` = mean over the steps of segment ``j`` of the
encoder M applied to that segment's features, with the *same* encoder as the
target video. Padded segments get a zero vector and are masked downstream.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn


def masked_mean(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Mean of ``x`` over ``dim`` counting only ``mask`` True entries; 0 where none.

    ``mask`` has ``x``'s shape without the trailing feature axis.
    """
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)


class HistoryEmbedding(nn.Module):
    """Encode each history segment with ``encoder`` and average its real steps.

    ``history`` (B, N, L, d), ``history_mask`` (B, N, L) -> (B, N, width).
    Only real segments are encoded (padding segments cost nothing), in chunks
    of ``chunk_segments`` so that a user with thousands of segments stays
    within memory. Each segment is encoded on its own (its own padding mask),
    so a segment's embedding does not depend on what else is in the batch.
    """

    def __init__(self, encoder: nn.Module, chunk_segments: int = 2048) -> None:
        super().__init__()
        self.encoder = encoder
        self.chunk_segments = chunk_segments

    def forward(self, history: Tensor, history_mask: Tensor) -> Tensor:
        batch, segments = history.shape[:2]
        flat = rearrange(history, "b n l d -> (b n) l d")
        flat_mask = rearrange(history_mask, "b n l -> (b n) l")
        real = flat_mask.any(dim=-1)
        real_idx = real.nonzero().squeeze(-1)
        width = _out_width(self.encoder, history.shape[-1])
        out = history.new_zeros(batch * segments, width)
        for start in range(0, real_idx.numel(), self.chunk_segments):
            idx = real_idx[start : start + self.chunk_segments]
            encoded = self.encoder(flat[idx], flat_mask[idx])  # (k, L, width)
            out = out.index_copy(0, idx, masked_mean(encoded, flat_mask[idx], dim=1))
        return rearrange(out, "(b n) w -> b n w", b=batch)


def _out_width(encoder: nn.Module, in_dim: int) -> int:
    """Output width of a zoo encoder (``.width``), else its input width."""
    return int(getattr(encoder, "width", in_dim))


def mean_history(embeddings: Tensor, segment_mask: Tensor) -> Tensor:
    """(B, N, w) + (B, N) -> (B, w): mean of the real history embeddings (holistic preference
    of PR-Net_meanU); a zero vector for a user with no history."""
    return masked_mean(embeddings, segment_mask, dim=1)
