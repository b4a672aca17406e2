"""Element-wise dropout whose CPU mask costs a quarter of torch's.

Dropout (Srivastava et al., JMLR 2014) zeroes each element with probability ``p`` and
scales the survivors by ``1 / (1 - p)``, so the expected output is the input. torch's CPU
dropout draws its mask with ``bernoulli_``, about 4x slower than drawing uniforms
(docs/performance.md, "Dropout on a CPU"): at the quick preset's Video2GIF step it was
almost half the step. On a CPU this module keeps an element where a float32 uniform
``u`` in [0, 1) has ``u >= p``: the same Bernoulli(1 - p) mask (exactly, at ``p = 0.5``;
to the uniform's 2^-24 grid otherwise), from other draws of the same generator. Off a
CPU it is torch's fused dropout, unchanged (its mask is cheap there, and CUDA graphs
capture it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from highlightzoo.checks import is_real
from highlightzoo.errors import ConfigError


def check_dropout_p(p: float) -> float:
    """``p`` as a float in [0, 1], or a ConfigError naming it (a string, a bool or NaN too:
    torch's own dropout modules take NaN and fail at the first forward)."""
    ok = is_real(p) and 0.0 <= p <= 1.0
    if not ok:
        raise ConfigError(f"dropout probability must be a number in [0, 1], got {p!r}")
    return float(p)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``x`` with each element zeroed with probability ``p`` and the rest scaled by
    ``1 / (1 - p)`` when ``training``; ``x`` itself otherwise."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p == 1.0:
        return F.dropout(x, p, training=True)
    # float32 uniforms whatever x's dtype: a bf16 uniform's coarse grid would bias the mask.
    # The mask is built in place in the uniforms' memory (for float32 x: no other allocation).
    uniform = torch.rand(x.shape, dtype=torch.float32, device=x.device)
    return x * uniform.ge_(p).to(x.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` (no parameters, same state dict) with the CPU mask
    drawn as uniforms (module docstring)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = check_dropout_p(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
