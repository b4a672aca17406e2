"""Video2GIF (Gygli, Song, Cao, CVPR 2016): generic segment ranking, no history.

As released (gyglim/video2gif_code, ``video2gif/model.py`` lines 76-112 and
``video2gif/__init__.py`` lines 122-135): every C3D snippet (here: every
feature step, a C3D pool5 vector at 8192-d) is scored by an MLP fc6 (4096)
-> 512 -> 128 -> 1 with ReLUs, and a segment's score is the *mean of its
snippets' scores*. Segments are fixed ``window_s``-second windows (5 s, as in
PR-Net's comparison; the original used a shot detector). Dropout 0.5 after
each hidden layer (training only; the release is inference-only and has
none). Trained with the Huber-smoothed pairwise ranking loss within a video
(``segment_huber_ranking``). Every step takes its segment's score.
"""

from __future__ import annotations

from torch import Tensor, nn

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.checks import flag
from highlightzoo.models.components.fcsn import scaled
from highlightzoo.models.components.heads import MLPHead, full_precision
from highlightzoo.models.components.norm import inverse_l2_norms, l2_normalize_steps
from highlightzoo.models.components.pooling import (
    Segments,
    broadcast_segment_scores,
    check_window_s,
    pool_segments,
)
from highlightzoo.models.components.sizing import check_width_mult
from highlightzoo.models.registry import ModelCard, register_model

REFERENCE_HIDDEN = (512, 128)
# The released Video2GIF head on C3D pool5 (8192-d): fc6 (4096) then 512 -> 128 -> 1.
RELEASED_HIDDEN = (4096, *REFERENCE_HIDDEN)


def segment_output(segment_scores: Tensor, segments: Segments) -> ModelOutput:
    """ModelOutput of a segment model: step scores broadcast from (B, S) segment scores.

    Float32 scores; ``probs`` = the scores (a ranking model has no probability;
    docs/evaluation.md).
    """
    segment_scores = full_precision(segment_scores)
    segment_scores = segment_scores * segments.mask.to(segment_scores.dtype)
    scores = broadcast_segment_scores(segment_scores, segments.index)
    return ModelOutput(
        scores=scores,
        probs=scores,
        extras={
            "segment_scores": segment_scores,
            "segment_mask": segments.mask,
            "segment_index": segments.index,
        },
    )


def segment_features(batch: Batch, window_s: float, normalize: bool) -> Segments:
    """Fixed-window segments of the batch's videos (the means of L2-normalised steps if
    asked, with the normalisation folded into the pooling weights: no normalised copy)."""
    return pool_segments(
        batch.video, batch.video_mask, batch.rate, window_s, batch.offsets, batch.video_ids,
        batch.host_counts(), step_scale=inverse_l2_norms(batch.video) if normalize else None,
    )


def mean_step_scores(step_scores: Tensor, batch: Batch, window_s: float) -> Segments:
    """Segments whose ``features`` (B, S, 1) are the mean score of their valid steps.

    The released Video2GIF averages the scores of a segment's snippets
    (``video2gif/__init__.py`` line 135), not the score of the mean snippet.
    """
    return pool_segments(
        step_scores[..., None], batch.video_mask, batch.rate, window_s, batch.offsets,
        batch.video_ids, batch.host_counts(),
    )


class Video2GIF(nn.Module):
    """Per-step MLP (fc6 4096 -> 512 -> 128 -> 1) averaged over each segment; no history."""

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
        hidden = tuple(scaled(h, width_mult) for h in RELEASED_HIDDEN)
        self.head = MLPHead(feature_dim, hidden, dropout)

    def forward(self, batch: Batch) -> ModelOutput:
        video = l2_normalize_steps(batch.video) if self.normalize else batch.video
        step_scores = self.head(video).squeeze(-1)  # one score per snippet (step)
        segments = mean_step_scores(step_scores, batch, self.window_s)
        return segment_output(segments.features.squeeze(-1), segments)


@register_model(
    ModelCard(
        name="video2gif",
        summary="Video2GIF: per-step fc6+MLP scores averaged per 5-s segment, Huber ranking",
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
    width_mult: float = 1.0,
    window_s: float = 5.0,
    dropout: float = 0.5,
    normalize: bool = True,
) -> Video2GIF:
    """Video2GIF as released; ``width_mult`` scales the hidden sizes (4096, 512, 128)."""
    width_mult = check_width_mult("video2gif", width_mult)
    return Video2GIF(feature_dim, width_mult, window_s, dropout, normalize)
