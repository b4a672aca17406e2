"""The A-VHD reference's FCSN and A-VHD, re-stated from their layer lists, for speed ratios.

Only for ``bench_reference.py``: the same layers, shapes and parameter counts
as the reference code (github.com/mrochan/adaptive-highlight), run the way it
runs them: 2-D convs with ``(1, k)`` kernels on a ``(1, D, 1, T)`` view of the
time-major features (a transposed, non-contiguous input), batch-norm based
adaptive instance norm, 1x1-conv self-attention over history items, and
PyTorch's default Adam. Written for this benchmark, not copied; it is a timing
baseline, never a model of the zoo.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (in, out, padding) per conv; "pool" ends a block, "pool4" also keeps the skip
ENCODER_LAYERS = [
    "c1", "c", "pool", "c", "c", "pool", "c", "c", "c", "pool",
    "c", "c", "c", "pool4", "c", "c", "c", "pool",
]
CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
FC, POOL4 = 4096, 512


def wide(channels: int, width: float) -> int:
    """``channels`` at ``width`` (1.0 = the reference), rounded as the zoo's ``width_mult``."""
    return max(1, round(channels * width))


class RefEncoder(nn.Module):
    """VGG-style encoder over ``(B, D, 1, T)``: -> fc7 ``(B, 4096, 1, ~T/32)``, pool4."""

    def __init__(self, feature_dim: int, width: float = 1.0) -> None:
        super().__init__()
        layers, prev, conv_i = [], feature_dim, 0
        for kind in ENCODER_LAYERS:
            if kind.startswith("pool"):
                layers.append(nn.MaxPool2d((1, 2), stride=(1, 2), ceil_mode=True))
                continue
            out = wide(CHANNELS[conv_i], width)
            layers.append(nn.Conv2d(prev, out, (1, 3), padding=(0, 100 if kind == "c1" else 1)))
            prev, conv_i = out, conv_i + 1
        self.layers = nn.ModuleList(layers)
        fc = wide(FC, width)
        self.fc6 = nn.Conv2d(prev, fc, (1, 7))
        self.fc7 = nn.Conv2d(fc, fc, (1, 1))
        self.drop6, self.drop7 = nn.Dropout2d(), nn.Dropout2d()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pool4 = x
        for kind, layer in zip(ENCODER_LAYERS, self.layers, strict=True):
            x = layer(x)
            if not kind.startswith("pool"):
                x = F.relu(x, inplace=True)
            if kind == "pool4":
                pool4 = x
        x = self.drop6(F.relu(self.fc6(x), inplace=True))
        return self.drop7(F.relu(self.fc7(x), inplace=True)), pool4


class RefAdaIN(nn.Module):
    """Adaptive instance norm as a batch norm over a ``(1, B*C, 1, T)`` view; params set per call."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.weight: Tensor | None = None
        self.bias: Tensor | None = None
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        flat = x.contiguous().view(1, b * c, *x.shape[2:])
        out = F.batch_norm(flat, self.running_mean.repeat(b), self.running_var.repeat(b),
                           self.weight, self.bias, True, 0.1, 1e-5)
        return out.view(x.shape)


class RefDecoder(nn.Module):
    """FCN-16s decoder: norms (skipped at one step), 1x1 scores, two transposed convs, crops."""

    def __init__(self, adaptive: bool, width: float = 1.0) -> None:
        super().__init__()
        fc, pool4 = wide(FC, width), wide(POOL4, width)
        self.score_fr = nn.Conv2d(fc, 2, (1, 1))
        self.score_pool4 = nn.Conv2d(pool4, 2, (1, 1))
        self.up2 = nn.ConvTranspose2d(2, 2, (1, 4), stride=(1, 2), bias=False)
        self.up16 = nn.ConvTranspose2d(2, 2, (1, 32), stride=(1, 16), bias=False)
        norm = RefAdaIN if adaptive else nn.InstanceNorm2d
        self.norm7, self.norm4 = norm(fc), norm(pool4)

    def forward(self, fc7: Tensor, pool4: Tensor, length: int) -> Tensor:
        if fc7.shape[3] > 1:
            fc7 = self.norm7(fc7)
        up = self.up2(self.score_fr(fc7))
        if pool4.shape[3] > 1:
            pool4 = self.norm4(pool4)
        skip = self.score_pool4(pool4)[:, :, :, 5 : 5 + up.shape[3]]
        return self.up16(up + skip)[:, :, :, 27 : 27 + length].contiguous()


class RefSelfAttention(nn.Module):
    """1x1-conv self-attention over history items laid out as ``(1, D, 1, N)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(dim, dim // 8, 1)
        self.key = nn.Conv2d(dim, dim // 8, 1)
        self.value = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = self.query(x).view(b, -1, h * w).permute(0, 2, 1)
        attn = torch.softmax(torch.bmm(q, self.key(x).view(b, -1, h * w)), dim=-1)
        out = torch.bmm(self.value(x).view(b, -1, h * w), attn.permute(0, 2, 1))
        return out.view(b, c, h, w)


class RefFCSN(nn.Module):
    """FCSN: ``(1, D, 1, T)`` -> logits ``(1, 2, 1, T)``; ``width`` scales every channel
    count (1.0 = the reference; smaller widths measure per-layer host time)."""

    def __init__(self, feature_dim: int = 8192, width: float = 1.0) -> None:
        super().__init__()
        self.encoder = RefEncoder(feature_dim, width)
        self.decoder = RefDecoder(adaptive=False, width=width)

    def forward(self, x: Tensor) -> Tensor:
        fc7, pool4 = self.encoder(x)
        return self.decoder(fc7, pool4, x.shape[3])


class RefAVHD(nn.Module):
    """A-VHD ("attn" history net): FCSN whose decoder norms take params from history items."""

    def __init__(self, feature_dim: int = 8192, width: float = 1.0) -> None:
        super().__init__()
        self.encoder = RefEncoder(feature_dim, width)
        self.decoder = RefDecoder(adaptive=True, width=width)
        self.attention = RefSelfAttention(feature_dim)
        self.to_params = nn.Linear(feature_dim, 2 * (wide(FC, width) + wide(POOL4, width)))

    def forward(self, x: Tensor, history: list[Tensor]) -> Tensor:
        fc7, pool4 = self.encoder(x)
        items = torch.cat(history, dim=0).transpose(0, 1)[None, :, None, :]  # (1, D, 1, N)
        attended = self.attention(items)
        params = self.to_params(F.avg_pool2d(attended, (1, attended.shape[3])).flatten(1))
        for norm in (self.decoder.norm7, self.decoder.norm4):
            c = norm.channels
            norm.bias, norm.weight = params[:, :c].reshape(-1), params[:, c : 2 * c].reshape(-1)
            params = params[:, 2 * c :]
        return self.decoder(fc7, pool4, x.shape[3])


def reference_input(video: Tensor) -> Tensor:
    """The reference's view of time-major features ``(1, T, D)``: ``(1, D, 1, T)``, not copied."""
    return video.unsqueeze(2).transpose(1, 3)
