"""Evaluation metrics of highlightzoo: small pure functions, numpy/torch/list in, floats out.

- :mod:`~highlightzoo.metrics.ap`: per-video AP in the field's three modes
  (``"interpolated"`` = PHD-GIFs / Video2GIF / A-VHD / PR-Net, ``"exact"``,
  ``"voc11"``), its vectorised batched form, and mAP over (user, video) pairs.
- :mod:`~highlightzoo.metrics.segments`: nMSD, top-k highlight segments in
  seconds (what a GIF maker consumes), hit@k and recall@k.
- :mod:`~highlightzoo.metrics.protocols`: the two evaluation protocols
  (``"steps"``, ``"avhd"``) and :func:`avhd_protocol_ap`, one video's AP under
  the A-VHD reference test protocol (PR-Net Table 1).
- :mod:`~highlightzoo.metrics.windows`: protocol transforms (A-VHD 5-second
  window averaging, segment-to-step score broadcasting).
- :mod:`~highlightzoo.metrics.uncertainty`: bootstrap intervals, paired tests,
  intervals over training seeds.

Labels always come first, scores second. Bad input raises
:class:`~highlightzoo.errors.MetricInputError`; a video with no positive label
raises :class:`~highlightzoo.errors.NoPositiveLabelError` (the batched form
counts it instead). Definitions: ``docs/evaluation.md``.
"""

from highlightzoo.metrics.ap import (
    AP_MODES,
    APMode,
    BatchedAP,
    MAPResult,
    average_precision,
    batched_average_precision,
    mean_average_precision,
)
from highlightzoo.metrics.protocols import PROTOCOLS, Protocol, avhd_protocol_ap
from highlightzoo.metrics.segments import (
    Segment,
    hit_at_k,
    nmsd,
    positive_runs,
    recall_at_k,
    top_k_segments,
)
from highlightzoo.metrics.uncertainty import (
    ConfidenceInterval,
    PairedTest,
    SeedSummary,
    aggregate_seeds,
    bootstrap_ci,
    paired_test,
)
from highlightzoo.metrics.windows import broadcast_segment_scores, window_average

__all__ = [
    "AP_MODES",
    "APMode",
    "BatchedAP",
    "ConfidenceInterval",
    "MAPResult",
    "PROTOCOLS",
    "PairedTest",
    "Protocol",
    "Segment",
    "SeedSummary",
    "aggregate_seeds",
    "average_precision",
    "avhd_protocol_ap",
    "batched_average_precision",
    "bootstrap_ci",
    "broadcast_segment_scores",
    "hit_at_k",
    "mean_average_precision",
    "nmsd",
    "paired_test",
    "positive_runs",
    "recall_at_k",
    "top_k_segments",
    "window_average",
]
