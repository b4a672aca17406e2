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
follows them, so the network must see each video at its real length:
:func:`run_by_length` groups batch rows by length and runs each group alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from highlightzoo.errors import DataFormatError
from highlightzoo.models.components.heads import full_precision
from highlightzoo.models.components.norm import AffineParams, TemporalInstanceNorm
from highlightzoo.models.components.sizing import check_width_mult

REFERENCE_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
REFERENCE_FC = 4096
FIRST_PAD = 100
POOL4_CROP = 5
OUTPUT_CROP = 27


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


def conv_block(in_channels: int, channels: int, convs: int, first_pad: int) -> nn.Sequential:
    """``convs`` x (conv k3 + ReLU), then a ceil-mode max-pool halving the length."""
    layers: list[nn.Module] = []
    for i in range(convs):
        pad = first_pad if i == 0 else 1
        layers += [nn.Conv1d(in_channels if i == 0 else channels, channels, 3, padding=pad),
                   nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool1d(2, stride=2, ceil_mode=True))
    return nn.Sequential(*layers)


class FCSNEncoder(nn.Module):
    """VGG-style 1-D encoder: ``(B, D, T)`` -> pool4 ``(B, C4, ~T/16)``, fc7 ``(B, Cfc, ~T/32)``."""

    def __init__(self, in_dim: int, width_mult: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        self.channels = ch = FCSNChannels.at_width(width_mult)
        blocks, prev = [], in_dim
        for i, (convs, c) in enumerate(ch.blocks):
            blocks.append(conv_block(prev, c, convs, FIRST_PAD if i == 0 else 1))
            prev = c
        self.to_pool4 = nn.Sequential(*blocks[:4])
        self.pool5 = blocks[4]
        # Dropout1d on (B, C, T) zeroes whole channels: the reference's Dropout2d on (B, C, 1, T).
        self.fc6 = nn.Sequential(nn.Conv1d(prev, ch.fc, 7), nn.ReLU(inplace=True),
                                 nn.Dropout1d(dropout))
        self.fc7 = nn.Sequential(nn.Conv1d(ch.fc, ch.fc, 1), nn.ReLU(inplace=True),
                                 nn.Dropout1d(dropout))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pool4 = self.to_pool4(x)
        fc7 = self.fc7(self.fc6(self.pool5(pool4)))
        return pool4, fc7


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
    ) -> Tensor:
        fc7_params, pool4_params = params if params is not None else (None, None)
        up = self.up2(self.score_fc7(self.norm_fc7(fc7, fc7_params)))
        skip = self.score_pool4(self.norm_pool4(pool4, pool4_params))
        skip = skip[..., POOL4_CROP : POOL4_CROP + up.shape[-1]]
        out = self.up16(up + skip)
        return out[..., OUTPUT_CROP : OUTPUT_CROP + length]


class FCSN(nn.Module):
    """FCSN encoder + decoder on same-length videos: ``(B, T, D)`` -> logits ``(B, T, 2)``."""

    def __init__(
        self,
        in_dim: int,
        width_mult: float = 1.0,
        norm: NormFactory = TemporalInstanceNorm,
        dropout: float = 0.5,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        self.encoder = FCSNEncoder(in_dim, width_mult, dropout)
        ch = self.encoder.channels
        self.decoder = FCSNDecoder(ch.pool4, ch.fc, norm, num_classes)

    def forward(
        self, x: Tensor, params: tuple[AffineParams, AffineParams] | None = None
    ) -> Tensor:
        length = x.shape[1]
        pool4, fc7 = self.encoder(rearrange(x, "b t d -> b d t"))
        with torch.autocast(x.device.type, enabled=False):  # float32 logits under bf16 autocast
            logits = self.decoder(full_precision(pool4), full_precision(fc7), length, params)
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


def run_by_length(
    fn: Callable[[Tensor, Tensor], Tensor],
    video: Tensor,
    video_mask: Tensor,
    out_dim: int,
    video_ids: Sequence[str] | None = None,
) -> Tensor:
    """Apply ``fn(x, rows)`` to each group of equal-length rows at their real length.

    ``fn`` gets ``x`` (G, T_g, D) and the long tensor ``rows`` of their batch
    indices (to pick per-row conditioning) and returns (G, T_g, out_dim).
    The results are re-padded into (B, T, out_dim) with zeros; empty rows
    stay zero. A video's output therefore does not depend on its batch.
    """
    lengths = check_prefix_mask(video_mask, video_ids)
    b, t, _ = video.shape
    out: Tensor | None = None
    for length in sorted(set(lengths.tolist())):
        if length == 0:
            continue
        rows = (lengths == length).nonzero().flatten()
        part = fn(video[rows, :length], rows)
        if out is None:
            out = part.new_zeros(b, t, out_dim)
        out = out.index_put((rows[:, None], torch.arange(length, device=video.device)), part)
    return out if out is not None else video.new_zeros(b, t, out_dim)
