"""Where a model runs and in which precision: device names, the bf16 autocast switch and the
features' dtype that goes with it.

Shared by training, evaluation and inference (:class:`~highlightzoo.inference.Detector`),
so a device string or a ``precision`` means the same everywhere
(docs/training.md, docs/inference.md).
"""

from __future__ import annotations

import torch

from highlightzoo.errors import ConfigError

#: the ``precision`` values: float32 throughout, or bf16 autocast (CUDA only)
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: object, device: torch.device) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` and runs on ``device``, else a
    :class:`ConfigError` (an unknown value such as "fp16" would otherwise run in float32)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and device.type != "cuda":
        raise ConfigError("precision 'bf16' is bf16 autocast on CUDA only; use fp32 on CPU")
    return precision  # type: ignore[return-value]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; anything else as given, checked (a
    ``torch.device`` too; another type, such as a bare GPU index, is a :class:`ConfigError`)."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ConfigError(f"device must be a name such as 'cpu', 'cuda', 'cuda:1' or 'auto', or "
                          f"a torch.device, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r}: {err}") from None
    if resolved.type not in ("cpu", "cuda"):  # xpu, mps, meta: torch's errors mid-run before
        raise ConfigError(f"device {device!r}: highlightzoo runs on 'cpu' or 'cuda' (also "
                          f"'cuda:N' and 'auto'), not on {resolved.type!r} devices")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available here")
    if resolved.type == "cuda" and resolved.index is not None \
            and resolved.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r} asked for but this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s)")
    return resolved


def to_device_without_waiting(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor copied to ``device``; to a GPU through page-locked memory and
    ``non_blocking``, so the host does not wait for the device (a copy from pageable memory
    does: a sync in the middle of a step). PyTorch keeps the pinned buffer alive until the
    copy has run."""
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)


def feature_dtype(precision: str) -> torch.dtype | None:
    """The dtype the collate gives a batch's features (``collate(..., feature_dtype=...)``):
    bf16 under bf16 autocast, whose first matmul would cast them anyway, so half the bytes
    move to the device and the model reads (docs/performance.md); None (float32) otherwise."""
    return torch.bfloat16 if precision == "bf16" else None


def autocast(device: torch.device, precision: str, cache: bool = True) -> torch.autocast:
    """bf16 autocast on CUDA when ``precision == "bf16"``; a no-op context otherwise.

    ``cache=False``: no cache of the weights' bf16 copies, which a CUDA graph capture
    cannot keep (``TrainConfig.cuda_graphs``)."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16",
        cache_enabled=cache,
    )
