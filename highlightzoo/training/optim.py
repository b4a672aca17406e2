"""The trainer's optimiser: Adam, fused into one kernel per step where PyTorch offers it.

Why fused: the reference-width baselines hold 38M (FCSN) and 197M (A-VHD)
parameters, and PyTorch's default CPU Adam walks each of them in about ten
separate element-wise passes; the fused kernel does one pass and is ~6x faster
on a CPU (docs/performance.md). It computes the same update (Adam, Kingma & Ba
2015, with PyTorch's L2 ``weight_decay``) up to float rounding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from highlightzoo.errors import CheckpointError
from highlightzoo.shapes import MappingOf, shape_problem

FUSED_DEVICES = ("cpu", "cuda")

#: Keys of a parameter group that say how this process runs the update, not what the update
#: is: a resume on another device or with --cuda-graphs keeps its own (torch's
#: ``load_state_dict`` would take the saved ones, e.g. a non-capturable Adam under CUDA graphs).
IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")
_SAVED_SHAPE = {"state": MappingOf(MappingOf(torch.Tensor)), "param_groups": [{"params": [int]}]}


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


def optimizer_state_problem(saved: Any, optimizer: torch.optim.Optimizer,
                            stateful: list[int] | None = None) -> str | None:
    """What keeps ``saved`` (an optimiser's ``state_dict``) from continuing ``optimizer``, or None.

    The groups must hold as many parameters and the same update rule (every key but the
    parameters and :data:`IMPLEMENTATION_KEYS`: the rate, betas, weight decay); every
    parameter's state must have the keys of the others and float tensors of its parameter's
    shape (0-d: counters); with ``stateful`` (the parameters that had state when it was saved,
    which ``last.pt`` records) exactly those must have state: a parameter's deleted moments
    cannot otherwise be told from a parameter that never had a gradient. Anything else would
    continue another optimisation, silently.
    """
    problem = shape_problem(saved, _SAVED_SHAPE, "optimizer_state")
    if problem:
        return problem
    groups, saved_groups = optimizer.param_groups, saved["param_groups"]
    if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in groups]:
        return (f"optimizer_state has groups of {[len(g['params']) for g in saved_groups]} "
                f"parameters; the run's model has {[len(g['params']) for g in groups]}")
    for i, (own, theirs) in enumerate(zip(groups, saved_groups, strict=True)):
        rule = sorted(k for k in {*own, *theirs} if k not in ("params", *IMPLEMENTATION_KEYS)
                      and theirs.get(k) != own.get(k))
        if rule:
            return "optimizer_state.param_groups[{}] differs from the run's config: {}".format(
                i, ", ".join(f"{k}={theirs.get(k)!r} (run: {own.get(k)!r})" for k in rule))
    params = dict(zip((i for g in saved_groups for i in g["params"]),
                      (p for g in groups for p in g["params"]), strict=True))
    usual = Counter(frozenset(entry) for entry in saved["state"].values()).most_common(1)
    for index, entry in saved["state"].items():
        where = f"optimizer_state.state[{index!r}]"
        if index not in params:
            return f"{where} belongs to no parameter of the groups"
        if set(entry) != usual[0][0]:
            return f"{where} holds {sorted(entry)}, the other parameters {sorted(usual[0][0])}"
        for name, value in entry.items():
            if not value.is_floating_point() or (value.dim() and value.shape != params[index].shape):
                return (f"{where}[{name!r}] is a {value.dtype} tensor of shape {tuple(value.shape)}; "
                        f"its parameter is float of shape {tuple(params[index].shape)}")
    if stateful is not None and sorted(saved["state"]) != sorted(stateful):
        lost = sorted(set(stateful) - set(saved["state"]))
        return (f"optimizer_state.state has moments for parameters {sorted(saved['state'])}, "
                f"it was saved with {sorted(stateful)}" + (f" (missing: {lost})" if lost else ""))
    return None


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: Any, *, where: str,
                         stateful: list[int] | None = None) -> None:
    """Continue ``optimizer`` from ``saved`` (checked by :func:`optimizer_state_problem`, else a
    :class:`CheckpointError` naming ``where``), keeping this process's
    :data:`IMPLEMENTATION_KEYS` and each parameter's memory layout (:func:`match_state_layout`)."""
    problem = optimizer_state_problem(saved, optimizer, stateful)
    if problem:
        raise CheckpointError(f"checkpoint {where!r} cannot be resumed: {problem}")
    own = [{k: g[k] for k in IMPLEMENTATION_KEYS if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, flags in zip(optimizer.param_groups, own, strict=True):
        group.update(flags)
    match_state_layout(optimizer)  # saved where the weights had another layout (GPU/CPU)
