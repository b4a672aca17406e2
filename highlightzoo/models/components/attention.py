"""Preference attention of PR-Net (Eq. 2-5): which history a frame resembles, and how
much to trust the user's history against the generic preference.

- :class:`PreferenceAttention` (Eq. 2-3): cosine similarity of each frame to
  each history embedding, softmax with inverse temperature ``lambda`` over the
  user's real history segments, weighted sum of the history embeddings.
- :func:`comprehensive_preference` (Eq. 4-5): a 2-way softmax between the
  user-specific preference and the generic preference ``g``.

Both are safe with an empty history (no NaN, zero user-specific preference,
zero weight on it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from highlightzoo.checks import int_at_least, number_at_least

EPS = 1e-8


def step_norms(x: Tensor) -> Tensor:
    """``max(||x||, EPS)`` along the last axis: what ``F.normalize(x, eps=EPS)`` divides by."""
    return torch.linalg.vector_norm(x, dim=-1).clamp_min(EPS)


def cosine(x: Tensor, y: Tensor, x_norms: Tensor | None = None) -> Tensor:
    """Cosine similarity along the last axis, broadcasting; 0 when either vector is zero.

    ``x . y / (max(||x||, EPS) max(||y||, EPS))``, the value of the dot product of the two
    ``F.normalize``-d vectors, without dividing the vectors themselves: a division of
    (B, T, w) by a broadcast norm (and its backward) was PR-Net's largest element-wise cost
    on a CPU (docs/performance.md). ``x_norms``: :func:`step_norms` of ``x``, when known.
    """
    x_norms = step_norms(x) if x_norms is None else x_norms
    return (x * y).sum(-1) / (x_norms * step_norms(y))


def masked_softmax(logits: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Softmax over the True entries of ``mask``; exactly 0 on masked entries, and an
    all-zero row (not NaN) where nothing is unmasked."""
    filled = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return filled.softmax(dim=dim) * mask.to(logits.dtype)


class PreferenceAttention(nn.Module):
    """User-specific preference per frame (Eq. 2-3).

    ``q^u_ij = cos(s_i, h~_j)``, ``a^u_ij = softmax_j(lambda q^u_ij)`` over the
    real history segments, ``p^u_i = sum_j a^u_ij h~_j``. No parameters (the
    paper learns nothing here; ``lambda = 9`` is fixed).

    Frames are processed in chunks of ``chunk_size`` steps so the (T, N)
    similarity intermediates stay small (T = 20,000 frames against
    n = 1,347 segments needs a few (chunk, N) buffers at a time); only the
    returned attention map is (B, T, N).
    """

    def __init__(self, lam: float = 9.0, chunk_size: int = 4096) -> None:
        super().__init__()
        self.lam = number_at_least(lam, 0, "lam (the attention's lambda, Eq. 3; 0: uniform)")
        self.chunk_size = int_at_least(chunk_size, 1, "chunk_size (frames per attention chunk)")

    def forward(
        self, frames: Tensor, history: Tensor, history_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``frames`` (B, T, w), ``history`` (B, N, w), ``history_mask`` (B, N) bool
        -> (``p^u`` (B, T, w), ``a^u`` (B, T, N))."""
        keys = F.normalize(history, dim=-1, eps=EPS)
        mask = rearrange(history_mask, "b n -> b 1 n")
        prefs, weights = [], []
        for chunk in frames.split(self.chunk_size, dim=1):
            # Eq. 3: cos(s_i, h~_j), the frames' norms divided out of the (chunk, N) products
            q = torch.einsum("btw,bnw->btn", chunk, keys) / step_norms(chunk)[..., None]
            a = masked_softmax(self.lam * q, mask)  # Eq. 3
            prefs.append(torch.einsum("btn,bnw->btw", a, history))  # Eq. 2
            weights.append(a)
        return torch.cat(prefs, dim=1), torch.cat(weights, dim=1)


def comprehensive_preference(
    frames: Tensor, user: Tensor, generic: Tensor, has_history: Tensor, lam: float = 9.0
) -> tuple[Tensor, Tensor]:
    """Comprehensive preference ``p^c`` (Eq. 4-5), computed as a 2-way softmax.

    ``q^c1 = exp(lambda cos(s_i, p^u_i))``, ``q^c2 = exp(lambda cos(s_i, g))``,
    ``p^c_i = (q^c1 p^u_i + q^c2 g) / (q^c1 + q^c2)``. ``frames``, ``user``
    (B, T, w) (``user`` may also be (B, 1, w) for a holistic preference),
    ``generic`` (w,), ``has_history`` (B,) bool: a user without history gets
    weight 0 on the user branch, so ``p^c = g`` (cold start; docs/models.md, "Choices where the paper is silent").

    Returns ``p^c`` (B, T, w) and the normalised weights (B, T, 2) ordered
    (user, generic).
    """
    norms = step_norms(frames)
    logits = torch.stack(
        [lam * cosine(frames, user, norms),
         lam * cosine(frames, generic, norms).expand(frames.shape[:2])],
        dim=-1,
    )  # Eq. 5, in log space
    branch_ok = torch.stack(
        [has_history, torch.ones_like(has_history)], dim=-1
    )  # (B, 2): the generic branch is always there
    weights = masked_softmax(logits, rearrange(branch_ok, "b k -> b 1 k"))
    pref = weights[..., :1] * user + weights[..., 1:] * generic  # Eq. 4
    return pref, weights
