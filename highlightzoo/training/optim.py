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


def match_state_layout(optimizer: torch.optim.Optimizer) -> int:
    """Give every per-parameter state tensor (Adam's moments) its parameter's memory layout;
    returns how many moved.

    Why: a checkpoint keeps its tensors' strides, and a parameter's layout can depend on
    the device it trains on (FCSN's conv kernels are channels-last on a GPU:
    :func:`~highlightzoo.models.components.steps.set_kernel_layout`). PyTorch's fused and
    foreach Adam walk parameter and state as flat memory, so a state of another layout
    than its parameter is updated element-for-wrong-element, silently (checked on a CPU
    in tests/test_performance.py). Call after ``optimizer.load_state_dict``.
    """
    moved = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if (torch.is_tensor(value) and value.shape == param.shape
                        and value.stride() != param.stride()):
                    state[key] = torch.empty_like(param, dtype=value.dtype,
                                                  device=value.device).copy_(value)
                    moved += 1
    return moved
