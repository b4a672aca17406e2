"""Scoring heads: small MLPs that turn a feature vector into one score.

Shared by the segment baselines (PHD-GIFs, Video2GIF: 512 -> 128 -> 1 with
dropout 0.5) and by any new detector that needs a learned scorer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def full_precision(x: Tensor) -> Tensor:
    """``x`` in float32 when it is a half type (bf16/fp16, from autocast); else unchanged."""
    return x.float() if x.is_floating_point() and x.element_size() < 4 else x


class MLPHead(nn.Module):
    """``(..., in_dim) -> (..., 1)``: Linear + ReLU + Dropout per hidden size, then Linear to 1.

    ``hidden=()`` gives a single linear layer. The last layer has no
    activation, so scores are unbounded (ranking losses only need order).
    """

    def __init__(
        self, in_dim: int, hidden: Sequence[int] = (512, 128), dropout: float = 0.5
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_dim
        for size in hidden:
            layers += [nn.Linear(prev, size), nn.ReLU(), nn.Dropout(dropout)]
            prev = size
        layers.append(nn.Linear(prev, 1))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.hidden, self.dropout = in_dim, tuple(hidden), dropout

    def forward(self, x: Tensor) -> Tensor:
        """Hidden layers as the caller's autocast says; the last Linear in float32 (scores)."""
        hidden = self.net[:-1](x)
        with torch.autocast(x.device.type, enabled=False):
            return self.net[-1](hidden.to(self.net[-1].weight.dtype))
