"""The FCSN encoder/decoder (VGG/FCN-16s style, 1-D over time), shared by FCSN and A-VHD.

Encoder (the A-VHD reference's FCSN, its 1xk 2-D convs written as 1-D convs):
five conv blocks of kernel 3 + ReLU (no batch norm) with 2, 2, 3, 3, 3 convs of
64, 128, 256, 512, 512 channels; the first conv pads 100 steps, the others 1;
a ceil-mode max-pool (kernel 2, stride 2) ends each block; the pool4 output
(1/16 length) is kept as a skip. fc6 = conv kernel 7, no padding -> 4096,
ReLU, channel dropout 0.5; fc7 = 1x1 conv 4096 -> 4096, ReLU, channel dropout
0.5 (the reference's ``Dropout2d``: a dropped channel is zero at every step).

Decoder (FCN-16s): ``norm(fc7)`` -> 1x1 conv to 2 classes -> transposed conv
(kernel 4, stride 2); skip: ``norm(pool4)`` -> 1x1 conv to 2 classes, cropped
from offset 5; sum; transposed conv (kernel 32, stride 16); crop from offset
27 to length T. Both transposed convs have no bias and PyTorch's default
initialisation, as in the reference (``models/highlight_fcsn.py`` lines
178-181). The two norms are pluggable (instance norm for FCSN, T-AIN for
A-VHD).

``width_mult`` multiplies every channel count: channels are
``max(1, round(c * width_mult))`` for c in (64, 128, 256, 512, 512, 4096).
1.0 is the reference (~37.9M encoder parameters at 8192-d input); 1/16 gives
4, 8, 16, 32, 32 conv channels and 256 fc channels.

The 100-step padding and the pools mix a video's real steps with whatever
follows them, so on a right-padded batch of videos of different lengths the net
zeroes every step past a row's end after each conv (:class:`StepMasks`): each row
then computes what it would alone at its real length, in one forward for the whole
batch (:func:`run_padded`; docs/performance.md, "Mixed lengths in one forward").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from highlightzoo.batch import HostCounts, length_extent
from highlightzoo.checks import flag, int_at_least
from highlightzoo.errors import ConfigError, DataFormatError
from highlightzoo.models.components.dropout import check_dropout_p
from highlightzoo.models.components.heads import full_precision, full_precision_region
from highlightzoo.models.components.norm import (
    AffineParams,
    TemporalInstanceNorm,
    inverse_l2_norms,
)
from highlightzoo.models.components.sizing import check_width_mult
from highlightzoo.models.components.steps import UnfoldedConv1d, is_plain, set_kernel_layout

REFERENCE_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
REFERENCE_FC = 4096
FIRST_PAD = 100
POOL4_CROP = 5
OUTPUT_CROP = 27
#: device types whose FCSN block-conv kernels are stored channels-last (FCSNEncoder._apply)
CHANNELS_LAST_ON = frozenset({"cuda"})


def scaled(channels: int, width_mult: float) -> int:
    """``channels * width_mult`` rounded, at least 1."""
    return max(1, round(channels * width_mult))


@dataclass(frozen=True)
class FCSNChannels:
    """Channel counts of an FCSN at a given ``width_mult``."""

    blocks: tuple[tuple[int, int], ...]  # (number of convs, channels) per block
    fc: int

    @classmethod
    def at_width(cls, width_mult: float = 1.0) -> FCSNChannels:
        width_mult = check_width_mult("FCSN", width_mult)
        blocks = tuple((n, scaled(c, width_mult)) for n, c in REFERENCE_BLOCKS)
        return cls(blocks, scaled(REFERENCE_FC, width_mult))

    @property
    def pool4(self) -> int:
        return self.blocks[3][1]


def conv_block(in_channels: int, channels: int, convs: int, first_pad: int,
               first_conv: type[nn.Conv1d] = nn.Conv1d) -> nn.Sequential:
    """``convs`` x (conv k3 + ReLU), then a ceil-mode max-pool halving the length;
    ``first_conv``: the class of the block's first conv."""
    layers: list[nn.Module] = []
    for i in range(convs):
        pad = first_pad if i == 0 else 1
        conv = first_conv if i == 0 else nn.Conv1d
        layers += [conv(in_channels if i == 0 else channels, channels, 3, padding=pad),
                   nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool1d(2, stride=2, ceil_mode=True))
    return nn.Sequential(*layers)


