"""1-D layers on time-major activations: ``(B, T, C)`` in, ``(B, T', C')`` out, no copies.

PR-Net's U-net encoder keeps its activations time-major: everything around it
(per-step norms, cosines, dot products, masks) works along the channels. A ``Conv1d``
wants ``(B, C, T)``; given a transposed view it copies the input to channels-first and
returns channels-first memory, which the next layer copies back. Here a 1-D conv runs as a 2-D conv with a
``1 x k`` kernel on the same memory seen as a channels-last ``(B, C, 1, T)`` image,
a layout both oneDNN (CPU) and cuDNN take without converting (docs/performance.md,
"Time-major convolutions": on a CPU 1.3-1.45x faster than a channels-first ``Conv1d`` at
16 x 256 steps, about even at small shapes, and no copies around it).

- :func:`conv_steps`, :func:`max_pool_steps`: one conv / max-pool that way;
- :func:`unfolded_conv_steps`: a conv as one GEMM over unfolded windows (FCSN's fc6/fc7);
- :func:`set_kernel_layout`: a conv's kernel stored in the memory order its use wants
  (channels-last for cuDNN on these layouts; ``(I, k, O)`` for a conv run as a matmul).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def is_plain(conv: nn.Conv1d) -> bool:
    """Stride 1, no dilation or groups, integer zero padding: what the time-major paths handle."""
    return ((conv.stride, conv.dilation, conv.groups) == ((1,), (1,), 1)
            and not isinstance(conv.padding, str) and conv.padding_mode == "zeros")


#: memory orders of a conv kernel ``(O, I, k)``, as the permutation that makes it contiguous
KERNEL_LAYOUTS: dict[str, tuple[int, int, int]] = {
    "contiguous": (0, 1, 2),
    "channels_last": (0, 2, 1),  # (O, k, I): cuDNN's NHWC kernel for channels-last activations
    "matmul": (1, 2, 0),  # (I, k, O): FCSN's first conv as one matmul (first_conv_steps)
}


def set_kernel_layout(conv: nn.Conv1d, layout: str) -> bool:
    """Store ``conv.weight`` ``(O, I, k)`` in the memory order ``layout`` names
    (:data:`KERNEL_LAYOUTS`); the values and the shape stay. Returns whether it moved.

    Why: ``"channels_last"``: cuDNN convolves channels-last (NHWC) activations with a
    channels-last kernel; given a contiguous one it converts the kernel, and the kernel's
    gradient back, in every call (on an H100: FCSN at 8192-d spent 0.77 ms of a 5.6 ms
    bf16 step there, and the step replayed as a CUDA graph ran 1.02-1.09x faster with the
    kernels stored so; docs/performance.md, "GPU"). ``"matmul"``: the ``(I, k*O)`` matrix
    :func:`~highlightzoo.models.components.fcsn.first_conv_steps` multiplies by is then a
    view, not a copy (8192-d: a 6 MB copy per forward; 1.06x FCSN's forward on a CPU). A
    parameter's optimiser state must have its layout:
    :func:`highlightzoo.training.optim.match_state_layout`.
    """
    order = KERNEL_LAYOUTS[layout]
    weight = conv.weight
    if weight.permute(*order).is_contiguous():
        return False
    back = tuple(order.index(i) for i in range(3))
    weight.data = weight.data.permute(*order).contiguous().permute(*back)
    return True


def _as_image(h: Tensor) -> Tensor:
    """Time-major ``(B, T, C)`` as the channels-last image ``(B, C, 1, T)`` (a view)."""
    return rearrange(h, "b t c -> b c 1 t")


def _from_image(y: Tensor) -> Tensor:
    """A channels-last image ``(B, C, 1, T)`` back to time-major ``(B, T, C)`` (a view)."""
    return rearrange(y, "b c 1 t -> b t c")


def conv_steps(h: Tensor, conv: nn.Conv1d) -> Tensor:
    """``conv`` on time-major ``h`` (B, T, C_in) -> time-major (B, T', C_out).

    Equal to ``conv(h.transpose(1, 2)).transpose(1, 2)`` up to float rounding, run as
    a channels-last 2-D conv so neither the input nor the output changes layout. Convs
    other than :func:`is_plain` ones run as themselves.
    """
    if not is_plain(conv):
        return conv(rearrange(h, "b t c -> b c t")).transpose(1, 2)
    weight = rearrange(conv.weight, "o i k -> o i 1 k")
    return _from_image(F.conv2d(_as_image(h), weight, conv.bias, padding=(0, conv.padding[0])))


def max_pool_steps(h: Tensor) -> Tensor:
    """``F.max_pool1d(kernel 2, stride 2)`` along the time axis of time-major ``h`` (B, T, C).

    Run as a ``1 x 2`` 2-D max-pool on the channels-last view, so the output
    (B, T // 2, C) is time-major memory too.
    """
    return _from_image(F.max_pool2d(_as_image(h), (1, 2), (1, 2)))


class UnfoldedConv1d(nn.Conv1d):
    """A ``Conv1d`` (stride 1, zero padding) called on time-major steps: ``forward(h (B, T,
    D), then=None)`` -> (B, T', C) by :func:`unfolded_conv_steps`.

    The same parameters and state dict as ``nn.Conv1d``; being called as a module, its
    forward hooks fire, with the time-major input and output (FCSN's fc6 and fc7).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)

    def forward(self, h: Tensor, then: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return unfolded_conv_steps(h, self, then)


def unfolded_conv_steps(
    h: Tensor, conv: nn.Conv1d, then: Callable[[Tensor], Tensor] | None = None
) -> Tensor:
    """``then(conv(...))`` on time-major ``h`` (B, T, D) -> time-major (B, T', C), as one matmul.

    The windows of ``k`` steps are unfolded into rows of ``k*D`` and multiplied by
    the conv's weight viewed as (C, D*k): a plain GEMM over all B*T' steps. For
    FCSN's fc6/fc7 (k = 7 and 1 over 512 and 4,096 channels on few steps) this is a
    matmul that cuBLAS runs well; as convs, a GPU profile showed a slow kernel in
    their backward pass that this removed (docs/performance.md, "GPU").
    ``then``: an element-wise layer (FCSN's in-place ReLU) applied to the GEMM's own
    (B*T', C) output before it is viewed as (B, T', C): in place on that view, autograd
    would copy the whole map back and forth in the backward pass (``CopySlices``).
    """
    if not is_plain(conv):
        out = conv_steps(h, conv)
        return out if then is None else then(out)
    (k,), (pad,) = conv.kernel_size, conv.padding
    if k == 1:
        rows, weight = h.reshape(-1, h.shape[-1]), conv.weight[..., 0]
    else:
        padded = F.pad(h, (0, 0, pad, pad)) if pad else h  # a zero pad would still copy
        windows = padded.unfold(1, k, 1)  # (B, T', D, k), a view
        rows, weight = windows.reshape(-1, windows.shape[2] * k), conv.weight.flatten(1)
    out = F.linear(rows, weight, conv.bias)
    if then is not None:
        out = then(out)
    return out.view(h.shape[0], -1, out.shape[-1])
