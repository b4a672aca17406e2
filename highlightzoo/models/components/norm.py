"""Temporal instance norms for the FCSN decoder, and A-VHD's history net.

Feature maps here are ``(B, C, T)`` (channels first, time last). Two norms
share one masked statistics function:

- :class:`TemporalInstanceNorm`: plain FCSN's non-affine instance norm over
  time; it is skipped when the map has a single time step (as in the
  reference, where a 1-step instance norm would wipe the map to zero).
- :class:`TemporalAdaptiveInstanceNorm` (T-AIN, A-VHD): the same statistics
  (also at eval), followed by a per-sample, per-channel scale and bias
  predicted from the user's history; skipped like the plain norm when the map
  has a single time step (the A-VHD reference skips both decoder norms there,
  ``models/highlight_fcsn.py`` lines 207 and 218).

Both keep their statistics in float32, so they run under bf16 autocast (the
A-VHD reference's batch-norm based T-AIN does not). Without a mask, T-AIN is one
batch norm over the ``(1, B*C, T)`` view as in the reference, but on float32 and
without running statistics (:func:`affine_instance_normalize`).
:class:`TAINHistoryNet` turns a user's history into those scales and biases.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from torch import Tensor, nn

from highlightzoo.checks import int_at_least
from highlightzoo.errors import ConfigError, DataFormatError
from highlightzoo.models.components.heads import full_precision, full_precision_region

EPS = 1e-5


@dataclass
class AffineParams:
    """Per-sample, per-channel affine of one T-AIN layer: ``weight``, ``bias`` (B, C)."""

    weight: Tensor
    bias: Tensor


def masked_instance_stats(x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-instance, per-channel mean and biased variance over valid time steps.

    ``x`` (B, C, T); ``mask`` (B, T) bool, True on valid steps (None = all).
    Returns ``mean, var`` of shape (B, C, 1), in float32 for a half-precision ``x``
    (bf16 statistics are too coarse), else in ``x``'s dtype (float64 stays float64). A
    row with no valid step gets mean 0 and variance 0.
    """
    x32 = full_precision(x)
    if mask is None:
        mean = x32.mean(dim=-1, keepdim=True)
        var = (x32 - mean).pow(2).mean(dim=-1, keepdim=True)
        return mean, var
    w = rearrange(mask.to(x32.dtype), "b t -> b 1 t")
    count = reduce(w, "b 1 t -> b 1 1", "sum").clamp(min=1.0)
    mean = (x32 * w).sum(dim=-1, keepdim=True) / count
    var = ((x32 - mean).pow(2) * w).sum(dim=-1, keepdim=True) / count
    return mean, var


