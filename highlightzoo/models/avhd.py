"""A-VHD (Rochan et al., ECCV 2020): FCSN whose decoder norms are conditioned on the user.

Adaptive video highlight detection: the FCSN of :mod:`highlightzoo.models.fcsn`
with both decoder norms replaced by temporal adaptive instance norms (T-AIN),
whose per-channel scale and bias are predicted from the user's history by
:class:`~highlightzoo.models.components.norm.TAINHistoryNet` (the reference's
"attn" variant: one item per history video, self-attention, mean, linear).
Users with no history get an identity affine (weight 1, bias 0); the
reference skips them instead. Loss: 2-class cross-entropy per step.
"""

from __future__ import annotations

from torch import nn

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.models.components.fcsn import FCSN, run_padded
from highlightzoo.models.components.norm import (
    TAINHistoryNet,
    TemporalAdaptiveInstanceNorm,
)
from highlightzoo.models.components.sizing import check_width_mult
from highlightzoo.models.fcsn import logits_to_output
from highlightzoo.models.registry import ModelCard, register_model


class AVHD(nn.Module):
    """FCSN + T-AIN conditioned on a per-user history summary."""

    def __init__(self, feature_dim: int, width_mult: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = FCSN(
            feature_dim, width_mult, norm=TemporalAdaptiveInstanceNorm, dropout=dropout,
            l2_normalize=True,
        )
        ch = self.net.encoder.channels
        self.history_net = TAINHistoryNet(feature_dim, ch.fc, ch.pool4)

    def forward(self, batch: Batch) -> ModelOutput:
        counts = batch.host_counts()  # the collate's lengths: no device reads (syncs) below
        fc7_params, pool4_params = self.history_net(
            batch.history, batch.history_mask, batch.history_video, batch.user_ids,
            n_videos=counts.history_videos if counts is not None else None,
        )

        logits = run_padded(
            lambda x, mask: self.net(x, (fc7_params, pool4_params), mask), batch.video,
            batch.video_mask, 2, batch.video_ids, counts,
        )
        return logits_to_output(logits)


@register_model(
    ModelCard(
        name="avhd",
        summary="A-VHD: FCSN with temporal adaptive instance norm predicted from user history",
        paper="Rochan, Reddy, Ye, Wang. Adaptive Video Highlight Detection by Learning "
        "from User History. ECCV 2020",
        granularity="frame",
        uses_history=True,
        default_loss="cross_entropy",
        paper_map=16.68,
        own_paper_map=16.73,  # A-VHD* in Table 1: the number A-VHD's own paper reports
        table="table1",
    )
)
def avhd(feature_dim: int, width_mult: float = 1.0, dropout: float = 0.5) -> AVHD:
    """A-VHD; ``width_mult`` scales the FCSN channels and with them the T-AIN parameter count."""
    return AVHD(feature_dim, check_width_mult("avhd", width_mult), dropout)