def first_conv_steps(x: Tensor, conv: nn.Conv1d, step_scale: Tensor | None = None) -> Tensor:
    """``conv(rearrange(x * step_scale, "b t d -> b d t"))``, time-major: (B, T + 2p - k + 1, C).

    ``x`` (B, T, D), ``step_scale`` (B, T) or None. Why: at 8192-d the first
    FCSN conv dominates the network, and running it as a conv costs a full
    transposed copy of the input plus convolving ``p = 100`` steps of padding
    on each side. Here ``Y = x W`` (all ``k`` taps at once, one matmul over the
    real steps) is shifted and summed; an output whose window sees only padding
    is the bias. A per-step scale (e.g. ``1/||x_t||`` for L2-normalised steps)
    commutes with the conv, so it is applied to ``Y`` (width ``k*C``) instead of
    ``x`` (width ``D``). Equal to the conv up to float rounding; other conv
    settings (padding below ``k - 1``, strides, ...) run the conv itself.
    """
    if not is_plain(conv) or conv.padding[0] < conv.kernel_size[0] - 1:
        scaled_x = x if step_scale is None else x * step_scale[..., None].to(x.dtype)
        return rearrange(conv(rearrange(scaled_x, "b t d -> b d t")), "b c t -> b t c")
    (k,), (pad,), (b, t, _) = conv.kernel_size, conv.padding, x.shape
    taps = torch.matmul(x, rearrange(conv.weight, "c d k -> d (k c)"))  # (B, T, k*C)
    if step_scale is not None:
        taps = taps * step_scale[..., None].to(taps.dtype)
    taps = F.pad(rearrange(taps, "b t (k c) -> b t k c", k=k), (0, 0, 0, 0, k - 1, k - 1))
    inner = taps[:, 0 : t + k - 1, 0]
    for j in range(1, k):  # out[m] = sum_j W_j x[m - k + 1 + j] over the windows touching x
        inner = inner + taps[:, j : j + t + k - 1, j]
    bias = (conv.bias if conv.bias is not None else taps.new_zeros(taps.shape[-1])).to(inner.dtype)
    edge = bias.expand(b, pad - k + 1, bias.shape[0])
    return torch.cat([edge, inner + bias, edge], dim=1)


class FirstConv1d(nn.Conv1d):
    """FCSN's first conv (stride 1, zero padding of at least ``kernel_size - 1``) called on
    time-major steps: ``forward(x (B, T, D), step_scale=None)`` -> (B, T', C) by
    :func:`first_conv_steps`.

    The same parameters and state dict as ``nn.Conv1d``; being called as a module, its
    forward hooks fire, with the time-major input and output.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int, bias: bool = True) -> None:
        if padding < kernel_size - 1:
            raise ConfigError(f"FirstConv1d needs padding >= kernel_size - 1 = {kernel_size - 1}"
                              f" (the matmul form), got {padding}")
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)

    def forward(self, x: Tensor, step_scale: Tensor | None = None) -> Tensor:
        return first_conv_steps(x, self, step_scale)


@dataclass(frozen=True)
class StepMasks:
    """Which steps of a right-padded batch are real, at the resolutions the FCSN's
    decoder reads: ``pool4`` (B, 1, T4) and ``fc7`` (B, 1, T7), 1 on real steps, 0 past
    each row's end, in the activations' dtype.

    Why it is exact: a row run alone at length L sees zeros past its end (the convs'
    zero padding). In a padded batch the net multiplies every conv's output by its mask,
    so each conv and each pool reads zeros there too; a max-pool of masked ReLU outputs
    (>= 0) equals the ceil-mode pool of the row alone, and its output is zero past
    ``ceil(L / 2)``, so pooling the mask gives the next resolution's mask. fc6 (kernel 7,
    no padding) is valid where its window ends inside the row; the decoder's norms take
    their statistics over real steps and the scores entering the first transposed conv
    are masked. The outputs the final crop keeps read no other step (the crop offsets'
    arithmetic: ``tests/test_fcsn.py``). Equal to running each row alone, up to float
    rounding.
    """

    pool4: Tensor
    fc7: Tensor


def mask_steps(h: Tensor, mask: Tensor) -> Tensor:
    """``h`` (B, C, T) times ``mask`` (B, 1, T), in place: a conv's output, which its own
    backward does not read (the ReLU after it then saves the masked map)."""
    return h.mul_(mask)


def run_layers(
    layers: Iterable[nn.Module], h: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Run ``layers`` (convs, ReLUs, max-pools) one by one on ``h`` (B, C, T). With the
    real steps' ``mask`` (B, 1, T) every conv's output is masked and every pool pools the
    mask too (:class:`StepMasks`). Returns the output and its mask (None without one).
    Each layer is called as a module either way, so its hooks fire for every batch."""
    for layer in layers:
        h = layer(h)
        if mask is None:
            continue
        if isinstance(layer, nn.Conv1d):
            h = mask_steps(h, mask)
        elif isinstance(layer, nn.MaxPool1d):
            mask = F.max_pool1d(mask, layer.kernel_size, layer.stride, layer.padding,
                                layer.dilation, layer.ceil_mode)
    return h, mask