def instance_normalize(x: Tensor, mask: Tensor | None = None, eps: float = EPS) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` per instance and channel, in float32 (float64 stays
    float64).

    Without a mask it is PyTorch's fused instance norm (the same statistics, one pass
    forward and one backward instead of about eight element-wise ops each way: fewer
    kernel launches on a GPU, 1.1-1.9x on a CPU at the decoder's shapes; docs/performance.md).
    """
    if mask is None:
        return F.instance_norm(full_precision(x), eps=eps)
    mean, var = masked_instance_stats(x, mask)
    return (full_precision(x) - mean) * torch.rsqrt(var + eps)


def affine_instance_normalize(x: Tensor, weight: Tensor, bias: Tensor, eps: float = EPS) -> Tensor:
    """``weight * (x - mean) / sqrt(var + eps) + bias`` per instance and channel, in float32
    (float64 stays float64).

    ``x`` (B, C, T), ``weight`` and ``bias`` (B, C): a per-sample affine (T-AIN's).
    Computed as PyTorch's batch norm over the ``(1, B*C, T)`` view with the batch's own
    statistics, i.e. the same per-(b, c) statistics over time as
    :func:`instance_normalize`: one fused op forward and one backward instead of four and
    eight (fewer kernel launches on a GPU; docs/performance.md, "Host time per step").
    """
    b, c, t = x.shape
    flat = F.batch_norm(full_precision(x).reshape(1, b * c, t), None, None,
                        full_precision(weight).reshape(-1), full_precision(bias).reshape(-1),
                        training=True, eps=eps)
    return flat.view(b, c, t)


def skip_single_steps(normed: Tensor, x: Tensor, mask: Tensor) -> Tensor:
    """``normed`` where a row of ``mask`` (B, T) has more than one real step, else ``x``
    unchanged: the decoder norms' one-step rule, row by row in a padded batch."""
    several = rearrange(mask.sum(dim=-1) > 1, "b -> b 1 1")
    return torch.where(several, normed, x)


class TemporalInstanceNorm(nn.Module):
    """Non-affine instance norm over time (plain FCSN's decoder norm).

    Skipped (identity) when the map has one time step: FCSN applies its
    instance norm only when the temporal length is > 1. ``mask`` (B, T): the real
    steps of a padded batch (statistics over those; a row with one real step passes
    through).
    """

    def __init__(self, channels: int, eps: float = EPS) -> None:
        super().__init__()
        self.channels, self.eps = channels, eps

    def forward(
        self, x: Tensor, params: AffineParams | None = None, mask: Tensor | None = None
    ) -> Tensor:
        if params is not None:
            raise ConfigError("TemporalInstanceNorm is not adaptive; it takes no affine params")
        if x.shape[-1] <= 1:
            return x
        if mask is None:
            return instance_normalize(x, eps=self.eps).to(x.dtype)
        return skip_single_steps(instance_normalize(x, mask, self.eps).to(x.dtype), x, mask)


class TemporalAdaptiveInstanceNorm(nn.Module):
    """T-AIN (A-VHD): ``weight * (x - mean_t) / sqrt(var_t + eps) + bias``.

    Statistics are per instance and channel over the valid time steps, in
    float32, at train and eval alike; ``weight``/``bias`` come per sample
    from the history net. Output has the dtype of ``x``. A map of one time
    step passes through unchanged, as in the A-VHD reference (normalising a
    single step would replace every channel by its predicted bias). ``mask`` (B, T):
    the real steps of a padded batch (statistics over those; a row with one real step
    passes through).
    """

    def __init__(self, channels: int, eps: float = EPS) -> None:
        super().__init__()
        self.channels, self.eps = channels, eps

    def forward(
        self, x: Tensor, params: AffineParams | None = None, mask: Tensor | None = None
    ) -> Tensor:
        if params is None:
            raise ConfigError("TemporalAdaptiveInstanceNorm needs per-sample affine params")
        if params.weight.shape != (x.shape[0], self.channels):
            raise ConfigError(
                f"T-AIN params have shape {tuple(params.weight.shape)}, "
                f"expected {(x.shape[0], self.channels)}"
            )
        if x.shape[-1] <= 1:
            return x
        if mask is None:
            return affine_instance_normalize(x, params.weight, params.bias, self.eps).to(x.dtype)
        normed = instance_normalize(x, mask, self.eps)
        weight = rearrange(full_precision(params.weight), "b c -> b c 1")
        bias = rearrange(full_precision(params.bias), "b c -> b c 1")
        return skip_single_steps(torch.addcmul(bias, normed, weight).to(x.dtype), x, mask)


def l2_normalize_steps(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Each feature vector (last dim) scaled to unit L2 norm; zero vectors stay zero."""
    return F.normalize(x, p=2.0, dim=-1, eps=eps)


def inverse_l2_norms(x: Tensor, eps: float = 1e-12) -> Tensor:
    """``1 / max(||x_t||, eps)`` per step (``x`` without its last dim), in float32 (float64
    for float64 ``x``).

    ``x * inverse_l2_norms(x)[..., None]`` is :func:`l2_normalize_steps`; a model
    whose first layer is linear applies the scale to that layer's (narrower) output.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    return torch.linalg.vector_norm(x, dim=-1, dtype=dtype).clamp_min(eps).reciprocal()


def l2_normalized_sum(x: Tensor, mask: Tensor) -> Tensor:
    """``sum_l mask_l * x_l / ||x_l||`` over the steps: ``x`` (..., L, D), ``mask`` (..., L)
    -> (..., D), in float32 (float64 for float64 ``x``).

    Equal to summing ``l2_normalize_steps(x) * mask[..., None]`` over L up to float rounding,
    computed as one contraction of ``x`` with the per-step weights ``mask / ||x_l||``: no
    normalised and no masked copy of ``x``. Why: a history is the largest tensor a
    personalised model reads (up to 1,347 segments per user), and at 8192-d those two copies
    cost more than the sum itself (docs/performance.md, "History summaries without copies").
    The contraction runs in ``x``'s dtype with autocast off (bf16 features stay bf16, float32
    ones are not cast down).
    """
    weights = (inverse_l2_norms(x) * mask).to(x.dtype)
    with full_precision_region(x.device.type):
        summed = torch.einsum("...ld,...l->...d", x, weights)
    return summed.to(torch.promote_types(x.dtype, torch.float32))


def history_video_items(
    history: Tensor,
    history_mask: Tensor,
    history_video: Tensor,
    user_ids: list[str] | None = None,
    n_videos: int | None = None,
) -> tuple[Tensor, Tensor]:
    """One vector per history video: mean of its highlight steps, each L2-normalised.

    ``history`` (B, N, L, D), ``history_mask`` (B, N, L), ``history_video``
    (B, N) with -1 on padding. All valid steps of all segments of a video are
    averaged together (a long highlight weighs more than a short one).
    Returns ``items`` (B, V, D) and ``item_mask`` (B, V) (True where the video
    has at least one valid step); V = 1 + the largest video index (0 if none).
    """
    b, n, _, d = history.shape
    if n_videos is None:
        seg_valid = history_mask.any(dim=-1)
        stray = seg_valid & (history_video < 0)
        # the error flag and the largest video index reach the host in one copy (one sync)
        flags = torch.stack([stray.any().long(), history_video.max() if history_video.numel()
                             else history_video.new_tensor(-1)]).tolist()
        if flags[0]:
            row = int(stray.any(dim=1).nonzero()[0])
            user = user_ids[row] if user_ids and row < len(user_ids) else str(row)
            raise DataFormatError(
                "a history segment has real steps but history_video -1", user=user,
                reason="history_video",
            )
        n_videos = int(flags[1]) + 1
    v = max(n_videos, 0)
    seg_sum = l2_normalized_sum(history, history_mask)  # (B, N, D) float32
    seg_count = history_mask.sum(dim=-1, dtype=seg_sum.dtype)  # (B, N)
    # a padding segment (video -1) has no valid step, so it adds zeros wherever it lands:
    # slot 0 (one extra slot when there is no video at all)
    slot = history_video.clamp(min=0)
    slots = max(v, 1)
    sums = seg_sum.new_zeros(b, slots, d).scatter_add_(1, slot[..., None].expand(b, n, d), seg_sum)
    counts = seg_sum.new_zeros(b, slots).scatter_add_(1, slot, seg_count)
    sums, counts = sums[:, :v], counts[:, :v]
    items = sums / counts.clamp(min=1.0)[..., None]  # means summed in float32
    return items.to(history.dtype), counts > 0


#: at most this many rows, :func:`few_rows_linear` multiplies the weight from the left
FEW_ROWS = 32


def few_rows_linear(x: Tensor, linear: nn.Linear) -> Tensor:
    """``linear(x)`` for ``x`` (..., D); with at most :data:`FEW_ROWS` rows as ``(W x^T)^T``.

    The same product up to float rounding. Why: with few rows and a large weight (A-VHD's
    query and key projections of 8 history items at 8192-d, 33.5 MB each), the product is
    bound by streaming the weight, and a CPU GEMM streams it 1.3-1.8x faster with the
    weight on the left (docs/performance.md, "Against the reference code": A-VHD's forward
    1.02-1.03x faster).
    """
    rows = x.reshape(-1, x.shape[-1])
    if rows.shape[0] > FEW_ROWS:
        return linear(x)
    if linear.bias is None:
        out = torch.mm(linear.weight, rows.t())
    else:
        out = torch.addmm(linear.bias[:, None], linear.weight, rows.t())
    return out.t().reshape(*x.shape[:-1], out.shape[0])


class ItemSelfAttention(nn.Module):
    """Self-attention over a set of items (no residual, no scaling), masked keys.

    ``q = W_q x`` and ``k = W_k x`` project d -> d/8, ``v = W_v x`` keeps d;
    ``out_i = sum_j softmax_j(q_i . k_j) v_j`` over valid items j (the
    A-VHD "attn" history net, SAGAN style).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        dim = int_at_least(dim, 1, "dim (the width of one history item)")
        inner = max(1, dim // 8)
        self.query = nn.Linear(dim, inner)
        self.key = nn.Linear(dim, inner)
        self.value = nn.Linear(dim, dim)

    def weights(self, items: Tensor, item_mask: Tensor) -> Tensor:
        """(B, I, J) float32 ``softmax_j(q_i . k_j)`` over valid j; all-zero rows for a user
        with no item (all keys masked would give NaN)."""
        query, key = few_rows_linear(items, self.query), few_rows_linear(items, self.key)
        logits = torch.einsum("bie,bje->bij", query, key).float()
        logits = logits.masked_fill(~item_mask[:, None, :], float("-inf"))
        return torch.softmax(logits, dim=-1).nan_to_num(0.0)

    def forward(self, items: Tensor, item_mask: Tensor) -> Tensor:
        """(B, I, D): ``out_i`` for every item."""
        v = self.value(items)
        return torch.einsum("bij,bjd->bid", self.weights(items, item_mask).to(v.dtype), v)

    def pooled(self, items: Tensor, item_mask: Tensor) -> Tensor:
        """(B, D): the mean of ``out_i`` over valid items i (zeros for a user with none).

        Computed as ``W_v (sum_j a_j x_j) + b_v sum_j a_j`` with ``a_j`` the attention to
        item j averaged over valid i: one product with ``W_v`` per user instead of one per
        item. Equal to averaging :meth:`forward` up to float rounding; at the reference's
        8192-d, ``W_v`` is 268 MB, and the product with one vector instead of 8 is what
        makes the zoo's A-VHD forward faster than the reference's (docs/performance.md).
        """
        attn = self.weights(items, item_mask)
        w = item_mask.to(attn.dtype)[..., None]
        mix = (attn * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)  # (B, J), sums to 1 or 0
        mixed = torch.einsum("bj,bjd->bd", mix.to(items.dtype), items)
        out = F.linear(mixed, self.value.weight)
        return out + mix.sum(dim=-1, keepdim=True).to(out.dtype) * self.value.bias.to(out.dtype)


class TAINHistoryNet(nn.Module):
    """A-VHD history net: history -> affine params of the two decoder T-AINs.

    Items = one vector per history video (:func:`history_video_items`);
    self-attention over items, mean over valid items, then a linear layer to
    ``2 * (C_fc7 + C_pool4)`` values sliced as bias(C_fc7), weight(C_fc7),
    bias(C_pool4), weight(C_pool4), the reference's order. The predicted
    weight is used as is (not ``1 + weight``), as in the reference.

    Empty history (the reference skips such users): identity affine, weight 1
    and bias 0, so the decoder sees a plain instance norm.
    """

    def __init__(self, feature_dim: int, fc_channels: int, pool4_channels: int) -> None:
        super().__init__()
        # a text or float size was torch's or Python's error on an arithmetic line below
        fc_channels = int_at_least(fc_channels, 1, "fc_channels")
        pool4_channels = int_at_least(pool4_channels, 1, "pool4_channels")
        self.fc_channels, self.pool4_channels = fc_channels, pool4_channels
        self.attention = ItemSelfAttention(feature_dim)
        self.to_params = nn.Linear(feature_dim, 2 * (fc_channels + pool4_channels))
        # the params of a user without history, in to_params' order: bias 0, weight 1 (not
        # saved in checkpoints: a constant)
        # (filled, not concatenated: torch's meta version of cat, used when the registry counts
        # parameters before building, imports its compiler stack, a second on first use)
        identity = torch.zeros(2 * (fc_channels + pool4_channels))
        identity[fc_channels:2 * fc_channels] = 1.0
        identity[2 * fc_channels + pool4_channels:] = 1.0
        self.register_buffer("identity", identity, persistent=False)

    def summary(
        self, history: Tensor, history_mask: Tensor, history_video: Tensor,
        user_ids: list[str] | None = None, n_videos: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(B, D) mean of attended items, and (B,) bool: the user has any history.
        ``n_videos``: the collate's count of history videos (spares a device read)."""
        items, item_mask = history_video_items(history, history_mask, history_video, user_ids,
                                               n_videos)
        return self.attention.pooled(items, item_mask), item_mask.any(dim=1)

    def forward(
        self, history: Tensor, history_mask: Tensor, history_video: Tensor,
        user_ids: list[str] | None = None, n_videos: int | None = None,
    ) -> tuple[AffineParams, AffineParams]:
        """Affine params for (fc7 norm, pool4 norm), each (B, C)."""
        pooled, has_history = self.summary(history, history_mask, history_video, user_ids,
                                           n_videos)
        raw = torch.where(has_history[:, None], self.to_params(pooled), self.identity)
        c7, c4 = self.fc_channels, self.pool4_channels
        bias7, weight7, bias4, weight4 = torch.split(raw, [c7, c7, c4, c4], dim=-1)
        return AffineParams(weight7, bias7), AffineParams(weight4, bias4)
