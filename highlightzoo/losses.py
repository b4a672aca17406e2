"""The loss registry: every training loss is ``loss(output, batch) -> scalar tensor``.

A model card names its ``default_loss``; the trainer calls
``get_loss(card.default_loss)(output, batch)`` and never knows which model it
holds. Each registered loss is a thin adapter over small pure tensor
functions (also exported, with known-answer tests) so the maths can be read
and checked on its own.

Conventions shared by all losses:

- ``labels > 0.5`` on a real step is a positive ("labelled") step; every
  other real step is *unlabelled* (PHD-GIFs labels are positive-unlabelled:
  unmarked steps may still be highlights, but all losses here treat them as
  negatives, as the paper and the baselines do).
- A row (clip) with no positive step contributes nothing (zero loss, zero
  gradient), for every loss, so that switching losses never changes which
  clips train the model. The batch loss is the mean of the per-row losses
  over the rows that contribute; a batch where no row contributes gives a
  zero that still has a graph (``backward()`` works, gradients are zero).
- Everything is vectorised with masks; no Python branching on tensor values.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.checks import int_at_least, number_at_least
from highlightzoo.errors import ConfigError

LossFn = Callable[[ModelOutput, Batch], Tensor]

_LOSSES: dict[str, Callable[..., Tensor]] = {}

# Pair-based losses use at most this many positive and this many negative steps
# (or segments) per row, so at most MAX_SIDE**2 pairs per row; see pick_steps.
MAX_SIDE = 512


# --------------------------------------------------------------------------- registry


def register_loss(name: str) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator: register ``fn(output, batch, **params) -> scalar`` under ``name``."""

    def wrap(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in _LOSSES and _LOSSES[name] is not fn:
            raise ValueError(f"loss name {name!r} is already registered")
        _LOSSES[name] = fn
        return fn

    return wrap


#: the checks of the built-in losses' keyword parameters (a plugin loss's own are its own):
#: a margin of "x", None or True, or a max_side of 0.5, was a TypeError or RuntimeError deep in
#: the first training step; a NaN margin made every loss NaN
_PARAM_CHECKS: dict[str, Callable[[object], object]] = {
    "margin": lambda v: number_at_least(v, 0, "margin (of the hinge)"),
    "delta": lambda v: number_at_least(v, 0, "delta (of the Huber smoothing)", above=True),
    "k_factor": lambda v: int_at_least(v, 1, "k_factor (pseudo-negatives per positive)"),
    "max_side": lambda v: int_at_least(v, 1, "max_side (steps or segments per side)"),
}


def get_loss(name: str, **params: float) -> LossFn:
    """The loss registered as ``name``, with keyword ``params`` (e.g. ``margin=2.0``) bound.

    A parameter the loss does not take, or a value of the wrong kind for a built-in one
    (``margin`` >= 0, ``delta`` > 0, ``k_factor`` and ``max_side`` ints >= 1), is a
    :class:`ConfigError` naming the loss, here rather than at the first training step.
    """
    if name not in _LOSSES:
        raise ConfigError(f"unknown loss {name!r}; registered losses: {', '.join(list_losses())}")
    fn = _LOSSES[name]
    if not params:
        return fn
    signature = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values())
    own = [p for p in list(signature)[2:] if signature[p].kind is not inspect.Parameter.VAR_KEYWORD]
    checked = {}
    for key, value in params.items():
        if key not in own and not takes_any:
            raise ConfigError(f"loss {name!r} takes no parameter {key!r}; it takes "
                              f"{', '.join(own) or 'none'}")
        try:
            checked[key] = _PARAM_CHECKS[key](value) if key in _PARAM_CHECKS else value
        except ConfigError as err:
            raise ConfigError(f"loss {name!r}: {err}") from None
    return functools.partial(fn, **checked)


def list_losses() -> list[str]:
    """Sorted names of the registered losses."""
    return sorted(_LOSSES)


# --------------------------------------------------------------------------- pure helpers


def positive_steps(labels: Tensor, mask: Tensor) -> Tensor:
    """(B, T) bool: real steps labelled as highlight (``labels > 0.5``)."""
    return (labels > 0.5) & mask


def mean_over_rows(row_loss: Tensor, row_counts: Tensor) -> Tensor:
    """Mean of ``row_loss`` (B,) over rows with ``row_counts > 0``; 0 (with graph) if none."""
    used = row_counts > 0
    return (row_loss * used).sum() / used.sum().clamp(min=1)


