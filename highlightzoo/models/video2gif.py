"""Video2GIF (Gygli, Song, Cao, CVPR 2016): generic segment ranking, no history.

Each video is cut into fixed ``window_s``-second segments (5 s, as in PR-Net's
comparison; the original used a shot detector); a segment's feature is the
mean of its (L2-normalised) steps; an MLP (512 -> 128 -> 1, ReLU, dropout
0.5) scores it. Trained with the Huber-smoothed pairwise ranking loss within
a video (``segment_huber_ranking``). Every step takes its segment's score.
"""

from __future__ import annotations

from torch import Tensor, nn

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.models.components.fcsn import scaled
from highlightzoo.models.components.heads import MLPHead
from highlightzoo.models.components.norm import l2_normalize_steps
from highlightzoo.models.components.pooling import (
    Segments,
    broadcast_segment_scores,
    pool_segments,
)
from highlightzoo.models.registry import ModelCard, register_model

REFERENCE_HIDDEN = (512, 128)


def segment_output(segment_scores: Tensor, segments: Segments) -> ModelOutput:
    """ModelOutput of a segment model: step scores broadcast from (B, S) segment scores."""
    segment_scores = segment_scores * segments.mask.to(segment_scores.dtype)
    return ModelOutput(
        scores=broadcast_segment_scores(segment_scores, segments.index),
        extras={
            "segment_scores": segment_scores,
            "segment_mask": segments.mask,
            "segment_index": segments.index,
        },
    )


def segment_features(batch: Batch, window_s: float, normalize: bool) -> Segments:
    """Fixed-window segments of the batch's videos (steps L2-normalised first if asked)."""
    video = l2_normalize_steps(batch.video) if normalize else batch.video
    return pool_segments(
        video, batch.video_mask, batch.rate, window_s, batch.offsets, batch.video_ids
    )


class Video2GIF(nn.Module):
    """MLP score of each segment's mean feature; no history."""

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
        self.head = MLPHead(feature_dim, hidden, dropout)

    def forward(self, batch: Batch) -> ModelOutput:
        segments = segment_features(batch, self.window_s, self.normalize)
        return segment_output(self.head(segments.features).squeeze(-1), segments)


@register_model(
    ModelCard(
        name="video2gif",
        summary="Video2GIF: MLP on 5-s segment means, Huber ranking loss, no history",
        paper="Gygli, Song, Cao. Video2GIF: Automatic Generation of Animated GIFs "
        "from Video. CVPR 2016",
        granularity="segment",
        uses_history=False,
        default_loss="segment_huber_ranking",
        paper_map=14.75,
        table="table1",
    )
)
def video2gif(
    feature_dim: int,
    width: float = 1.0,
    window_s: float = 5.0,
    dropout: float = 0.5,
    normalize: bool = True,
) -> Video2GIF:
    """Video2GIF; ``width`` scales the MLP hidden sizes (512, 128)."""
    return Video2GIF(feature_dim, width, window_s, dropout, normalize)
