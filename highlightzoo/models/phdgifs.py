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
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.models.components.fcsn import scaled
from highlightzoo.models.components.heads import MLPHead
from highlightzoo.models.components.norm import l2_normalize_steps
from highlightzoo.models.registry import ModelCard, register_model
from highlightzoo.models.video2gif import REFERENCE_HIDDEN, segment_features, segment_output


def history_feature(history: Tensor, history_mask: Tensor, normalize: bool = True) -> Tensor:
    """(B, D) mean over real history segments of each segment's mean step; 0 without history."""
    feats = l2_normalize_steps(history) if normalize else history
    step_w = history_mask.to(feats.dtype)
    seg_mean = (feats * step_w[..., None]).sum(dim=2) / step_w.sum(dim=2).clamp(min=1.0)[..., None]
    seg_w = history_mask.any(dim=-1).to(feats.dtype)
    return (seg_mean * seg_w[..., None]).sum(dim=1) / seg_w.sum(dim=1).clamp(min=1.0)[:, None]


class PHDGIFs(nn.Module):
    """MLP score of ``[segment feature, history feature]`` per segment."""

    def __init__(
        self,
        feature_dim: int,
        width: float = 1.0,
        window_s: float = 5.0,
        dropout: float = 0.5,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.window_s, self.normalize = window_s, normalize
        hidden = tuple(scaled(h, width) for h in REFERENCE_HIDDEN)
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
        summary="PHD-GIFs: MLP on [5-s segment mean, mean history feature], ranking loss",
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
    width: float = 1.0,
    window_s: float = 5.0,
    dropout: float = 0.5,
    normalize: bool = True,
) -> PHDGIFs:
    """PHD-GIFs; ``width`` scales the MLP hidden sizes (512, 128)."""
    return PHDGIFs(feature_dim, width, window_s, dropout, normalize)
