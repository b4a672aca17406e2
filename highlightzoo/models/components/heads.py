"""Scoring heads: small MLPs that turn a feature vector into one score.

Shared by the segment baselines (PHD-GIFs, Video2GIF: 512 -> 128 -> 1 with
dropout 0.5) and by any new detector that needs a learned scorer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from highlightzoo.checks import int_at_least
from highlightzoo.errors import ConfigError
from highlightzoo.models.components.dropout import Dropout


def full_precision(x: Tensor) -> Tensor:
    """``x`` in float32 when it is a half type (bf16/fp16, from autocast); else unchanged."""
    return x.float() if x.is_floating_point() and x.element_size() < 4 else x


def full_precision_region(device_type: str) -> contextlib.AbstractContextManager:
    """A region where autocast is off, so its math runs in float32 under bf16 autocast.

    Without an enabled autocast it is a no-op context: entering ``torch.autocast`` costs
    host time on every call, which a batch-1 forward on a GPU is bound by
    (docs/performance.md, "Host time per step").
    """
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no per-device query; the context is then always entered
        enabled = True
    return torch.autocast(device_type, enabled=False) if enabled else contextlib.nullcontext()


class MLPHead(nn.Module):
    """``(..., in_dim) -> (..., 1)``: Linear + ReLU + dropout per hidden size, then Linear to 1.

    ``hidden=()`` gives a single linear layer. The last layer has no
    activation, so scores are unbounded (ranking losses only need order).
    """

    def __init__(
        self, in_dim: int, hidden: Sequence[int] = (512, 128), dropout: float = 0.5
    ) -> None:
        super().__init__()
        in_dim = int_at_least(in_dim, 1, "in_dim (the head's input width)")
        if not isinstance(hidden, Sequence) or isinstance(hidden, str):
            raise ConfigError(f"hidden must be a sequence of layer sizes, e.g. (512, 128) or (), "
                              f"got {hidden!r}")
        hidden = [int_at_least(size, 1, "hidden layer size") for size in hidden]
        layers: list[nn.Module] = []
        prev = in_dim
        for size in hidden:
            layers += [nn.Linear(prev, size), nn.ReLU(), Dropout(dropout)]
            prev = size
        layers.append(nn.Linear(prev, 1))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.hidden, self.dropout = in_dim, tuple(hidden), dropout

    def forward(self, x: Tensor) -> Tensor:
        """Hidden layers as the caller's autocast says; the last Linear in float32 (scores)."""
        *hidden_layers, last = self.net  # unpacked: slicing a Sequential builds a new one
        for layer in hidden_layers:
            x = layer(x)
        with full_precision_region(x.device.type):
            return last(x.to(last.weight.dtype))
