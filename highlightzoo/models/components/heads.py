"""Scoring heads: small MLPs that turn a feature vector into one score.

Shared by the segment baselines (PHD-GIFs, Video2GIF: 512 -> 128 -> 1 with
dropout 0.5) and by any new detector that needs a learned scorer.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


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
        return self.net(x)
