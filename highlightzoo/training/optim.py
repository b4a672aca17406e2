"""The trainer's optimiser: Adam, fused into one kernel per step where PyTorch offers it.

Why fused: the reference-width baselines hold 38M (FCSN) and 197M (A-VHD)
parameters, and PyTorch's default CPU Adam walks each of them in about ten
separate element-wise passes; the fused kernel does one pass and is ~6x faster
on a CPU (docs/performance.md). It computes the same update (Adam, Kingma & Ba
2015, with PyTorch's L2 ``weight_decay``) up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

FUSED_DEVICES = ("cpu", "cuda")


def can_fuse(params: list[nn.Parameter]) -> bool:
    """True when every parameter is a float tensor on a device with a fused Adam kernel."""
    return bool(params) and all(
        p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params
    )


def make_adam(
    params: Iterable[nn.Parameter],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    capturable: bool = False,
) -> torch.optim.Adam:
    """Adam over ``params`` (a dummy tensor when there are none: floors), fused when possible.

    ``capturable``: its step count lives on the parameters' device, so a CUDA graph can
    record the update (``TrainConfig.cuda_graphs``); the same update."""
    params = list(params) or [torch.zeros(1, requires_grad=True)]
    return torch.optim.Adam(
        params, lr=lr, betas=tuple(betas), weight_decay=weight_decay,
        fused=True if can_fuse(params) else None, capturable=capturable,
    )
