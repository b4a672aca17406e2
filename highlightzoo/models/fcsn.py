"""FCSN (Rochan et al., ECCV 2018): a fully convolutional generic highlight detector.

The A-VHD reference's FCSN (see :mod:`highlightzoo.models.components.fcsn`):
a VGG-style 1-D encoder and an FCN-16s decoder with non-affine instance norms,
trained with 2-class cross-entropy per step on L2-normalised features. It
ignores the user's history. Score of a step = ``logit_1 - logit_0`` (class 1 =
highlight), monotone in the highlight probability.
"""

from __future__ import annotations

from torch import Tensor, nn

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.models.components.fcsn import FCSN, run_padded
from highlightzoo.models.components.heads import full_precision
from highlightzoo.models.components.norm import TemporalInstanceNorm
from highlightzoo.models.components.sizing import check_width_mult
from highlightzoo.models.registry import ModelCard, register_model


def logits_to_output(logits: Tensor) -> ModelOutput:
    """ModelOutput of a 2-class model: scores = logit1 - logit0, probs = softmax class 1.

    ``logits`` (B, T, 2) are zero on padding, as :func:`run_padded` returns them, so
    scores are 0 and probs 0.5 there with no masking here. Float32.
    """
    logits = full_precision(logits)
    return ModelOutput(
        scores=logits[..., 1] - logits[..., 0],
        extras={"logits": logits},
        probs=logits.softmax(dim=-1)[..., 1],
    )


class FCSNDetector(nn.Module):
    """FCSN over a padded batch: each video's scores are those it gets alone at its real
    length (one forward for the batch, masked past each row's end)."""

    def __init__(self, feature_dim: int, width_mult: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = FCSN(feature_dim, width_mult, norm=TemporalInstanceNorm, dropout=dropout,
                        l2_normalize=True)

    def forward(self, batch: Batch) -> ModelOutput:
        logits = run_padded(  # steps L2-normalised inside the net's first conv
            lambda x, mask: self.net(x, mask=mask), batch.video, batch.video_mask, 2,
            batch.video_ids, batch.host_counts(),
        )
        return logits_to_output(logits)


@register_model(
    ModelCard(
        name="fcsn",
        summary="FCSN: VGG/FCN-16s 1-D conv net, 2-class per step, no history",
        paper="Rochan, Ye, Wang. Video Summarization Using Fully Convolutional "
        "Sequence Networks. ECCV 2018",
        granularity="frame",
        uses_history=False,
        default_loss="cross_entropy",
        paper_map=15.15,
        own_paper_map=15.22,  # FCSN* in Table 1: the number A-VHD's paper reports
        table="table1",
    )
)
def fcsn(feature_dim: int, width_mult: float = 1.0, dropout: float = 0.5) -> FCSNDetector:
    """FCSN; ``width_mult`` scales every channel count (1.0 = reference, 37.9M encoder at 8192-d)."""
    return FCSNDetector(feature_dim, check_width_mult("fcsn", width_mult), dropout)