def masked_log_softmax(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """log-softmax of ``x`` over the True entries of ``mask`` along ``dim``; 0 on masked entries.

    Masked entries take no part in the normalisation (they enter as ``-inf``)
    and come out as 0, not ``-inf``: a later ``logaddexp(-inf, -inf)`` would
    give NaN gradients even where the result is masked away (``0 * NaN``).
    Callers must ignore masked entries. A row with no True entry keeps its raw
    values in the normalisation so that it stays finite.
    """
    keep = mask | ~mask.any(dim=dim, keepdim=True)
    return x.masked_fill(~keep, float("-inf")).log_softmax(dim=dim).masked_fill(~mask, 0.0)


def top_k_pseudo_negatives(b: Tensor, positives: Tensor, mask: Tensor, k_factor: int = 5) -> Tensor:
    """(B, T) bool: the set mho of Eq. 8, the K unlabelled real steps with the highest ``b``.

    ``K = k_factor * |Omega|`` per row (Omega = positives), or every unlabelled
    step when fewer are available. Selection does not backpropagate (it is an
    index set); ties are broken by position (stable sort).
    """
    unlabelled = mask & ~positives
    k = positives.sum(dim=1, keepdim=True) * k_factor
    ranked = b.detach().masked_fill(~unlabelled, float("-inf"))
    order = ranked.argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(b.shape[1], device=b.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)
    return unlabelled & (rank < k)


def bidirectional_contrastive(
    highlight: Tensor, non_highlight: Tensor, labels: Tensor, mask: Tensor, k_factor: int = 5
) -> Tensor:
    """PR-Net's bi-directional contrastive loss (Eq. 8-9), as corrected in docs/models.md (``prnet``, "Loss").

    ``l~ = softmax_T(l)`` and ``b~ = softmax_T(b)`` over the real steps of each
    clip (Eq. 9). Per clip::

        L = [ sum_{y in Omega} -log(l~_y / (l~_y + b~_y))
            + sum_{x in mho}   -log(b~_x / (l~_x + b~_x)) ] / (|Omega| + |mho|)

    Omega = labelled steps, mho = :func:`top_k_pseudo_negatives`. Everything is
    in log space (``logaddexp``), so no ratio of tiny softmax values is formed.

    Why not the paper's printed Eq. 8: the extracted text reads
    ``sum log(l~+b~) + sum log(l~+b~) - (sum l~_y + sum b~_x)``; taken
    literally, minimising it lowers ``l~`` of positives (through the first
    sum) while the unlogged last bracket barely acts, the opposite of the
    stated aim (pull positives to the comprehensive preference, negatives to
    the non-highlight preference). The logs of the last bracket were lost in
    extraction; with them restored the two sums combine into the
    ``-log`` ratios above.

    Shapes: ``highlight`` (= l), ``non_highlight`` (= b), ``labels`` (B, T)
    float, ``mask`` (B, T) bool.
    Returns the mean over clips that have a labelled step.
    """
    positives = positive_steps(labels, mask)
    mho = top_k_pseudo_negatives(non_highlight, positives, mask, k_factor)
    log_l = masked_log_softmax(highlight, mask, dim=1)  # log l~ (Eq. 9)
    log_b = masked_log_softmax(non_highlight, mask, dim=1)  # log b~ (Eq. 9)
    log_both = torch.logaddexp(log_l, log_b)
    pull = (log_both - log_l).masked_fill(~positives, 0.0)  # -log(l~/(l~+b~)) on Omega
    push = (log_both - log_b).masked_fill(~mho, 0.0)  # -log(b~/(l~+b~)) on mho
    terms = (positives | mho).sum(dim=1)
    row_loss = (pull + push).sum(dim=1) / terms.clamp(min=1)
    return mean_over_rows(row_loss, positives.sum(dim=1))


def two_class_cross_entropy(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Unweighted 2-class cross-entropy per real step; class 1 = highlight.

    ``logits`` (B, T, 2); unlabelled real steps are class 0. Per row: mean over
    its real steps; batch: mean over rows with a labelled step.
    """
    positives = positive_steps(labels, mask)
    target = positives.long()
    per_step = F.cross_entropy(rearrange(logits, "b t c -> b c t"), target, reduction="none")
    per_step = per_step.masked_fill(~mask, 0.0)
    row_loss = per_step.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return mean_over_rows(row_loss, positives.sum(dim=1))


def pick_steps(mask: Tensor, max_side: int = MAX_SIDE) -> tuple[Tensor, Tensor]:
    """Indices (B, K) of the steps a pair loss uses on one side of its pairs, and their validity.

    With ``T <= max_side`` this is every step (``K = T``, validity = ``mask``).
    Otherwise each row keeps a uniformly random subset of ``max_side`` of its
    True steps (all of them when it has fewer), so a pair loss costs at most
    ``max_side**2`` pairs per row: on long videos the pairs are *subsampled*
    (a fresh subset each call, drawn from torch's global RNG).
    """
    batch, steps = mask.shape
    if steps <= max_side:
        return torch.arange(steps, device=mask.device).expand(batch, steps), mask
    keys = torch.rand(mask.shape, device=mask.device).masked_fill(~mask, 2.0)
    idx = keys.topk(max_side, dim=1, largest=False).indices
    return idx, mask.gather(1, idx)


def huber_hinge(u: Tensor, delta: float = 1.5) -> Tensor:
    """Video2GIF's Huber-smoothed hinge, elementwise, without branching.

    ``0`` for ``u <= 0``; ``0.5 u^2`` for ``0 < u <= delta``;
    ``delta (u - 0.5 delta)`` for ``u > delta`` (continuous with slope ``delta``).
    """
    pos = u.clamp(min=0.0)
    quad = pos.clamp(max=delta)
    return 0.5 * quad**2 + delta * (pos - quad)


def pairwise_hinge(
    scores: Tensor,
    positives: Tensor,
    negatives: Tensor,
    margin: float = 1.0,
    huber_delta: float | None = None,
    max_side: int = MAX_SIDE,
) -> Tensor:
    """Pairwise ranking within each row: every positive above every negative by ``margin``.

    ``scores`` (B, K) with boolean ``positives``/``negatives`` (B, K). Pair
    violation ``u = margin - s_pos + s_neg``; per pair ``max(0, u)``, or
    :func:`huber_hinge` ``(u, huber_delta)`` when ``huber_delta`` is given.
    Per row: mean over its pairs (subsampled via :func:`pick_steps` on long
    rows); batch: mean over rows with at least one pair.
    """
    pos_idx, pos_ok = pick_steps(positives, max_side)
    neg_idx, neg_ok = pick_steps(negatives, max_side)
    s_pos, s_neg = scores.gather(1, pos_idx), scores.gather(1, neg_idx)
    u = margin - rearrange(s_pos, "b i -> b i 1") + rearrange(s_neg, "b j -> b 1 j")
    per_pair = F.relu(u) if huber_delta is None else huber_hinge(u, huber_delta)
    valid = rearrange(pos_ok, "b i -> b i 1") & rearrange(neg_ok, "b j -> b 1 j")
    per_pair = per_pair.masked_fill(~valid, 0.0)
    pairs = valid.sum(dim=(1, 2))
    row_loss = per_pair.sum(dim=(1, 2)) / pairs.clamp(min=1)
    return mean_over_rows(row_loss, pairs)


def segment_labels(labels: Tensor, segment_index: Tensor, num_segments: int) -> Tensor:
    """(B, S) float: 1 for a segment with at least one labelled step, else 0.

    ``segment_index`` (B, T) long maps each step to its segment, -1 on padding.
    "Any labelled step" is the choice made here (PHD-GIFs marks a shot as a
    highlight when the user's GIF overlaps it).
    """
    valid = segment_index >= 0
    out = labels.new_zeros(labels.shape[0], num_segments)
    src = ((labels > 0.5) & valid).to(labels.dtype)
    return out.scatter_reduce(1, segment_index.clamp(min=0), src, reduce="amax")


def preference_triplet(
    anchor: Tensor,
    embed: Tensor,
    positives: Tensor,
    negatives: Tensor,
    margin: float = 1.0,
    max_side: int = MAX_SIDE,
) -> Tensor:
    """Triplet loss for PR-Net_triplet with the comprehensive preference as anchor.

    For a labelled step ``y`` the anchor is its own comprehensive preference
    ``a = p^c_y``, the positive its embedding ``s_y`` and each unlabelled step
    ``x`` of the same clip gives a negative ``s_x``. Similarity is the dot
    product of Eq. 6 (the quantity PR-Net scores with), so the triplet is
    ``max(0, margin - a.s_y + a.s_x)``. Per row: mean over all (y, x) pairs
    (subsampled on long rows, see :func:`pick_steps`); batch: mean over rows
    with a pair. ``anchor``/``embed`` (B, T, D).
    """
    pos_idx, pos_ok = pick_steps(positives, max_side)
    neg_idx, neg_ok = pick_steps(negatives, max_side)
    dim = anchor.shape[-1]
    a = anchor.gather(1, pos_idx[..., None].expand(-1, -1, dim))
    s_pos = embed.gather(1, pos_idx[..., None].expand(-1, -1, dim))
    s_neg = embed.gather(1, neg_idx[..., None].expand(-1, -1, dim))
    sim_pos = (a * s_pos).sum(-1)  # (B, I)
    sim_neg = torch.einsum("bid,bjd->bij", a, s_neg)  # (B, I, J)
    per_pair = F.relu(margin - rearrange(sim_pos, "b i -> b i 1") + sim_neg)
    valid = rearrange(pos_ok, "b i -> b i 1") & rearrange(neg_ok, "b j -> b 1 j")
    per_pair = per_pair.masked_fill(~valid, 0.0)
    pairs = valid.sum(dim=(1, 2))
    row_loss = per_pair.sum(dim=(1, 2)) / pairs.clamp(min=1)
    return mean_over_rows(row_loss, pairs)


# --------------------------------------------------------------------------- registered losses


@register_loss("contrastive")
def contrastive_loss(output: ModelOutput, batch: Batch, k_factor: int = 5) -> Tensor:
    """PR-Net's bi-directional contrastive loss on extras ``l``, ``b`` (see
    :func:`bidirectional_contrastive`)."""
    highlight = output.require("l", "the contrastive loss")
    non_highlight = output.require("b", "the contrastive loss")
    return bidirectional_contrastive(
        highlight, non_highlight, batch.labels, batch.video_mask, k_factor
    )


@register_loss("cross_entropy")
def cross_entropy_loss(output: ModelOutput, batch: Batch) -> Tensor:
    """2-class cross-entropy on extras ``logits`` (B, T, 2); unlabelled = negative."""
    logits = output.require("logits", "the cross_entropy loss")
    return two_class_cross_entropy(logits, batch.labels, batch.video_mask)


@register_loss("ranking")
def ranking_loss(
    output: ModelOutput, batch: Batch, margin: float = 1.0, max_side: int = MAX_SIDE
) -> Tensor:
    """Pairwise margin ranking on ``scores``: labelled steps above unlabelled steps of the
    same video, ``max(0, margin - s_pos + s_neg)``; pairs subsampled on long videos."""
    positives = positive_steps(batch.labels, batch.video_mask)
    negatives = batch.video_mask & ~positives
    return pairwise_hinge(output.scores, positives, negatives, margin, None, max_side)


def _segment_sides(output: ModelOutput, batch: Batch, who: str) -> tuple[Tensor, Tensor, Tensor]:
    """Segment scores and the positive / negative segment masks, from the segment extras."""
    scores = output.require("segment_scores", who)
    seg_mask = output.require("segment_mask", who).bool()
    index = output.require("segment_index", who)
    # Steps that are padding must not place labels into a segment.
    index = index.masked_fill(~batch.video_mask, -1)
    seg_pos = (segment_labels(batch.labels, index, scores.shape[1]) > 0.5) & seg_mask
    return scores, seg_pos, seg_mask & ~seg_pos


@register_loss("segment_ranking")
def segment_ranking_loss(
    output: ModelOutput, batch: Batch, margin: float = 2.0, max_side: int = MAX_SIDE
) -> Tensor:
    """PHD-GIFs: margin ranking of highlight segments above the other segments of the video.

    A segment is positive when any of its steps is labelled. Default margin 2
    follows the unofficial PHD-GIFs MLP (docs/models.md, ``phdgifs``; unverified); pass
    ``margin=`` to :func:`get_loss` to change it.
    """
    scores, pos, neg = _segment_sides(output, batch, "the segment_ranking loss")
    return pairwise_hinge(scores, pos, neg, margin, None, max_side)


@register_loss("segment_huber_ranking")
def segment_huber_ranking_loss(
    output: ModelOutput,
    batch: Batch,
    margin: float = 1.0,
    delta: float = 1.5,
    max_side: int = MAX_SIDE,
) -> Tensor:
    """Video2GIF: Huber ranking over all (positive, negative) segment pairs of a video,
    ``u = 1 - h(s+) + h(s-)`` smoothed by :func:`huber_hinge` with ``delta = 1.5``."""
    scores, pos, neg = _segment_sides(output, batch, "the segment_huber_ranking loss")
    return pairwise_hinge(scores, pos, neg, margin, delta, max_side)


@register_loss("triplet")
def triplet_loss(
    output: ModelOutput, batch: Batch, margin: float = 1.0, max_side: int = MAX_SIDE
) -> Tensor:
    """PR-Net_triplet on extras ``anchor`` (p^c) and ``embed`` (s); see
    :func:`preference_triplet`."""
    anchor = output.require("anchor", "the triplet loss")
    embed = output.require("embed", "the triplet loss")
    positives = positive_steps(batch.labels, batch.video_mask)
    negatives = batch.video_mask & ~positives
    return preference_triplet(anchor, embed, positives, negatives, margin, max_side)
