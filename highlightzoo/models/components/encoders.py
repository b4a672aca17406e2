"""Frame encoders: features (B, T, d) + mask (B, T) -> embeddings (B, T, width).

- :class:`UNetEncoder1d` is PR-Net's encoder M (Eq. 1, Fig. 3): a 1-D U-net
  over time that gives each step short- and long-range context.
- :class:`ResidualFrameEncoder` is the PR-Net_residual ablation: a per-step
  residual MLP, no temporal context, more parameters than M.

Both take any ``T >= 1`` and a padding mask, and give every real step the same
embedding whether its video is alone or padded in a batch (padded steps are
zeroed before every convolution, so they look exactly like the zero padding a
convolution adds at the end of a lone video). Padded outputs are zero.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from highlightzoo.checks import int_at_least
from highlightzoo.errors import ConfigError
from highlightzoo.models.components.steps import conv_steps, max_pool_steps, set_kernel_layout

#: the deepest U-net (inputs are padded to a multiple of 2**depth steps: 65,536 at 16)
MAX_DEPTH = 16


def _dims(in_dim: int, width: int | None) -> tuple[int, int]:
    """``(in_dim, width)`` checked, ``width`` None meaning ``in_dim`` (the paper's setting);
    0 is refused, not read as None."""
    in_dim = int_at_least(in_dim, 1, "in_dim (the width of one input step)")
    width = int_at_least(width, 1, "width (encoder channels)", allow_none=True)
    return in_dim, in_dim if width is None else width


class _ConvBlock(nn.Module):
    """Conv1d (``width`` -> ``width``, 'same' padding) + optional ReLU on time-major steps.

    The output is zero on padded steps; ``mask_input`` also zeroes them in the
    input (needed where the input can be non-zero there: after the input
    projection's bias, after an up-sampled coarse step spills onto padding).
    """

    def __init__(
        self, width: int, kernel_size: int, activation: bool = True, mask_input: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2)
        # the kernel in (O, k, I) memory: oneDNN returns its gradient in that layout for
        # time-major (channels-last) activations, so autograd accumulates it into .grad without
        # a copy (PR-Net at 4,096-d allocated 2.6 GiB less per step on a CPU, at the same or
        # slightly better speed; docs/performance.md). Moves and casts keep the layout.
        set_kernel_layout(self.conv, "channels_last")
        self.activation, self.mask_input = activation, mask_input

    def forward(self, h: Tensor, keep: Tensor) -> Tensor:
        """``h`` (B, T, width), ``keep`` (B, T, 1): 1.0 on real steps, 0.0 on padding."""
        y = conv_steps(h * keep if self.mask_input else h, self.conv)
        return (F.relu(y) if self.activation else y) * keep


class UNetEncoder1d(nn.Module):
    """PR-Net's encoder M (Eq. 1): ``S = M(V)``, a 1-D U-net over time.

    The paper gives only "inspired by U-net" and "all conv layers have d
    channels" (Fig. 3). Choices made here (all constructor arguments):

    - input projection: a linear map d -> ``width`` when ``width != d``
      (the paper's setting is ``width = d``; a narrower width makes 8192-d
      C3D features practical);
    - ``depth`` levels (default 3): down path = conv + ReLU then max-pool by 2
      at each level, a bottom conv, up path = nearest up-sampling by 2, *added*
      skip from the same level (so every conv stays width -> width, as the
      caption says), conv + ReLU. The last up conv has no ReLU so embeddings
      can be negative (they are compared by cosine and dot products);
    - ``kernel_size`` 3 ('same' padding). With depth 3 a step sees about +-30
      neighbouring steps (about 15 s at 2 C3D steps per second).

    Any ``T >= 1`` works: the input is zero-padded to a multiple of
    ``2**depth`` and the output cropped back. The mask is max-pooled along
    with the features, so a coarse step is real when any of its steps is.
    Activations stay time-major from input to output (:func:`conv_steps`).
    """

    def __init__(
        self, in_dim: int, width: int | None = None, depth: int = 3, kernel_size: int = 3
    ) -> None:
        super().__init__()
        in_dim, width = _dims(in_dim, width)
        depth = int_at_least(depth, 0, "depth (U-net levels)")
        if depth > MAX_DEPTH:  # 2**depth would overflow the padding (or allocate it)
            raise ConfigError(f"depth must be <= {MAX_DEPTH}: each level halves time, and the "
                              f"input is zero-padded to a multiple of 2**depth steps; got {depth}")
        kernel_size = int_at_least(kernel_size, 1, "kernel_size")
        if kernel_size % 2 == 0:  # 'same' padding of an even kernel would shift every step
            raise ConfigError(f"kernel_size must be odd, got {kernel_size}")
        self.in_dim, self.width, self.depth, self.kernel_size = in_dim, width, depth, kernel_size
        self.project = nn.Linear(in_dim, width) if width != in_dim else nn.Identity()
        # a pooled step is zero where its mask is (both halves were zeroed), so only the
        # first block and the up path, whose inputs can be non-zero on padding, mask them
        self.down = nn.ModuleList(
            _ConvBlock(width, kernel_size, mask_input=level == 0) for level in range(depth)
        )
        self.bottom = _ConvBlock(width, kernel_size, activation=depth > 0, mask_input=depth == 0)
        self.up = nn.ModuleList(
            _ConvBlock(width, kernel_size, activation=level > 0) for level in reversed(range(depth))
        )

    @property
    def step_multiple(self) -> int:
        """The input is zero-padded to a multiple of this many steps (``2**depth``)."""
        return 2**self.depth

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` (B, T, in_dim), ``mask`` (B, T) bool -> (B, T, width), zero on padding."""
        steps = x.shape[1]
        factor = self.step_multiple
        padded = math.ceil(max(steps, 1) / factor) * factor
        h = F.pad(self.project(x), (0, 0, 0, padded - steps))
        keep = rearrange(F.pad(mask, (0, padded - steps), value=False), "b t -> b t 1").to(h.dtype)
        skips: list[tuple[Tensor, Tensor]] = []
        for block in self.down:
            h = block(h, keep)
            skips.append((h, keep))
            h = max_pool_steps(h)  # inputs are post-ReLU (>= 0), so zero padding never wins
            keep = max_pool_steps(keep)
        h = self.bottom(h, keep)
        for block in self.up:
            skip, keep = skips.pop()
            h = block(skip + h.repeat_interleave(2, dim=1), keep)
        return h[:, :steps]


class ResidualFrameEncoder(nn.Module):
    """PR-Net_residual's encoder: per-step residual MLP blocks, no temporal context.

    ``s = x' + sum of blocks``, each block ``Linear(w, 4w) -> ReLU -> Linear(4w, w)``
    on ``x' = project(x)``. With the default ``blocks = depth + 1`` of a matching
    U-net it has ``8 (depth+1) w^2`` weights against the U-net's
    ``3 (2 depth + 1) w^2``, so always more, as the paper requires.
    """

    def __init__(
        self, in_dim: int, width: int | None = None, blocks: int = 4, expansion: int = 4
    ) -> None:
        super().__init__()
        in_dim, width = _dims(in_dim, width)
        blocks = int_at_least(blocks, 0, "blocks (residual blocks)")
        expansion = int_at_least(expansion, 1, "expansion (hidden width / width)")
        self.in_dim, self.width = in_dim, width
        self.project = nn.Linear(in_dim, width) if width != in_dim else nn.Identity()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Linear(width, expansion * width), nn.ReLU(), nn.Linear(expansion * width, width)
            )
            for _ in range(blocks)
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` (B, T, in_dim), ``mask`` (B, T) bool -> (B, T, width), zero on padding."""
        h = self.project(x)
        for block in self.blocks:
            h = h + block(h)
        return h * mask[..., None].to(h.dtype)


def build_encoder(
    kind: str, in_dim: int, width: int | None, depth: int = 3, kernel_size: int | None = None
) -> nn.Module:
    """The encoder named ``kind`` ("unet" = M, "residual" = PR-Net_residual's).

    ``kernel_size`` (None = 3) is the U-net's; the residual encoder has no convolution, so a
    kernel size given to it is a :class:`ConfigError` rather than silently unused.
    """
    depth = int_at_least(depth, 0, "depth (U-net levels; residual blocks - 1)")
    if kind == "residual" and depth > MAX_DEPTH:  # the U-net checks its own
        # the residual encoder matches the U-net's depth; a huge one would be built (on the
        # meta device, to count its parameters) block by block before any limit could refuse it
        raise ConfigError(f"depth must be <= {MAX_DEPTH} (the U-net's limit, which the residual "
                          f"encoder's blocks - 1 match), got {depth}")
    if kind == "residual" and kernel_size is not None:
        raise ConfigError(
            f"kernel_size has no effect on the residual encoder (per-frame, no convolution), "
            f"got {kernel_size!r}; leave it out"
        )
    builders = {
        "unet": lambda: UNetEncoder1d(in_dim, width, depth, 3 if kernel_size is None else kernel_size),
        "residual": lambda: ResidualFrameEncoder(in_dim, width, blocks=depth + 1),
    }
    if kind not in builders:
        raise ConfigError(f"unknown encoder {kind!r}; choose one of {sorted(builders)}")
    return builders[kind]()
