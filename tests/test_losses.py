"""Losses: known answers by hand, slow loop references, masking, and the no-positive case."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from highlightzoo.batch import ModelOutput, random_batch
from highlightzoo.errors import ConfigError
from highlightzoo.losses import (
    bidirectional_contrastive,
    get_loss,
    huber_hinge,
    list_losses,
    masked_log_softmax,
    pairwise_hinge,
    pick_steps,
    preference_triplet,
    register_loss,
    segment_labels,
    top_k_pseudo_negatives,
    two_class_cross_entropy,
)

ALL = {"contrastive", "cross_entropy", "ranking", "segment_ranking", "segment_huber_ranking",
       "triplet"}  # fmt: skip


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def full_mask(x: torch.Tensor) -> torch.Tensor:
    return torch.ones(x.shape, dtype=torch.bool)


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_loss_and_rejects_unknown_names():
    assert ALL <= set(list_losses())
    with pytest.raises(ConfigError, match="contrastive"):
        get_loss("contrastiv")
    with pytest.raises(ValueError, match="already registered"):
        register_loss("ranking")(lambda output, batch: output.scores.sum())


@pytest.mark.parametrize("name, params, match", [
    ("ranking", {"margin": "x"}, "loss 'ranking': margin .* must be a finite number >= 0"),
    ("ranking", {"margin": float("nan")}, "margin .* must be a finite number"),  # NaN losses
    ("ranking", {"margin": -1.0}, "margin .* must be a finite number >= 0"),
    ("ranking", {"max_side": 0.5}, "max_side .* must be an int >= 1"),  # topk's TypeError
    ("ranking", {"max_side": -1}, "max_side .* must be an int >= 1"),  # "index out of range"
    ("segment_huber_ranking", {"delta": 0}, "delta .* must be a finite number > 0"),
    ("contrastive", {"k_factor": None}, "k_factor .* must be an int >= 1"),
    ("contrastive", {"k_factor": 2**70}, "k_factor .* must be below 2\\*\\*63"),
    ("cross_entropy", {"margin": 1.0}, "loss 'cross_entropy' takes no parameter 'margin'"),
    ("triplet", {"magrin": 1.0}, "takes no parameter 'magrin'; it takes margin, max_side"),
])
def test_a_bad_loss_parameter_is_refused_when_the_loss_is_made(name, params, match):
    """Each was a TypeError, RuntimeError or OverflowError inside the first loss call (or a NaN
    loss, or for an unknown name a TypeError at the call)."""
    with pytest.raises(ConfigError, match=match):
        get_loss(name, **params)


def test_get_loss_binds_parameters():
    batch = random_batch(1, 3, 2, 0)
    batch.labels = t([1.0, 0.0, 0.0]).float()
    out = ModelOutput(scores=torch.tensor([[0.0, 0.0, 0.0]]))
    assert get_loss("ranking")(out, batch).item() == pytest.approx(1.0)
    assert get_loss("ranking", margin=3.0)(out, batch).item() == pytest.approx(3.0)


def test_missing_extra_is_a_config_error_naming_the_loss():
    batch = random_batch(1, 4, 2, 0)
    out = ModelOutput(scores=torch.zeros(1, 4))
    for name in ("contrastive", "cross_entropy", "triplet", "segment_ranking"):
        with pytest.raises(ConfigError, match=name):
            get_loss(name)(out, batch)


# --------------------------------------------------------------------------- contrastive


def test_masked_log_softmax_ignores_padding_and_stays_finite_on_empty_rows():
    x = t([1.0, 2.0, 100.0], [5.0, 6.0, 7.0])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = masked_log_softmax(x, mask, dim=1)
    expected = torch.log_softmax(t([1.0, 2.0]), dim=1)[0]
    assert torch.allclose(out[0, :2], expected)
    assert out[0, 2] == 0.0 and (out[1] == 0).all()  # masked entries: 0, never -inf/NaN


def test_top_k_pseudo_negatives_picks_highest_b_among_unlabelled():
    b = t([0.1, 0.9, 0.5, 0.7, 0.3, 5.0])
    pos = torch.tensor([[False, False, False, False, False, True]])
    mask = full_mask(b)
    got = top_k_pseudo_negatives(b, pos, mask, k_factor=2)
    assert got.tolist() == [[False, True, False, True, False, False]]
    # fewer unlabelled steps than K: all of them, padding never chosen
    mask[0, 0] = False
    got = top_k_pseudo_negatives(b, pos, mask, k_factor=10)
    assert got.tolist() == [[False, True, True, True, True, False]]


def test_contrastive_all_equal_is_log_two():
    zeros = t([0.0, 0.0])
    loss = bidirectional_contrastive(zeros, zeros, t([1.0, 0.0]), full_mask(zeros))
    assert loss.item() == pytest.approx(math.log(2.0))


def test_contrastive_known_answer_by_hand():
    # l~ = softmax([1, 0, 2, 0]), b~ = softmax([0, 1, 0, 3]); Omega = {0}; K = 5 > 3 so
    # mho = {1, 2, 3}; four terms log(1 + b~/l~) / log(1 + l~/b~), averaged.
    hl, b = t([1.0, 0.0, 2.0, 0.0]), t([0.0, 1.0, 0.0, 3.0])
    zl = math.e + 1 + math.e**2 + 1
    zb = 1 + math.e + 1 + math.e**3
    lt = [math.exp(v) / zl for v in (1, 0, 2, 0)]
    bt = [math.exp(v) / zb for v in (0, 1, 0, 3)]
    terms = [-math.log(lt[0] / (lt[0] + bt[0]))]
    terms += [-math.log(bt[i] / (lt[i] + bt[i])) for i in (1, 2, 3)]
    loss = bidirectional_contrastive(hl, b, t([1.0, 0.0, 0.0, 0.0]), full_mask(hl))
    assert loss.item() == pytest.approx(sum(terms) / 4, rel=1e-9)
    assert loss.item() == pytest.approx(0.90126, abs=1e-4)


def slow_contrastive(hl, b, labels, mask, k_factor=5):
    """Loop reference of Eq. 8-9 (corrected form), one clip at a time."""
    rows = []
    for i in range(hl.shape[0]):
        real = [j for j in range(hl.shape[1]) if mask[i, j]]
        pos = [j for j in real if labels[i, j] > 0.5]
        if not pos:
            continue
        zl = sum(math.exp(hl[i, j]) for j in real)
        zb = sum(math.exp(b[i, j]) for j in real)
        unl = sorted((j for j in real if j not in pos), key=lambda j: (-float(b[i, j]), j))
        mho = unl[: k_factor * len(pos)]
        terms = []
        for j in pos:
            lt, bt = math.exp(hl[i, j]) / zl, math.exp(b[i, j]) / zb
            terms.append(-math.log(lt / (lt + bt)))
        for j in mho:
            lt, bt = math.exp(hl[i, j]) / zl, math.exp(b[i, j]) / zb
            terms.append(-math.log(bt / (lt + bt)))
        rows.append(sum(terms) / len(terms))
    return sum(rows) / len(rows) if rows else 0.0


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    steps=st.integers(1, 12),
    k_factor=st.integers(1, 5),
)
def test_contrastive_matches_loop_reference(seed, steps, k_factor):
    g = torch.Generator().manual_seed(seed)
    hl = torch.randn(3, steps, generator=g, dtype=torch.float64) * 3
    b = torch.randn(3, steps, generator=g, dtype=torch.float64) * 3
    labels = (torch.rand(3, steps, generator=g) < 0.3).double()
    lengths = torch.randint(1, steps + 1, (3,), generator=g)
    mask = torch.arange(steps)[None] < lengths[:, None]
    got = bidirectional_contrastive(hl, b, labels, mask, k_factor).item()
    want = slow_contrastive(hl, b, labels, mask, k_factor)
    assert got == pytest.approx(want, rel=1e-7, abs=1e-9)


def test_contrastive_padding_values_do_not_matter():
    hl, b = t([1.0, 2.0, 0.5, 0.0]), t([0.3, -1.0, 2.0, 0.0])
    labels, mask = t([1.0, 0.0, 0.0, 0.0]), torch.tensor([[True, True, True, False]])
    base = bidirectional_contrastive(hl, b, labels, mask)
    l2, b2 = hl.clone(), b.clone()
    l2[0, 3], b2[0, 3] = 1e4, 1e4
    assert bidirectional_contrastive(l2, b2, labels, mask).item() == pytest.approx(base.item())
    cropped = bidirectional_contrastive(hl[:, :3], b[:, :3], labels[:, :3], mask[:, :3])
    assert cropped.item() == pytest.approx(base.item())


# --------------------------------------------------------------------------- every loss: rows with no positives


def _outputs_for_all_losses(batch, requires_grad=True, scale=1.0):
    g = torch.Generator().manual_seed(1)
    bsz, steps = batch.labels.shape
    raw = {
        "l": torch.randn(bsz, steps, generator=g),
        "b": torch.randn(bsz, steps, generator=g),
        "logits": torch.randn(bsz, steps, 2, generator=g),
        "embed": torch.randn(bsz, steps, 4, generator=g),
        "anchor": torch.randn(bsz, steps, 4, generator=g),
        "segment_scores": torch.randn(bsz, 3, generator=g),
    }
    leaves = {k: (v * scale).requires_grad_(requires_grad) for k, v in raw.items()}
    extras = dict(leaves)
    extras["segment_mask"] = torch.ones(bsz, 3, dtype=torch.bool)
    extras["segment_index"] = (torch.arange(steps) * 3 // steps).expand(bsz, steps).clone()
    scores = leaves["l"] - leaves["b"]
    return ModelOutput(scores=scores, extras=extras), leaves


@pytest.mark.parametrize("name", sorted(ALL))
def test_rows_without_positives_contribute_nothing(name):
    batch = random_batch(2, 6, 2, 0)
    batch.labels[1] = 0.0
    out, leaves = _outputs_for_all_losses(batch)
    loss = get_loss(name)(out, batch)
    loss.backward()
    for leaf in leaves.values():
        if leaf.grad is not None:
            assert torch.isfinite(leaf.grad).all()
            assert (leaf.grad[1] == 0).all(), f"{name}: a row without positives got a gradient"
    # the same loss on row 0 alone: row 1 changed nothing
    first = replace(batch, labels=batch.labels[:1], video_mask=batch.video_mask[:1])
    alone = ModelOutput(out.scores[:1], {k: v[:1] for k, v in out.extras.items()})
    assert get_loss(name)(alone, first).item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("name", sorted(ALL))
def test_no_positive_anywhere_gives_zero_with_a_graph_and_extreme_values_stay_finite(name):
    batch = random_batch(2, 5, 2, 0)
    batch.labels.zero_()
    out, _ = _outputs_for_all_losses(batch)
    loss = get_loss(name)(out, batch)
    assert loss.item() == 0.0
    loss.backward()  # must not raise: the zero is connected to the graph
    batch = random_batch(2, 5, 2, 0)
    out, leaves = _outputs_for_all_losses(batch, scale=1e4)
    loss = get_loss(name)(out, batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(v.grad).all() for v in leaves.values() if v.grad is not None)


# --------------------------------------------------------------------------- cross-entropy


def test_cross_entropy_known_answers():
    logits = torch.tensor([[[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [9.0, -9.0]]])
    labels = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    expected = (math.log(2) + math.log(1 + math.exp(-1)) + math.log(1 + math.exp(2))) / 3
    assert two_class_cross_entropy(logits, labels, mask).item() == pytest.approx(expected)


# --------------------------------------------------------------------------- ranking


def test_ranking_known_answer():
    scores = t([3.0, 1.0, 2.5, 100.0])
    pos = torch.tensor([[True, False, False, False]])
    neg = torch.tensor([[False, True, True, False]])  # step 3 is padding: never paired
    # pairs (0,1): max(0, 1-3+1) = 0 ; (0,2): max(0, 1-3+2.5) = 0.5
    assert pairwise_hinge(scores, pos, neg, margin=1.0).item() == pytest.approx(0.25)
    assert pairwise_hinge(scores, pos, neg, margin=2.0).item() == pytest.approx((0 + 1.5) / 2)


def test_ranking_loss_uses_scores_and_labels_of_the_batch():
    batch = random_batch(1, 3, 2, 0)
    batch.labels = torch.tensor([[0.0, 1.0, 0.0]])
    out = ModelOutput(scores=torch.tensor([[0.5, 1.0, -1.0]]))
    # pairs (1,0): 1-1+0.5 = 0.5 ; (1,2): 1-1-1 < 0 -> 0
    assert get_loss("ranking")(out, batch).item() == pytest.approx(0.25)


def test_pick_steps_subsamples_only_real_steps():
    mask = torch.zeros(2, 50, dtype=torch.bool)
    mask[0, ::3] = True  # 17 real
    mask[1, :4] = True
    idx, ok = pick_steps(mask, max_side=8)
    assert idx.shape == (2, 8)
    assert ok[0].all() and mask[0, idx[0]].all()
    assert ok[1].sum() == 4 and set(idx[1][ok[1]].tolist()) == {0, 1, 2, 3}


def test_subsampled_ranking_is_exact_when_all_pairs_violate_equally():
    steps = 40
    scores = torch.zeros(1, steps)
    pos = torch.zeros(1, steps, dtype=torch.bool)
    pos[0, :10] = True
    full = pairwise_hinge(scores, pos, ~pos, margin=1.0, max_side=64)
    sampled = pairwise_hinge(scores, pos, ~pos, margin=1.0, max_side=4)
    assert full.item() == pytest.approx(1.0) and sampled.item() == pytest.approx(1.0)


# --------------------------------------------------------------------------- Huber / segments


def huber_reference(u: float, delta: float) -> float:
    if u <= 0:
        return 0.0
    if u <= delta:
        return 0.5 * u * u
    return delta * (u - 0.5 * delta)


@settings(max_examples=40, deadline=None)
@given(u=st.floats(-10, 10), delta=st.floats(0.1, 3))
def test_huber_hinge_matches_branching_reference(u, delta):
    got = huber_hinge(torch.tensor(u, dtype=torch.float64), delta).item()
    assert got == pytest.approx(huber_reference(u, delta), abs=1e-12)


def test_huber_known_values_and_gradient_is_continuous():
    u = torch.tensor([-1.0, 0.5, 1.5, 3.0], requires_grad=True)
    out = huber_hinge(u, 1.5)
    assert out.tolist() == pytest.approx([0.0, 0.125, 1.125, 3.375])
    out.sum().backward()
    assert u.grad.tolist() == pytest.approx([0.0, 0.5, 1.5, 1.5])


def test_segment_labels_any_labelled_step_marks_the_segment():
    labels = torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0]])
    index = torch.tensor([[0, 0, 1, 1, -1]])  # last step is padding (its label ignored)
    assert segment_labels(labels, index, 3).tolist() == [[1.0, 0.0, 0.0]]


def test_segment_losses_known_answers():
    batch = random_batch(1, 4, 2, 0)
    batch.labels = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    out = ModelOutput(
        scores=torch.zeros(1, 4),
        extras={
            "segment_scores": torch.tensor([[1.0, 0.0, 3.0]]),
            "segment_mask": torch.tensor([[True, True, False]]),  # segment 2 is padding
            "segment_index": torch.tensor([[0, 0, 1, 1]]),
        },
    )
    # one pair (seg 0 above seg 1): u = margin - 1 + 0
    assert get_loss("segment_ranking")(out, batch).item() == pytest.approx(1.0)  # margin 2
    assert get_loss("segment_ranking", margin=0.5)(out, batch).item() == 0.0
    # Huber, margin 1: u = 0 -> 0 ; margin 3: u = 2 > 1.5 -> 1.5 (2 - 0.75)
    assert get_loss("segment_huber_ranking")(out, batch).item() == 0.0
    huber3 = get_loss("segment_huber_ranking", margin=3.0)(out, batch).item()
    assert huber3 == pytest.approx(1.5 * (2 - 0.75))


# --------------------------------------------------------------------------- triplet


def test_triplet_known_answer():
    anchor = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    embed = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [0.5, 3.0]]])
    pos = torch.tensor([[True, False, False]])
    neg = torch.tensor([[False, True, True]])
    # anchor p^c_0 = (1,0): a.s_0 = 2 ; negatives a.s_1 = 0, a.s_2 = 0.5
    # margin 1: max(0, 1-2+0) = 0 ; max(0, 1-2+0.5) = 0 ; margin 2: 0 and 0.5 -> 0.25
    assert preference_triplet(anchor, embed, pos, neg, margin=1.0).item() == 0.0
    assert preference_triplet(anchor, embed, pos, neg, margin=2.0).item() == pytest.approx(0.5 / 2)


@pytest.mark.parametrize("name", sorted(ALL))
def test_padded_steps_give_finite_gradients(name):
    """Regression: -inf log-probabilities on padding made logaddexp's gradient 0 * NaN."""
    batch = random_batch(3, 9, 2, 0, lengths=[9, 4, 1])
    out, leaves = _outputs_for_all_losses(batch)
    loss = get_loss(name)(out, batch)
    loss.backward()
    assert torch.isfinite(loss)
    for key, leaf in leaves.items():
        if leaf.grad is not None:
            assert torch.isfinite(leaf.grad).all(), f"{name}: NaN gradient in {key}"
            if leaf.grad.dim() == 2 and leaf.grad.shape[1] == 9:  # per-step extras
                assert (leaf.grad[~batch.video_mask] == 0).all(), f"{name}: padding got a gradient"