class FCSNEncoder(nn.Module):
    """VGG-style 1-D encoder: ``(B, T, D)`` -> pool4 ``(B, C4, ~T/16)``, fc7 ``(B, Cfc, ~T/32)``.

    On a GPU the activations stay time-major (channels-last) in memory from input to
    output; see :meth:`forward` for how each layer runs (measured in docs/performance.md).
    """

    def __init__(self, in_dim: int, width_mult: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        in_dim = int_at_least(in_dim, 1, "in_dim (the width of one input step)")
        dropout = check_dropout_p(dropout)  # nn.Dropout1d takes NaN, then fails at the forward
        self.channels = ch = FCSNChannels.at_width(width_mult)
        blocks, prev = [], in_dim
        for i, (convs, c) in enumerate(ch.blocks):
            blocks.append(conv_block(prev, c, convs, FIRST_PAD if i == 0 else 1,
                                     FirstConv1d if i == 0 else nn.Conv1d))
            prev = c
        self.to_pool4 = nn.Sequential(*blocks[:4])
        self.pool5 = blocks[4]
        # Dropout1d on (B, C, T) zeroes whole channels: the reference's Dropout2d on (B, C, 1, T).
        self.fc6 = nn.Sequential(UnfoldedConv1d(prev, ch.fc, 7), nn.ReLU(inplace=True),
                                 nn.Dropout1d(dropout))
        self.fc7 = nn.Sequential(UnfoldedConv1d(ch.fc, ch.fc, 1), nn.ReLU(inplace=True),
                                 nn.Dropout1d(dropout))
        self.lay_out_kernels()

    def block_convs(self) -> list[nn.Conv1d]:
        """The k = 3 convs that run on channels-last views (the first conv is a matmul)."""
        convs = [m for m in (*self.to_pool4.modules(), *self.pool5.modules())
                 if isinstance(m, nn.Conv1d)]
        return convs[1:]

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - nn.Module's signature
        """After every move or cast (``.to``, ``.cuda``, ``.float``...): the kernels in the
        memory order their use wants (:meth:`lay_out_kernels`)."""
        super()._apply(fn, recurse)
        self.lay_out_kernels()
        return self

    def lay_out_kernels(self) -> None:
        """The first conv's kernel in ``(I, k, O)`` memory, so the matmul it runs as reads
        it without a copy; the block convs' kernels channels-last on a CUDA device,
        contiguous elsewhere (:func:`~highlightzoo.models.components.steps.set_kernel_layout`:
        1.03-1.06x forward on a CPU; 1.02-1.09x per step on an H100, neutral to 0.94x on a CPU).
        Values unchanged, so checkpoints and ``load_state_dict`` work either way."""
        set_kernel_layout(self.to_pool4[0][0], "matmul")
        for conv in self.block_convs():
            on = conv.weight.device.type in CHANNELS_LAST_ON
            set_kernel_layout(conv, "channels_last" if on else "contiguous")

    def forward(
        self, x: Tensor, step_scale: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, StepMasks | None]:
        """``x`` time-major ``(B, T, D)``; ``step_scale`` (B, T) multiplies each input step.
        ``mask`` (B, T): the real steps of a right-padded batch (None: all real); the
        steps past a row's end must have a zero ``step_scale`` (:meth:`FCSN.forward`
        sees to it), and each conv's output is masked past it (:class:`StepMasks`).

        The first conv is one matmul on the real steps (:func:`first_conv_steps`:
        no transposed copy of the input, no work on its 100-step padding) and
        returns time-major memory; the layers see it through channels-first
        (B, C, T) views. The other conv blocks run as themselves on the views,
        which cuDNN takes as channels-last (NHWC) with no layout conversion, so on
        a GPU activations stay time-major throughout (oneDNN on a CPU returns
        channels-first memory instead; the time-major 2-D ops of
        :mod:`~highlightzoo.models.components.steps` measured no faster here at
        the reference configuration, docs/performance.md). fc6 and fc7 are matmuls
        (:func:`unfolded_conv_steps`). Returns pool4 and fc7 as (B, C, T') tensors, and
        their masks when ``mask`` is given.
        """
        # Layer by layer, not sliced (slicing an nn.Sequential builds a new one per call;
        # the block containers are not called, so hooks go on the layers). Each
        # in-place ReLU after a time-major layer runs before the transposed view is taken:
        # in place on a view, autograd would copy the whole map back and forth (CopySlices)
        (first_conv, first_relu, *first_rest), *blocks = self.to_pool4
        taps = first_conv(x, step_scale)  # FirstConv1d: (B, T1, C), time-major
        level = None
        if mask is not None:  # T1 - T = 2p - k + 1 outputs more than inputs, all real
            level = F.pad(mask.to(taps.dtype), (taps.shape[1] - mask.shape[1], 0), value=1.0)
            level = level[:, None]  # (B, 1, T1)
            taps = taps * level.transpose(1, 2)  # not in place: taps may be a view
        h = first_relu(taps).transpose(1, 2)
        h, level = run_layers((*first_rest, *itertools.chain(*blocks)), h, level)
        pool4, pool4_mask = h, level
        h, level = run_layers(self.pool5, h, level)
        for conv, relu, dropout in (self.fc6, self.fc7):
            h = dropout(conv(h.transpose(1, 2), then=relu).transpose(1, 2))  # UnfoldedConv1d
        if level is None:
            return pool4, h, None
        # fc6 (no padding) is real where its window ends on a real step; fc7 is 1 x 1
        return pool4, h, StepMasks(pool4_mask, level[..., self.fc6[0].kernel_size[0] - 1 :])


NormFactory = Callable[[int], nn.Module]


class FCSNDecoder(nn.Module):
    """FCN-16s decoder: pool4 and fc7 maps -> per-step class logits ``(B, K, T)``.

    ``norm`` builds each of the two decoder norms from its channel count; a
    norm is called as ``norm(x, params)``. The up-sampling transposed convs
    have no bias and keep PyTorch's default initialisation, as the A-VHD
    reference does (not FCN's bilinear start); they are learnable.
    """

    def __init__(
        self,
        pool4_channels: int,
        fc_channels: int,
        norm: NormFactory = TemporalInstanceNorm,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        # torch's own errors ("not all arguments converted during string formatting") before
        pool4_channels = int_at_least(pool4_channels, 1, "pool4_channels")
        fc_channels = int_at_least(fc_channels, 1, "fc_channels")
        num_classes = int_at_least(num_classes, 1, "num_classes")
        if not callable(norm):
            raise ConfigError(f"norm must be a factory of norm layers (channels -> nn.Module), "
                              f"got {norm!r}")
        self.norm_fc7, self.norm_pool4 = norm(fc_channels), norm(pool4_channels)
        self.score_fc7 = nn.Conv1d(fc_channels, num_classes, 1)
        self.score_pool4 = nn.Conv1d(pool4_channels, num_classes, 1)
        self.up2 = nn.ConvTranspose1d(num_classes, num_classes, 4, stride=2, bias=False)
        self.up16 = nn.ConvTranspose1d(num_classes, num_classes, 32, stride=16, bias=False)

    def forward(
        self,
        pool4: Tensor,
        fc7: Tensor,
        length: int,
        params: tuple[AffineParams, AffineParams] | None = None,
        masks: StepMasks | None = None,
    ) -> Tensor:
        """``masks``: the real steps of a right-padded batch (:class:`StepMasks`; None:
        all real): the norms' statistics use those only, and the fc7 scores are zero past
        each row's end, where the first transposed conv would read them."""
        fc7_params, pool4_params = params if params is not None else (None, None)
        fc7_mask, pool4_mask = (None, None) if masks is None else (masks.fc7[:, 0],
                                                                  masks.pool4[:, 0])
        scores = self.score_fc7(self.norm_fc7(fc7, fc7_params, fc7_mask))
        if masks is not None:
            scores = mask_steps(scores, masks.fc7)
        up = self.up2(scores)
        skip = self.score_pool4(self.norm_pool4(pool4, pool4_params, pool4_mask))
        skip = skip[..., POOL4_CROP : POOL4_CROP + up.shape[-1]]
        out = self.up16(up + skip)
        return out[..., OUTPUT_CROP : OUTPUT_CROP + length]


class FCSN(nn.Module):
    """FCSN encoder + decoder: ``(B, T, D)`` -> logits ``(B, T, 2)``; rows of different
    lengths with a ``mask`` (:meth:`forward`)."""

    def __init__(
        self,
        in_dim: int,
        width_mult: float = 1.0,
        norm: NormFactory = TemporalInstanceNorm,
        dropout: float = 0.5,
        num_classes: int = 2,
        l2_normalize: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = FCSNEncoder(in_dim, width_mult, dropout)
        ch = self.encoder.channels
        self.decoder = FCSNDecoder(ch.pool4, ch.fc, norm, num_classes)
        self.l2_normalize = flag(l2_normalize, "l2_normalize")

    def forward(
        self,
        x: Tensor,
        params: tuple[AffineParams, AffineParams] | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """``l2_normalize``: each input step scaled to unit L2 norm (as ``F.normalize``),
        folded into the first conv as a per-step scale (no normalised copy of ``x``).

        ``mask`` (B, T) bool: each row's real steps, a prefix (None: every step is
        real). Each row's logits are then what it gets run alone at its real length, up
        to float rounding (:class:`StepMasks`), and zero past its end; the padding's
        values (finite: the collate's zeros, or anything else) do not change them.
        """
        length = x.shape[1]
        scale = inverse_l2_norms(x) if self.l2_normalize else None
        if mask is not None:  # padding steps add nothing to the first conv
            scale = mask.to(torch.float32) if scale is None else scale * mask
        pool4, fc7, masks = self.encoder(x, scale, mask)
        with full_precision_region(x.device.type):  # float32 logits under bf16 autocast
            logits = self.decoder(full_precision(pool4), full_precision(fc7), length, params,
                                  masks)
            if mask is not None:
                logits = logits * mask[:, None]
        return rearrange(logits, "b k t -> b t k")


def check_prefix_mask(video_mask: Tensor, video_ids: Sequence[str] | None = None) -> Tensor:
    """(B,) lengths of a mask whose valid steps are a prefix of each row; else a typed error."""
    lengths = video_mask.sum(dim=1)
    prefix = torch.arange(video_mask.shape[1], device=video_mask.device)[None, :] < lengths[:, None]
    holes = (prefix != video_mask).any(dim=1)
    if bool(holes.any()):
        row = int(holes.nonzero()[0])
        video = video_ids[row] if video_ids and row < len(video_ids) else str(row)
        raise DataFormatError(
            "video_mask must mark a prefix of each row (padding only at the end)",
            video=video, reason="video_mask",
        )
    return lengths


def run_padded(
    fn: Callable[[Tensor, Tensor | None], Tensor],
    video: Tensor,
    video_mask: Tensor,
    out_dim: int,
    video_ids: Sequence[str] | None = None,
    counts: HostCounts | None = None,
) -> Tensor:
    """``fn(x, mask)`` once on the batch cut to its longest row, re-padded to (B, T, out_dim).

    ``fn`` gets ``x`` (B, T_max, D) and ``mask`` (B, T_max) bool, the rows' real steps, or
    None when every row has all T_max steps; it returns (B, T_max, out_dim), zero past each
    row's end, computing each row as if it ran alone at its real length (the FCSN does, with
    :class:`StepMasks`). A video's output therefore does not depend on its batch. Steps
    past T_max are zero; a batch of empty rows gives zeros without calling ``fn``. The mask
    must mark a prefix of each row (else :class:`DataFormatError` naming the video).
    ``counts``: the batch's :class:`~highlightzoo.batch.HostCounts` (the collate's), which
    spare reading the lengths, and checking the mask, on the device (a device sync on a
    GPU). Only their ``longest`` and ``one_length`` are read, so under
    ``TrainConfig.cuda_graphs`` batches of other lengths share a graph.
    """
    b, t, _ = video.shape
    if counts is None:
        lengths = video_mask.sum(dim=1)
        prefix = torch.arange(t, device=video_mask.device)[None, :] < lengths[:, None]
        # lengths and the "has a hole" flag reach the host in one copy (one device sync)
        host = torch.cat([lengths, (prefix != video_mask).any()[None].long()]).tolist()
        if host[-1]:
            check_prefix_mask(video_mask, video_ids)  # raises the typed error naming the video
        longest, one_length = length_extent(host[:-1])
    else:
        longest, one_length = counts.longest, counts.one_length
    if longest == 0:
        return video.new_zeros(b, t, out_dim)
    mask = None if one_length else video_mask[:, :longest]
    out = fn(video[:, :longest], mask)
    return out if longest == t else F.pad(out, (0, 0, 0, t - longest))
