"""Floors: two detectors with no trainable parameters that every learned model must beat.

- ``random``: each step gets a uniform random score. Its mAP is the chance
  level of the test videos (the expected AP of a random ranking is about the
  share of positive steps). The draws depend only on the model's seed (taken
  from torch's global RNG when the model is built, and saved in its state
  dict as the buffer ``seed``) and the video id, so a rerun, a reload from a
  checkpoint and a video alone or padded in a batch all give the same scores.
- ``history_similarity``: each step is scored by the cosine between its
  feature and the user's mean history feature (the mean over segments of each
  segment's mean step feature). A personalized detector that does not beat it
  has learned nothing from history that a cosine could not. With no history
  every step scores 0 (a tie everywhere: chance level).

Both give ``probs`` in [0, 1], monotone in the score: the uniform draw itself
for ``random``, ``(1 + cosine) / 2`` for ``history_similarity``. Their
``default_loss`` is ``ranking`` (a pairwise hinge on ``scores``), so a loss can
be *computed* for validation logs; there is nothing to optimise and the
trainer skips optimisation for models without trainable parameters.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.errors import ConfigError
from highlightzoo.models.components.heads import full_precision_region
from highlightzoo.models.components.history import masked_mean
from highlightzoo.models.registry import ModelCard, register_model

EPS = 1e-8


def video_generator_seed(seed: int, video_id: str) -> int:
    """A 63-bit generator seed from the model seed and a video id (stable across processes).

    Python's ``hash`` of a string changes per process, so a digest is used.
    """
    digest = hashlib.sha256(f"{int(seed)}:{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def random_step_scores(seed: int, video_id: str, offset: int, steps: int) -> Tensor:
    """(steps,) uniform [0, 1) scores of steps ``offset .. offset+steps-1`` of one video.

    The whole prefix is drawn so that a step's score does not depend on the
    clip it is seen in.
    """
    g = torch.Generator().manual_seed(video_generator_seed(seed, video_id))
    return torch.rand(offset + steps, generator=g)[offset:]


def user_history_mean(history: Tensor, history_mask: Tensor) -> Tensor:
    """(B, D) mean history feature: per-segment step means, then the mean over real segments.

    Each segment counts once whatever its length (a segment is one choice of
    the user). ``history`` (B, N, L, D), ``history_mask`` (B, N, L). A user
    with no history gets the zero vector.
    """
    segment_means = masked_mean(history, history_mask, dim=2)  # (B, N, D)
    return masked_mean(segment_means, history_mask.any(dim=-1), dim=1)


def cosine_to_vector(video: Tensor, vector: Tensor) -> Tensor:
    """(B, T) cosine between each step of ``video`` (B, T, D) and the row's ``vector`` (B, D).

    A zero vector on either side gives 0 (``EPS`` in the denominator).
    """
    dot = torch.einsum("btd,bd->bt", video, vector)
    norms = video.norm(dim=-1) * vector.norm(dim=-1, keepdim=True)
    return dot / norms.clamp(min=EPS)


class RandomFloor(nn.Module):
    """Uniform random step scores, a fixed function of (model seed, video id, step)."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        # drawn from torch's global RNG, so torch.manual_seed before the build fixes it (no
        # .item() here: the registry may first build the model on the meta device; random_,
        # not randint, whose meta version imports torch's compiler stack: the same draw)
        self.register_buffer("seed", torch.empty((), dtype=torch.long).random_(0, 2**62))

    def forward(self, batch: Batch) -> ModelOutput:
        if len(batch.video_ids) != len(batch):
            raise ConfigError(
                f"model 'random' draws each video's scores from its id, but the batch has "
                f"{len(batch.video_ids)} video ids for {len(batch)} rows"
            )
        lengths = batch.video_mask.sum(dim=1).tolist()
        offsets = batch.offsets.tolist() if batch.offsets is not None else [0] * len(batch)
        seed = int(self.seed.item())
        scores = torch.zeros(batch.video_mask.shape, dtype=torch.float32)
        for row, (video_id, offset, steps) in enumerate(
            zip(batch.video_ids, offsets, lengths, strict=True)
        ):
            scores[row, :steps] = random_step_scores(seed, video_id, int(offset), int(steps))
        scores = scores.to(batch.video.device)
        return ModelOutput(scores=scores, probs=scores)


class HistorySimilarityFloor(nn.Module):
    """Cosine between each step and the user's mean history feature (no parameters)."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.feature_dim = feature_dim

    def forward(self, batch: Batch) -> ModelOutput:
        # float32 throughout, also under bf16 autocast: the cosine is the score
        with full_precision_region(batch.video.device.type):
            user = user_history_mean(batch.history.float(), batch.history_mask)
            cosine = cosine_to_vector(batch.video.float(), user) * batch.video_mask.float()
        return ModelOutput(scores=cosine, probs=(1.0 + cosine) / 2.0)


FLOOR_PAPER = "none: a floor of highlightzoo (no trainable parameters), see docs/history.md"


@register_model(
    ModelCard(
        name="random",
        summary="floor: uniform random step scores (chance level); no parameters, no history",
        paper=FLOOR_PAPER,
        granularity="frame",
        uses_history=False,
        default_loss="ranking",
        table="table1",
        trainable=False,
    )
)
def random_floor(feature_dim: int) -> RandomFloor:
    """The chance floor; its seed is drawn from torch's global RNG at build time."""
    return RandomFloor(feature_dim)


@register_model(
    ModelCard(
        name="history_similarity",
        summary="floor: cosine of each step to the user's mean history feature; no parameters",
        paper=FLOOR_PAPER,
        granularity="frame",
        uses_history=True,
        default_loss="ranking",
        table="table1",
        trainable=False,
    )
)
def history_similarity(feature_dim: int) -> HistorySimilarityFloor:
    """The history floor: what a cosine to the history mean gets without any learning."""
    return HistorySimilarityFloor(feature_dim)
