"""PHD-GIFs (Garcia del Molino & Gygli, ACM MM 2018): history-conditioned segment ranking.

The user's history feature (the mean of their history highlights) is
concatenated with each segment's feature and scored by an MLP (512 -> 128 ->
1, ReLU, dropout 0.5); trained with a pairwise ranking loss within a video
(``segment_ranking``). Segments are fixed ``window_s``-second windows (5 s, as
in PR-Net's comparison; the original used a shot detector); a segment's
feature is the mean of its (L2-normalised) steps, and every step takes its
segment's score.

History feature: the mean over history *segments* of each segment's mean
step feature, so each history highlight (one GIF) counts once whatever its
length. A user with no history gets a zero history feature.

Two models live here. ``phdgifs`` is that concatenation branch alone: it is
what the PR-Net paper describes and compares with in its Table 1 ("directly
concatenate the history feature ... into a fused feature"). ``phdgifs_full``
is the published PHD-GIFs method, which late-fuses the concatenation branch
with a second, distance-based branch that compares the segment with each
history highlight (see docs/models.md for which parts the sources fix).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.checks import flag
from highlightzoo.errors import ConfigError
from highlightzoo.models.components.dropout import Dropout
from highlightzoo.models.components.fcsn import scaled
from highlightzoo.models.components.heads import MLPHead, full_precision_region
from highlightzoo.models.components.history import masked_mean
from highlightzoo.models.components.norm import l2_normalized_sum
from highlightzoo.models.components.pooling import check_window_s
from highlightzoo.models.components.sizing import check_width_mult
from highlightzoo.models.registry import ModelCard, register_model
from highlightzoo.models.video2gif import REFERENCE_HIDDEN, segment_features, segment_output


def history_segment_features(
    history: Tensor, history_mask: Tensor, normalize: bool = True
) -> tuple[Tensor, Tensor]:
    """(B, N, D) mean step of each history segment (steps L2-normalised first if asked),
    and (B, N) bool: the segment has a real step."""
    if not normalize:
        return masked_mean(history, history_mask, dim=2), history_mask.any(dim=-1)
    counts = history_mask.sum(dim=-1, dtype=torch.float32).clamp(min=1.0)[..., None]
    seg_mean = l2_normalized_sum(history, history_mask) / counts  # no normalised copy
    return seg_mean.to(history.dtype), history_mask.any(dim=-1)


def history_feature(history: Tensor, history_mask: Tensor, normalize: bool = True) -> Tensor:
    """(B, D) mean over real history segments of each segment's mean step; 0 without history."""
    seg_mean, seg_valid = history_segment_features(history, history_mask, normalize)
    return masked_mean(seg_mean, seg_valid, dim=1)


