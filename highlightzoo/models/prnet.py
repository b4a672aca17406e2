"""PR-Net (personalized video highlight detection by preference reasoning) and its ten
ablations (paper Table 2), as one configurable module and eleven registered builders.

Read top to bottom, the forward pass is the paper's Sec. 3:

    S   = M(V)                                         (Eq. 1, encoder M)
    h~_j = mean over segment j of M(H_j)               (Sec. 3.2)
    p^u_i = sum_j softmax_j(lambda cos(s_i, h~_j)) h~_j (Eq. 2-3)
    p^c_i = 2-way softmax mix of p^u_i and g           (Eq. 4-5)
    l_i = s_i . p^c_i,   b_i = s_i . u                 (Eq. 6-7)
    score_i = l_i - b_i                                (inference; docs/models.md, ``prnet``)

and the default loss is the bi-directional contrastive loss (Eq. 8-9,
``highlightzoo.losses``). The ablations switch one part each; see
:class:`PRNet` and docs/models.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.checks import flag, int_at_least, number_at_least
from highlightzoo.errors import ConfigError
from highlightzoo.models.components.attention import PreferenceAttention, comprehensive_preference
from highlightzoo.models.components.encoders import build_encoder
from highlightzoo.models.components.heads import full_precision
from highlightzoo.models.components.history import (
    HistoryEmbedding,
    mean_history,
    parse_history_context,
)
from highlightzoo.models.registry import (
    Builder,
    ModelCard,
    check_model_overrides,
    register_model,
)

PAPER = "PR-Net: Preference Reasoning for Personalized Video Highlight Detection (ICCV 2021)"

UserPref = Literal["attention", "mean", "none"]


def small_random(width: int) -> Tensor:
    """``width`` standard normal draws divided by sqrt(width) (``torch.randn(width) /
    width**0.5``, bit for bit).

    On the meta device (the parameter count before building) it draws nothing: torch's
    meta versions of the draws and the division import its compiler stack, a second of
    the first model build in a process.
    """
    x = torch.empty(width)
    return x if x.is_meta else x.normal_().div_(width**0.5)


class PRNet(nn.Module):
    """PR-Net and its ablations, one module.

    Arguments (the paper's setting first):

    - ``encoder``: ``"unet"`` (M, Eq. 1) or ``"residual"`` (PR-Net_residual);
      ``width`` (None = ``feature_dim``, the paper), ``depth``, ``kernel_size``
      (None = 3; the U-net's only) configure it (see ``components/encoders.py``).
    - ``user_pref``: ``"attention"`` (Eq. 2-3), ``"mean"`` (PR-Net_meanU: mean
      of the history embeddings, the same for every frame) or ``"none"``
      (PR-Net_G).
    - ``generic``: learnable generic preference ``g`` mixed in by Eq. 4-5
      (False: PR-Net_U / PR-Net_meanU, ``p^c = p^u``).
    - ``non_highlight``: learnable non-highlight preference ``u`` (Eq. 7);
      without it (PR-Net_ranking, PR-Net_triplet) the score is ``l`` alone.
    - ``lam``: inverse temperature ``lambda`` of Eq. 3 and 5 (paper: 9).
    - ``probability``: what ``ModelOutput.probs`` is (the ``"avhd"`` protocol
      averages it): ``"ratio"`` = ``l~_i / (l~_i + b~_i)`` with ``l~``, ``b~``
      the softmax of ``l``, ``b`` over the video's steps (Eq. 8, what the
      contrastive loss trains); ``"two_class"`` = softmax class 1 of
      ``[b, l]`` (PR-Net_CE). Without ``u`` it is ``l`` itself (a ranking
      score, docs/evaluation.md).
    - ``history_context``: how M sees a history segment: ``"segment"`` alone
      (default), ``"video:K"`` inside its source video with ``K`` steps of
      context each side, averaged over its own steps (needs batches from
      ``HighlightDataset(history_context=K)``; ``self.history_context_steps``
      says which K the data must give; docs/history.md).

    Cold start (no history): with ``g``, ``p^c = g``. Without ``g``
    (PR-Net_U, PR-Net_meanU) the user-specific preference of an empty history
    is the zero vector, so ``l = 0`` and the frame is scored by ``-b`` alone
    (the non-highlight preference still ranks frames).
    """

    def __init__(
        self,
        feature_dim: int,
        width: int | None = None,
        *,
        encoder: str = "unet",
        depth: int = 3,
        kernel_size: int | None = None,
        user_pref: UserPref = "attention",
        generic: bool = True,
        non_highlight: bool = True,
        lam: float = 9.0,
        chunk_size: int = 4096,
        probability: Literal["ratio", "two_class"] = "ratio",
        history_context: str = "segment",
    ) -> None:
        super().__init__()
        self.history_context_steps = parse_history_context(history_context)  # None = segment
        if probability not in ("ratio", "two_class"):
            raise ConfigError(f"probability must be 'ratio' or 'two_class', got {probability!r}")
        self.probability = probability
        if user_pref not in ("attention", "mean", "none"):
            raise ConfigError(f"user_pref must be 'attention', 'mean' or 'none', got {user_pref!r}")
        generic = flag(generic, "generic")
        non_highlight = flag(non_highlight, "non_highlight")
        if user_pref == "none" and not generic:
            raise ConfigError("PR-Net needs a user-specific or a generic preference (or both)")
        width = int_at_least(width, 1, "width (encoder channels)", allow_none=True)
        width = feature_dim if width is None else width  # never 0 -> feature_dim silently
        # Eq. 5 reads lambda too, so a variant without attention checks it here
        lam = number_at_least(lam, 0, "lam (lambda of Eq. 3 and 5; 0: uniform)")
        self.user_pref, self.lam = user_pref, lam
        self.encoder = build_encoder(encoder, feature_dim, width, depth, kernel_size)  # M
        self.history_embedding = HistoryEmbedding(self.encoder)  # same M for the history
        self.attention = PreferenceAttention(lam, chunk_size) if user_pref == "attention" else None
        # Learnable preferences; small random init so cosines are defined from step one.
        self.generic = nn.Parameter(small_random(width)) if generic else None  # g
        self.non_highlight = nn.Parameter(small_random(width)) if non_highlight else None  # u

    def user_preference(
        self, frames: Tensor, batch: Batch, extras: dict[str, Tensor]
    ) -> Tensor | None:
        """p^u: (B, T, w) for attention (Eq. 2-3), (B, 1, w) for the mean, None without."""
        if self.user_pref == "none":
            return None  # PR-Net_G never looks at the history
        seg_mask = batch.history_segment_mask
        history = self.embed_history(batch)  # h~_j
        if self.attention is None:  # PR-Net_meanU(+G): holistic preference
            return rearrange(mean_history(history, seg_mask), "b w -> b 1 w")
        user, attention = self.attention(frames, history, seg_mask)  # Eq. 2-3
        extras["attention"] = attention
        return user

    def embed_history(self, batch: Batch) -> Tensor:
        """h~_j (B, N, w): M over each history segment, alone or in its video's context."""
        k = self.history_context_steps
        if k is None:
            return self.history_embedding(batch.history, batch.history_mask)
        context = batch.history_context
        if context is None or batch.history_context_mask is None or batch.history_context_own is None:
            raise ConfigError(
                f"this PR-Net was built with history_context='video:{k}', so its batches need "
                f"history_context slices: use HighlightDataset(..., history_context={k})"
            )
        if context.shape[:2] != batch.history.shape[:2]:
            raise ConfigError(
                f"history_context has {tuple(context.shape[:2])} (users, segments) but history "
                f"has {tuple(batch.history.shape[:2])}: they must describe the same segments"
            )
        return self.history_embedding(
            context, batch.history_context_mask, batch.history_context_own
        )

    def comprehensive(
        self, frames: Tensor, user: Tensor | None, batch: Batch, extras: dict[str, Tensor]
    ) -> Tensor:
        """p^c (B, T, w), and the normalised user/generic weights into ``extras``."""
        shape = frames.shape[:2]
        if user is None:  # PR-Net_G: p^c_i = g
            weights = torch.stack([frames.new_zeros(shape), frames.new_ones(shape)], dim=-1)
            pref = self.generic.expand_as(frames)
        elif self.generic is None:  # PR-Net_U / meanU: p^c_i = p^u_i
            has = batch.history_segment_mask.any(dim=1).to(frames.dtype)
            weights = torch.stack([has[:, None].expand(shape), frames.new_zeros(shape)], dim=-1)
            pref = user.expand_as(frames)
        else:  # Eq. 4-5
            has_history = batch.history_segment_mask.any(dim=1)
            pref, weights = comprehensive_preference(
                frames, user, self.generic, has_history, self.lam
            )
        extras["user_weight"], extras["generic_weight"] = weights[..., 0], weights[..., 1]
        return pref

    def forward(self, batch: Batch) -> ModelOutput:
        mask = batch.video_mask
        extras: dict[str, Tensor] = {}
        frames = self.encoder(batch.video, mask)  # S = M(V), Eq. 1
        user = self.user_preference(frames, batch, extras)  # p^u, Eq. 2-3
        pref = self.comprehensive(frames, user, batch, extras)  # p^c, Eq. 4-5
        # Eq. 6-7 as float32 element-wise products (not a matmul, which bf16 autocast would
        # round): float32 scores under autocast
        highlight = (full_precision(frames) * full_precision(pref)).sum(-1)  # l_i = s_i . p^c_i, Eq. 6
        extras.update(l=highlight, embed=frames, anchor=pref)
        scores = probs = highlight  # ranking-only variants: the score (no probability)
        if self.non_highlight is not None:
            non_highlight = (full_precision(frames) * self.non_highlight).sum(-1)  # b_i = s_i . u, Eq. 7
            extras["b"] = non_highlight
            extras["logits"] = torch.stack([non_highlight, highlight], dim=-1)  # PR-Net_CE
            scores = highlight - non_highlight  # monotone in l~/(l~+b~) per video
            probs = highlight_probability(highlight, non_highlight, mask, self.probability)
        return ModelOutput(scores=scores, extras=extras, probs=probs)


def highlight_probability(
    highlight: Tensor, non_highlight: Tensor, mask: Tensor, kind: str = "ratio"
) -> Tensor:
    """(B, T) float32 highlight probability of each step; 0.5 on padding.

    ``"ratio"``: ``l~_i / (l~_i + b~_i)``, ``l~``/``b~`` the softmax of ``l``/``b``
    over the real steps of the video (Eq. 8 as corrected in docs/models.md, ``prnet``), computed as
    ``sigmoid(log l~_i - log b~_i)``. ``"two_class"``: ``softmax([b_i, l_i])[1]
    = sigmoid(l_i - b_i)`` (PR-Net_CE's cross-entropy classes).
    """
    l, b = full_precision(highlight), full_precision(non_highlight)  # noqa: E741 (the paper's names)
    if kind == "two_class":
        logit = l - b
    else:
        neg = torch.finfo(l.dtype).min
        log_l = torch.log_softmax(l.masked_fill(~mask, neg), dim=-1)
        log_b = torch.log_softmax(b.masked_fill(~mask, neg), dim=-1)
        logit = log_l - log_b
    return torch.sigmoid(logit.masked_fill(~mask, 0.0))


# --------------------------------------------------------------------------- registered variants

# The switches that define a variant; builders refuse overrides of these, so a
# card always describes the model it is attached to.
_VARIANT_KEYS = ("encoder", "user_pref", "generic", "non_highlight", "probability")
# What a builder's ``**overrides`` may hold: PRNet's other keyword options.
_OPTIONS = tuple(
    p for p in inspect.signature(PRNet.__init__).parameters
    if p not in ("self", "feature_dim", "width", *_VARIANT_KEYS)
)


def _register(card: ModelCard) -> Callable[[Builder], Builder]:
    """``register_model(card)`` for a PR-Net builder, naming the options it passes on and
    the variant switches it fixes, so the registry checks an override before building."""

    def wrap(builder: Builder) -> Builder:
        builder.options = _OPTIONS
        builder.fixed_options = _VARIANT_KEYS
        return register_model(card)(builder)

    return wrap


def _build(name: str, feature_dim: int, variant: dict, width: int | None, overrides: dict) -> PRNet:
    """Build variant ``name``; ``width`` = encoder channels (None = feature_dim, the paper)."""
    check_model_overrides(name, overrides)  # also when a builder is called directly
    return PRNet(feature_dim, width, **variant, **overrides)


def _card(name: str, summary: str, paper_map: float, loss: str = "contrastive", **kw) -> ModelCard:
    table = "table1" if name == "prnet" else "table2"
    return ModelCard(
        name=name,
        summary=summary,
        paper=PAPER,
        granularity="frame",
        uses_history=kw.pop("uses_history", True),
        default_loss=loss,
        paper_map=paper_map,
        table=table,
        **kw,
    )


FULL = {"encoder": "unet", "user_pref": "attention", "generic": True, "non_highlight": True}


@_register(
    _card(
        "prnet",
        "PR-Net: U-net encoder, history attention + generic "
        "preference, bi-directional contrastive loss",
        18.66,
    )
)
def prnet(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet", feature_dim, FULL, width, overrides)


@_register(
    _card(
        "prnet_residual",
        "PR-Net with a per-frame residual encoder instead of M (no temporal context)",
        16.69,
    )
)
def prnet_residual(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet_residual", feature_dim, {**FULL, "encoder": "residual"}, width, overrides)


@_register(
    _card(
        "prnet_ranking",
        "PR-Net without the non-highlight preference, pairwise ranking loss on l",
        16.85,
        loss="ranking",
    )
)
def prnet_ranking(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet_ranking", feature_dim, {**FULL, "non_highlight": False}, width, overrides)


@_register(
    _card(
        "prnet_ce",
        "PR-Net trained with 2-class cross-entropy over [b, l]",
        17.09,
        loss="cross_entropy",
    )
)
def prnet_ce(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet_ce", feature_dim, {**FULL, "probability": "two_class"}, width, overrides)


@_register(
    _card(
        "prnet_triplet",
        "PR-Net trained with a triplet loss anchored at the comprehensive preference",
        17.26,
        loss="triplet",
    )
)
def prnet_triplet(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet_triplet", feature_dim, {**FULL, "non_highlight": False}, width, overrides)


@_register(
    _card(
        "prnet_g",
        "PR-Net with the generic preference only (p^c = g), history unused",
        16.78,
        uses_history=False,
    )
)
def prnet_g(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet_g", feature_dim, {**FULL, "user_pref": "none"}, width, overrides)


@_register(
    _card("prnet_u", "PR-Net with the user-specific preference only (p^c = p^u)", 17.57)
)
def prnet_u(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet_u", feature_dim, {**FULL, "generic": False}, width, overrides)


@_register(
    _card(
        "prnet_mean_u",
        "PR-Net with the mean history embedding as the preference, no attention, no g",
        16.87,
    )
)
def prnet_mean_u(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    variant = {**FULL, "user_pref": "mean", "generic": False}
    return _build("prnet_mean_u", feature_dim, variant, width, overrides)


@_register(
    _card("prnet_mean_u_g", "PR-Net with the mean history embedding mixed with g by Eq. 4-5", 17.21)
)
def prnet_mean_u_g(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet_mean_u_g", feature_dim, {**FULL, "user_pref": "mean"}, width, overrides)


@_register(
    _card(
        "prnet_h0",
        "PR-Net trained and tested without history (history cap 0)",
        16.78,
        history_cap=0,
    )
)
def prnet_h0(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet_h0", feature_dim, FULL, width, overrides)


@_register(
    _card("prnet_h5", "PR-Net with the history capped at 5 segments", 17.48, history_cap=5)
)
def prnet_h5(feature_dim: int, width: int | None = None, **overrides) -> PRNet:
    return _build("prnet_h5", feature_dim, FULL, width, overrides)