class PHDGIFs(nn.Module):
    """MLP score of ``[segment feature, history feature]`` per segment."""

    def __init__(
        self,
        feature_dim: int,
        width_mult: float = 1.0,
        window_s: float = 5.0,
        dropout: float = 0.5,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.window_s = check_window_s(window_s)
        self.normalize = flag(normalize, "normalize (L2-normalise the steps)")
        hidden = tuple(scaled(h, width_mult) for h in REFERENCE_HIDDEN)
        self.head = MLPHead(2 * feature_dim, hidden, dropout)

    def forward(self, batch: Batch) -> ModelOutput:
        segments = segment_features(batch, self.window_s, self.normalize)
        user = history_feature(batch.history, batch.history_mask, self.normalize)
        user = user[:, None, :].expand(-1, segments.features.shape[1], -1)
        scores = self.head(torch.cat([segments.features, user], dim=-1)).squeeze(-1)
        return segment_output(scores, segments)


@register_model(
    ModelCard(
        name="phdgifs",
        summary="PHD-GIFs concatenation branch (PR-Net's Table 1): MLP on [5-s segment, "
        "mean history], ranking loss",
        paper="Garcia del Molino, Gygli. PHD-GIFs: Personalized Highlight Detection "
        "for Automatic GIF Creation. ACM MM 2018",
        granularity="segment",
        uses_history=True,
        default_loss="segment_ranking",
        paper_map=16.25,
        table="table1",
    )
)
def phdgifs(
    feature_dim: int,
    width_mult: float = 1.0,
    window_s: float = 5.0,
    dropout: float = 0.5,
    normalize: bool = True,
) -> PHDGIFs:
    """PHD-GIFs; ``width_mult`` scales the MLP hidden sizes (512, 128)."""
    width_mult = check_width_mult("phdgifs", width_mult)
    return PHDGIFs(feature_dim, width_mult, window_s, dropout, normalize)


def nearest_history_similarity(
    segments: Tensor, history: Tensor, history_valid: Tensor, aggregate: str = "max"
) -> Tensor:
    """(B, S) similarity of each segment embedding to the user's history embeddings.

    ``segments`` (B, S, E), ``history`` (B, N, E), ``history_valid`` (B, N).
    Cosine similarity to every real history segment, reduced over the history
    by ``aggregate``: "max" (the nearest history highlight) or "mean". A user
    with no history gets 0 (the branch then adds nothing).
    """
    if history.shape[1] == 0:
        return segments.new_zeros(segments.shape[:2], dtype=torch.float32)
    with full_precision_region(segments.device.type):  # float32 scores under bf16
        sim = torch.einsum(
            "bse,bne->bsn",
            F.normalize(segments.float(), dim=-1),
            F.normalize(history.float(), dim=-1),
        )
    valid = history_valid[:, None, :]
    if aggregate == "max":
        reduced = sim.masked_fill(~valid, float("-inf")).amax(dim=-1)
    elif aggregate == "mean":
        reduced = (sim * valid).sum(-1) / valid.sum(-1).clamp(min=1)
    else:
        raise ConfigError(f"phdgifs_full: aggregate must be 'max' or 'mean', got {aggregate!r}")
    has_history = history_valid.any(dim=-1, keepdim=True)
    return torch.where(has_history, reduced, torch.zeros_like(reduced))


class DistanceBranch(nn.Module):
    """PHD-GIFs' distance-based branch: a shared embedding of segments and history
    highlights (d -> 512 -> 128, ReLU between), scored by similarity to the history."""

    def __init__(
        self, feature_dim: int, hidden: tuple[int, ...], dropout: float, aggregate: str
    ) -> None:
        super().__init__()
        if aggregate not in ("max", "mean"):
            raise ConfigError(
                f"phdgifs_full: aggregate must be 'max' or 'mean', got {aggregate!r}"
            )
        layers: list[nn.Module] = []
        prev = feature_dim
        for i, size in enumerate(hidden):
            layers.append(nn.Linear(prev, size))
            if i < len(hidden) - 1:
                layers += [nn.ReLU(), Dropout(dropout)]
            prev = size
        self.embed = nn.Sequential(*layers)
        self.aggregate = aggregate

    def forward(self, segments: Tensor, history: Tensor, history_valid: Tensor) -> Tensor:
        return nearest_history_similarity(
            self.embed(segments), self.embed(history), history_valid, self.aggregate
        )


class PHDGIFsFull(nn.Module):
    """Late fusion ``s = s_concat + w * s_distance`` of PHD-GIFs' two branches.

    ``s_concat``: :class:`PHDGIFs` (MLP on [segment, mean history]).
    ``s_distance``: :class:`DistanceBranch` over the individual history
    segments. ``w`` is a learned scalar (starts at 1).
    """

    def __init__(
        self,
        feature_dim: int,
        width_mult: float = 1.0,
        window_s: float = 5.0,
        dropout: float = 0.5,
        normalize: bool = True,
        aggregate: str = "max",
    ) -> None:
        super().__init__()
        self.concat = PHDGIFs(feature_dim, width_mult, window_s, dropout, normalize)
        hidden = tuple(scaled(h, width_mult) for h in REFERENCE_HIDDEN)
        self.distance = DistanceBranch(feature_dim, hidden, dropout, aggregate)
        self.fusion = nn.Parameter(torch.ones(()))

    def forward(self, batch: Batch) -> ModelOutput:
        concat = self.concat(batch)
        segments = segment_features(batch, self.concat.window_s, self.concat.normalize)
        hist, hist_valid = history_segment_features(
            batch.history, batch.history_mask, self.concat.normalize
        )
        distance = self.distance(segments.features, hist, hist_valid)
        fused = concat.extras["segment_scores"] + self.fusion * distance
        out = segment_output(fused, segments)
        out.extras["concat_scores"] = concat.extras["segment_scores"]
        out.extras["distance_scores"] = distance * segments.mask.to(distance.dtype)
        return out


@register_model(
    ModelCard(
        name="phdgifs_full",
        summary="PHD-GIFs as published: concatenation branch late-fused with a "
        "distance-to-history branch; not the variant PR-Net's Table 1 compared (phdgifs)",
        paper="Garcia del Molino, Gygli. PHD-GIFs: Personalized Highlight Detection "
        "for Automatic GIF Creation. ACM MM 2018",
        granularity="segment",
        uses_history=True,
        default_loss="segment_ranking",
        paper_map=None,
        table=None,
    )
)
def phdgifs_full(
    feature_dim: int,
    width_mult: float = 1.0,
    window_s: float = 5.0,
    dropout: float = 0.5,
    normalize: bool = True,
    aggregate: str = "max",
) -> PHDGIFsFull:
    """Two-branch PHD-GIFs; ``width_mult`` scales both branches' hidden sizes (512, 128)."""
    width_mult = check_width_mult("phdgifs_full", width_mult)
    return PHDGIFsFull(feature_dim, width_mult, window_s, dropout, normalize, aggregate)
