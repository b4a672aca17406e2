"""The four baselines: T-AIN, A-VHD's history net, segment pooling, and the registered models."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import highlightzoo as hz
from highlightzoo.batch import random_batch
from highlightzoo.errors import ConfigError, DataFormatError
from highlightzoo.metrics.windows import window_average
from highlightzoo.models.components.norm import (
    AffineParams,
    ItemSelfAttention,
    TAINHistoryNet,
    TemporalAdaptiveInstanceNorm,
    affine_instance_normalize,
    history_video_items,
    instance_normalize,
    masked_instance_stats,
)
from highlightzoo.models.components.pooling import (
    broadcast_segment_scores,
    pool_segments,
    window_index,
)
from highlightzoo.models.phdgifs import history_feature, nearest_history_similarity

BASELINES = ["fcsn", "avhd", "phdgifs", "video2gif", "phdgifs_full"]
DIM = 6


def build(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return hz.create_model(name, feature_dim=DIM, width_mult=1 / 16, **kw).eval()


# --- T-AIN -------------------------------------------------------------------------------


def test_tain_statistics_are_per_instance_over_valid_steps_only():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8)
    mask = torch.tensor([[True] * 5 + [False] * 3, [True] * 8])
    mean, var = masked_instance_stats(x, mask)
    assert torch.allclose(mean[0, :, 0], x[0, :, :5].mean(-1), atol=1e-6)
    assert torch.allclose(var[0, :, 0], x[0, :, :5].var(-1, unbiased=False), atol=1e-6)
    assert torch.allclose(mean[1, :, 0], x[1].mean(-1), atol=1e-6)

    norm = TemporalAdaptiveInstanceNorm(3)
    params = AffineParams(torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]]), torch.ones(2, 3))
    out = norm(x, params, mask)
    expect0 = (x[0, :, :5] - mean[0]) / torch.sqrt(var[0] + 1e-5) * params.weight[0, :, None] + 1
    assert torch.allclose(out[0, :, :5], expect0, atol=1e-5)
    # Padded values and the other instance do not leak into a row's statistics.
    x2 = x.clone()
    x2[0, :, 5:] = 1e3
    x2[1] = torch.randn(3, 8)
    assert torch.allclose(norm(x2, params, mask)[0, :, :5], out[0, :, :5])


def test_affine_instance_norm_equals_the_norm_then_the_affine():
    """The fused form (one batch norm over the (1, B*C, T) view) gives the instance norm's
    values times the per-sample weight plus bias, with the same gradients, also on a
    channels-first view of time-major memory (the FCSN encoder's maps on a GPU)."""
    torch.manual_seed(4)
    x = torch.randn(3, 10, 5).transpose(1, 2).requires_grad_(True)  # (B, C=5, T=10), a view
    weight = torch.randn(3, 5, requires_grad=True)
    bias = torch.randn(3, 5, requires_grad=True)
    got = affine_instance_normalize(x, weight, bias)
    want = instance_normalize(x) * weight[..., None] + bias[..., None]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(want)
    for g_got, g_want in zip(torch.autograd.grad(got, (x, weight, bias), grad),
                             torch.autograd.grad(want, (x, weight, bias), grad), strict=True):
        torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-5)


def test_tain_is_skipped_at_length_one_and_applied_at_eval():
    """The reference skips both decoder norms on a 1-step map (else every channel = its bias)."""
    norm = TemporalAdaptiveInstanceNorm(2).eval()
    params = AffineParams(torch.full((1, 2), 3.0), torch.tensor([[0.5, -1.0]]))
    one = torch.tensor([[[7.0], [-2.0]]])
    assert torch.equal(norm(one, params), one)
    two = torch.tensor([[[7.0, 5.0], [-2.0, 0.0]]])
    assert torch.allclose(norm(two, params), torch.tensor([[[3.5, -2.5], [-4.0, 2.0]]]), atol=1e-4)


@pytest.mark.parametrize(("length", "fc7_steps"), [(1, 1), (26, 1), (27, 2), (40, 2)])
def test_avhd_short_video_feeds_fc7_unnormalised_to_the_decoder(length, fc7_steps):
    """Videos of <= 26 steps have a 1-step fc7 map: its scores come from fc7 itself, not
    from the predicted T-AIN bias (the A-VHD reference, highlight_fcsn.py line 207)."""
    model = build("avhd")
    seen: dict[str, torch.Tensor] = {}
    net = model.net
    hooks = [
        net.encoder.fc7[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("fc7", o)),
        net.decoder.score_fc7.register_forward_hook(
            lambda m, i, o: seen.__setitem__("score_in", i[0])),
    ]
    try:
        with torch.no_grad():
            model(random_batch(1, length, DIM, 3, 3, seed=9))
    finally:
        for h in hooks:
            h.remove()
    assert seen["fc7"].shape[-1] == fc7_steps
    if fc7_steps == 1:
        assert torch.equal(seen["score_in"], seen["fc7"])
    else:
        assert not torch.allclose(seen["score_in"], seen["fc7"])


def test_tain_runs_under_cpu_bf16_autocast_with_float32_statistics():
    torch.manual_seed(2)
    conv = torch.nn.Conv1d(4, 8, 1)
    norm = TemporalAdaptiveInstanceNorm(8)
    x = torch.randn(2, 4, 50) + 20.0
    params = AffineParams(torch.rand(2, 8) + 0.5, torch.randn(2, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(x)
        assert h.dtype == torch.bfloat16
        mean, var = masked_instance_stats(h)
        out = norm(h, params)
    assert mean.dtype == torch.float32 and var.dtype == torch.float32
    assert out.dtype == torch.bfloat16
    # Same as the float32 computation on the same bf16 values, to bf16 output precision.
    h32 = h.float()
    ref = (h32 - h32.mean(-1, keepdim=True)) / torch.sqrt(h32.var(-1, unbiased=False, keepdim=True)
                                                         + 1e-5)
    ref = ref * params.weight[..., None] + params.bias[..., None]
    assert torch.allclose(out.float(), ref, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("shape", [(2, 3, 8), (1, 16, 2), (3, 5, 33)])
def test_unmasked_instance_norm_is_the_two_pass_formula_forward_and_backward(shape):
    """Without a mask instance_normalize runs PyTorch's fused instance norm; it must equal
    (x - mean) / sqrt(var + eps) with the biased variance, gradients included, in float32
    for a bf16 input and under bf16 autocast too (a constant channel gives zeros)."""
    torch.manual_seed(3)
    x = (torch.randn(*shape) * 3 + 1).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    grad = torch.randn(*shape)
    out = instance_normalize(x)
    mean = x_ref.mean(-1, keepdim=True)
    ref = (x_ref - mean) / torch.sqrt(((x_ref - mean) ** 2).mean(-1, keepdim=True) + 1e-5)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert instance_normalize(x.detach().bfloat16()).dtype == torch.float32
    assert torch.equal(instance_normalize(torch.ones(1, 2, 5)), torch.zeros(1, 2, 5))


def test_avhd_runs_under_cpu_bf16_autocast():
    model = build("avhd")
    batch = random_batch(2, 40, DIM, 4, 3, lengths=[40, 17])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    assert out.scores.shape == (2, 40) and torch.isfinite(out.scores.float()).all()


# --- A-VHD history net -------------------------------------------------------------------


def history_of(segments: list[tuple[int, list[float]]], dim: int = 3) -> tuple:
    """(history, mask, video) of one user from (video index, one-step feature) segments."""
    n = len(segments)
    history = torch.zeros(1, n, 2, dim)
    mask = torch.zeros(1, n, 2, dtype=torch.bool)
    video = torch.full((1, n), -1)
    for j, (v, feat) in enumerate(segments):
        history[0, j, 0] = torch.tensor(feat)
        mask[0, j, 0] = True
        video[0, j] = v
    return history, mask, video


def test_history_items_are_means_per_history_video_of_normalised_steps():
    h, m, v = history_of([(0, [3.0, 0, 0]), (1, [0, 2.0, 0]), (0, [0, 0, 5.0])])
    items, item_mask = history_video_items(h, m, v)
    assert items.shape == (1, 2, 3) and item_mask.tolist() == [[True, True]]
    assert torch.allclose(items[0, 0], torch.tensor([0.5, 0.0, 0.5]))
    assert torch.allclose(items[0, 1], torch.tensor([0.0, 1.0, 0.0]))


@pytest.mark.parametrize("n_videos", [None, 2])
def test_padding_segments_add_nothing_to_any_history_item(n_videos):
    """Padding segments (video -1, no valid step) next to real ones, and a user whose
    segments are all padding: the items are those of the real segments alone."""
    h, m, v = history_of([(0, [3.0, 0, 0]), (1, [0, 2.0, 0]), (0, [0, 0, 5.0])])
    pad = torch.randn(1, 2, 2, 3)  # padding steps hold garbage that must not leak in
    h2 = torch.cat([torch.cat([h, pad], dim=1), torch.cat([pad, pad, h[:, :1]], dim=1)])
    m2 = torch.cat([torch.cat([m, torch.zeros(1, 2, 2, dtype=torch.bool)], dim=1),
                    torch.zeros(1, 5, 2, dtype=torch.bool)])
    v2 = torch.cat([torch.cat([v, torch.full((1, 2), -1)], dim=1), torch.full((1, 5), -1)])
    items, item_mask = history_video_items(h2, m2, v2, n_videos=n_videos)
    want, _ = history_video_items(h, m, v)
    assert torch.allclose(items[0], want[0]) and torch.equal(items[1], torch.zeros(2, 3))
    assert item_mask.tolist() == [[True, True], [False, False]]
    # no user with a history video at all: no items
    none, none_mask = history_video_items(h2[1:], m2[1:], v2[1:])
    assert none.shape == (1, 0, 3) and none_mask.shape == (1, 0)


def test_history_net_groups_segments_by_history_video():
    torch.manual_seed(3)
    net = TAINHistoryNet(3, fc_channels=4, pool4_channels=2).eval()
    feats = [[1.0, 0.2, 0], [0, 1.0, 0.3], [0.4, 0, 1.0], [1.0, 1.0, 0.1]]

    def params(videos: list[int], order: list[int]) -> torch.Tensor:
        h, m, v = history_of([(videos[j], feats[j]) for j in order])
        fc7, pool4 = net(h, m, v)
        return torch.cat([fc7.weight, fc7.bias, pool4.weight, pool4.bias], dim=-1)

    base = params([0, 0, 1, 1], [0, 1, 2, 3])
    # Renumbering the videos and reordering the segments: the same user history.
    assert torch.allclose(base, params([1, 1, 0, 0], [0, 1, 2, 3]), atol=1e-6)
    assert torch.allclose(base, params([0, 0, 1, 1], [3, 1, 0, 2]), atol=1e-6)
    # Moving one segment to the other video changes the items, so the params.
    assert not torch.allclose(base, params([0, 1, 1, 1], [0, 1, 2, 3]), atol=1e-4)


def test_pooled_attention_is_the_mean_of_the_attended_items():
    """The one-product pooling (a speed path) equals averaging every item's output,
    with gradients, for full, partial and empty item sets."""
    torch.manual_seed(0)
    attention = ItemSelfAttention(24)
    items = torch.randn(3, 5, 24, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    w = mask.float()[..., None]
    expected = (attention(items, mask) * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
    pooled = attention.pooled(items, mask)
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(pooled[1], torch.zeros(24))
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), items)
    (grad_pooled,) = torch.autograd.grad(pooled.square().sum(), items)
    torch.testing.assert_close(grad_pooled, grad_expected, rtol=1e-4, atol=1e-5)


def test_history_net_gives_identity_affine_without_history():
    net = TAINHistoryNet(3, fc_channels=4, pool4_channels=2)
    h, m, v = torch.zeros(2, 0, 2, 3), torch.zeros(2, 0, 2, dtype=torch.bool), torch.zeros(2, 0)
    fc7, pool4 = net(h, m, v.long())
    assert torch.equal(fc7.weight, torch.ones(2, 4)) and torch.equal(fc7.bias, torch.zeros(2, 4))
    assert torch.equal(pool4.weight, torch.ones(2, 2)) and torch.equal(pool4.bias, torch.zeros(2, 2))


def test_history_segment_without_video_index_is_a_typed_error():
    h, m, v = history_of([(0, [1.0, 0, 0]), (0, [0, 1.0, 0])])
    v[0, 1] = -1
    with pytest.raises(DataFormatError, match="user-9"):
        history_video_items(h, m, v, ["user-9"])


def test_avhd_uses_history_and_fcsn_ignores_it():
    batch = random_batch(1, 30, DIM, 6, 3, seed=4)
    other = dataclasses.replace(batch, history=torch.flip(batch.history, dims=[-1]))
    with torch.no_grad():
        assert not torch.allclose(build("avhd")(batch).scores, build("avhd")(other).scores)
        assert torch.equal(build("fcsn")(batch).scores, build("fcsn")(other).scores)


# --- segment pooling ---------------------------------------------------------------------


def test_window_boundaries_follow_the_rate():
    mask = torch.ones(3, 30, dtype=torch.bool)
    index = window_index(mask, torch.tensor([2.0, 1.875, 0.1]), 5.0)
    assert index[0].tolist() == [0] * 10 + [1] * 10 + [2] * 10  # 10 steps per 5 s
    # 9.375 steps per window: a step belongs to the window holding its start time.
    assert index[1].tolist() == [0] * 10 + [1] * 9 + [2] * 10 + [3]
    # 0.5 steps per window: step t starts at 10 t s, in window 2 t, so each step is a window
    # of its own; they are numbered without the empty windows between them (was 2 t).
    assert index[2].tolist() == list(range(30))
    at_boundary = window_index(torch.ones(1, 7, dtype=torch.bool), torch.tensor([0.1]), 30.0)
    assert at_boundary[0].tolist() == [0, 0, 0, 1, 1, 1, 2]  # 3 steps = 30 s exactly


@pytest.mark.parametrize("window_s", [1e-9, 1e-300, 0.25])
def test_a_window_shorter_than_a_step_gives_each_step_its_own_segment(window_s):
    """A window of 1e-9 s at 1.875 steps/s numbered its one-step windows 5e8 apart: training
    tried to allocate terabytes of empty segments. The partition is the same, without gaps."""
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    feats = torch.rand(2, 6, 3)
    seg = pool_segments(feats, mask, torch.tensor([1.875, 1.875]), window_s,
                        torch.tensor([0, 7]))
    assert seg.features.shape == (2, 6, 3)
    assert seg.index.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, -1, -1]]
    assert torch.equal(seg.features[0], feats[0])
    assert seg.mask.tolist() == [[True] * 6, [True] * 4 + [False] * 2]
    np.testing.assert_array_equal(window_average(feats[..., 0], 1.875, window_s),
                                  feats[..., 0])  # the metric's windows: one step each too


def test_windows_are_laid_on_the_video_clock_for_clips():
    mask = torch.ones(1, 12, dtype=torch.bool)
    index = window_index(mask, torch.tensor([2.0]), 5.0, offsets=torch.tensor([3]))
    assert index[0].tolist() == [0] * 7 + [1] * 5  # clip starts 3 steps into window 0


def test_pool_segments_known_answer_and_padding():
    feats = torch.arange(1.0, 8.0).reshape(1, 7, 1).repeat(2, 1, 1)
    mask = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    seg = pool_segments(feats, mask, torch.tensor([0.6, 0.6]), window_s=5.0)  # 3 steps / window
    assert seg.index.tolist() == [[0, 0, 0, 1, 1, 1, 2], [0, 0, 0, -1, -1, -1, -1]]
    assert seg.mask.tolist() == [[True, True, True], [True, False, False]]
    assert seg.features[0, :, 0].tolist() == pytest.approx([2.0, 5.0, 7.0])
    assert seg.features[1, 0, 0].item() == pytest.approx(2.0)
    scores = broadcast_segment_scores(torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]]), seg.index)
    assert scores.tolist() == [[1, 1, 1, 2, 2, 2, 3], [4, 4, 4, 0, 0, 0, 0]]


def test_bad_rate_is_a_typed_error_naming_the_video():
    with pytest.raises(DataFormatError, match="clip-3"):
        window_index(torch.ones(2, 4, dtype=torch.bool), torch.tensor([2.0, 0.0]), 5.0,
                     video_ids=["clip-2", "clip-3"])


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 25), min_size=1, max_size=4),
    rate_eighths=st.integers(1, 64),
    window_quarters=st.integers(1, 48),
    offset=st.integers(0, 40),
)
def test_pooling_matches_a_loop_reference(lengths, rate_eighths, window_quarters, offset):
    """Exact rational windows (rates k/8, windows m/4 s are exact in float32) vs a loop."""
    rate, window_s = Fraction(rate_eighths, 8), Fraction(window_quarters, 4)
    t_max = max(max(lengths), 1)
    mask = torch.arange(t_max)[None] < torch.tensor(lengths)[:, None]
    feats = torch.rand(len(lengths), t_max, 2, dtype=torch.float64)
    b = len(lengths)
    seg = pool_segments(
        feats, mask, torch.full((b,), float(rate)), float(window_s), torch.full((b,), offset)
    )
    for i, n in enumerate(lengths):
        windows = [math.floor((offset + t) / (rate * window_s)) for t in range(n)]
        expect = [sorted(set(windows)).index(w) for w in windows]  # empty windows not numbered
        assert seg.index[i, :n].tolist() == expect
        assert (seg.index[i, n:] == -1).all()
        for s in set(expect):
            steps = [t for t in range(n) if expect[t] == s]
            assert torch.allclose(seg.features[i, s], feats[i, steps].mean(0))
        assert int(seg.mask[i].sum()) == len(set(expect))


# --- the registered baselines -------------------------------------------------------------


def test_cards_match_the_paper_table():
    expect = {"fcsn": (15.15, "frame", False, "cross_entropy"),
              "avhd": (16.68, "frame", True, "cross_entropy"),
              "phdgifs": (16.25, "segment", True, "segment_ranking"),
              "video2gif": (14.75, "segment", False, "segment_huber_ranking")}
    for name, (m, gran, hist, loss) in expect.items():
        card = hz.get_model_card(name)
        assert (card.paper_map, card.granularity, card.uses_history, card.default_loss) == (
            m, gran, hist, loss)
        assert card.table == "table1"


@pytest.mark.parametrize("name", BASELINES)
def test_padding_invariance(name):
    model = build(name)
    batch = random_batch(3, 45, DIM, 5, 4, lengths=[45, 1, 23], history_counts=[5, 0, 3], seed=5)
    batch.rate = torch.tensor([2.0, 1.0, 0.7])
    batch.offsets = torch.tensor([0, 4, 9])
    with torch.no_grad():
        full = model(batch).scores
        for i in range(3):
            alone = model(batch.row(i)).scores[0]
            assert torch.allclose(full[i, : alone.shape[0]], alone, atol=1e-5), (name, i)


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("length", [1, 9])
def test_runs_with_zero_history_and_short_videos(name, length):
    batch = random_batch(2, length, DIM, 0, 3, seed=6)
    out = build(name)(batch)
    assert out.scores.shape == (2, length) and torch.isfinite(out.scores).all()
    out.scores.sum().backward()


@pytest.mark.parametrize("name", ["fcsn", "avhd"])
def test_two_class_models_score_logit_difference(name):
    out = build(name)(random_batch(2, 20, DIM, 3, 3, lengths=[20, 11]))
    logits = out.extras["logits"]
    assert logits.shape == (2, 20, 2)
    assert torch.allclose(out.scores, logits[..., 1] - logits[..., 0])


@pytest.mark.parametrize("name", ["phdgifs", "video2gif"])
def test_segment_models_score_constant_within_each_segment(name):
    batch = random_batch(2, 37, DIM, 4, 3, lengths=[37, 20], seed=7)  # 10 steps per 5 s
    out = build(name)(batch)
    index, seg_scores = out.extras["segment_index"], out.extras["segment_scores"]
    assert out.extras["segment_mask"].tolist() == [[True] * 4, [True, True, False, False]]
    assert index[1, 20:].eq(-1).all() and index[0, 30:].eq(3).all()
    for i in range(2):
        valid = index[i] >= 0
        assert torch.equal(out.scores[i, valid], seg_scores[i, index[i, valid]])
    assert out.scores[0, :10].unique().numel() == 1
    assert not torch.equal(out.scores[0, 0], out.scores[0, 10])


def test_segment_window_is_a_builder_option():
    batch = random_batch(1, 30, DIM, 2, 3)
    out = build("video2gif", window_s=2.5)(batch)
    assert out.extras["segment_scores"].shape == (1, 6)


def test_phdgifs_history_feature_weighs_each_history_segment_once():
    history = torch.zeros(1, 3, 4, 2)
    mask = torch.zeros(1, 3, 4, dtype=torch.bool)
    history[0, 0, :4] = torch.tensor([1.0, 0.0])  # long segment along x
    history[0, 1, :1] = torch.tensor([0.0, 3.0])  # short segment along y
    mask[0, 0, :4] = True
    mask[0, 1, :1] = True
    feat = history_feature(history, mask)
    assert torch.allclose(feat, torch.tensor([[0.5, 0.5]]))
    assert torch.equal(history_feature(history[:, :0], mask[:, :0]), torch.zeros(1, 2))


def test_phdgifs_uses_history_and_video2gif_ignores_it():
    batch = random_batch(1, 30, DIM, 6, 3, seed=8)
    other = dataclasses.replace(batch, history=torch.flip(batch.history, dims=[-1]))
    with torch.no_grad():
        assert not torch.allclose(build("phdgifs")(batch).scores, build("phdgifs")(other).scores)
        assert torch.equal(build("video2gif")(batch).scores, build("video2gif")(other).scores)


def test_nearest_history_similarity_known_answer():
    segments = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # (1, 2, 2)
    history = torch.tensor([[[3.0, 0.0], [1.0, 1.0], [0.0, -1.0]]])  # (1, 3, 2)
    valid = torch.tensor([[True, True, False]])  # the third (opposite) one is padding
    r = 2 ** -0.5
    assert torch.allclose(nearest_history_similarity(segments, history, valid, "max"),
                          torch.tensor([[1.0, r]]))
    assert torch.allclose(nearest_history_similarity(segments, history, valid, "mean"),
                          torch.tensor([[(1 + r) / 2, r / 2]]))
    none = torch.zeros(1, 3, dtype=torch.bool)
    assert torch.equal(nearest_history_similarity(segments, history, none), torch.zeros(1, 2))
    assert torch.equal(nearest_history_similarity(segments, history[:, :0], none[:, :0]),
                       torch.zeros(1, 2))


def test_phdgifs_full_late_fuses_the_concat_and_distance_branches():
    model = build("phdgifs_full")
    batch = random_batch(2, 30, DIM, 4, 3, history_counts=[4, 0], seed=13)
    with torch.no_grad():
        out = model(batch)
        concat, dist = out.extras["concat_scores"], out.extras["distance_scores"]
        assert torch.allclose(out.extras["segment_scores"], concat + model.fusion * dist)
        # The concatenation branch is exactly the `phdgifs` model with the same weights.
        assert torch.allclose(concat, model.concat(batch).extras["segment_scores"])
        assert dist[0].abs().sum() > 0 and torch.equal(dist[1], torch.zeros_like(dist[1]))
        # The distance branch reads each history segment: a history highlight that repeats
        # the target's first segment (steps 0-9 at 2 steps/s) makes that segment's max
        # similarity exactly 1, whatever the other history segments are.
        copy = torch.zeros(2, 4, 10, DIM)
        copy[0, 0] = batch.video[0, :10]
        copy[0, 1:, :3] = batch.history[0, 1:]
        mask = torch.zeros(2, 4, 10, dtype=torch.bool)
        mask[0, 0] = True
        mask[0, 1:, :3] = batch.history_mask[0, 1:]
        seen = dataclasses.replace(batch, history=copy, history_mask=mask,
                                   history_video=batch.history_video)
        assert torch.allclose(model(seen).extras["distance_scores"][0, 0], torch.tensor(1.0),
                              atol=1e-5)
    with pytest.raises(hz.errors.ConfigError, match="aggregate"):
        hz.create_model("phdgifs_full", feature_dim=DIM, aggregate="min")
    card = hz.get_model_card("phdgifs_full")
    assert card.table is None and card.uses_history and "phdgifs" in card.summary


def test_video2gif_segment_score_is_the_mean_of_its_steps_scores():
    """The released Video2GIF scores every snippet and averages the scores per segment
    (not the score of the mean feature)."""
    model = build("video2gif")
    batch = random_batch(2, 37, DIM, 0, 3, lengths=[37, 23], seed=11)  # 10 steps per 5 s
    with torch.no_grad():
        out = model(batch)
        steps = model.head(torch.nn.functional.normalize(batch.video, dim=-1)).squeeze(-1)
        for i, n in enumerate([37, 23]):
            for k, start in enumerate(range(0, n, 10)):
                expect = steps[i, start : min(start + 10, n)].mean()
                assert torch.allclose(out.extras["segment_scores"][i, k], expect, atol=1e-6)
        seg_mean = torch.nn.functional.normalize(batch.video, dim=-1)[0, :10].mean(0)
        assert not torch.allclose(out.extras["segment_scores"][0, 0], model.head(seg_mean)[0])


def test_video2gif_alone_equals_padded_in_a_batch():
    model = build("video2gif")
    batch = random_batch(3, 41, DIM, 2, 3, lengths=[41, 7, 18], seed=12)
    batch.rate = torch.tensor([2.0, 1.5, 0.8])
    batch.offsets = torch.tensor([0, 3, 11])
    with torch.no_grad():
        full = model(batch)
        for i in range(3):
            alone = model(batch.row(i))
            n = alone.scores.shape[1]
            assert torch.allclose(full.scores[i, :n], alone.scores[0], atol=1e-6)
            s = alone.extras["segment_scores"].shape[1]
            assert torch.allclose(full.extras["segment_scores"][i, :s],
                                  alone.extras["segment_scores"][0], atol=1e-6)


def test_width_scales_the_mlp_heads():
    full = hz.create_model("video2gif", feature_dim=DIM)
    narrow = hz.create_model("phdgifs", feature_dim=DIM, width_mult=0.25)
    linear = [m for m in full.head.net if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [4096, 512, 128, 1]  # fc6 as released
    assert linear[0].in_features == DIM
    assert [m.out_features for m in narrow.head.net if isinstance(m, torch.nn.Linear)] == [128, 32, 1]
    assert narrow.head.net[0].in_features == 2 * DIM


# --- width_mult: the baselines' size multiplier -------------------------------------------


@pytest.mark.parametrize("name", ["fcsn", "avhd", "video2gif", "phdgifs", "phdgifs_full"])
@pytest.mark.parametrize("bad", [0, -0.5, 9.0, float("nan"), float("inf"), "0.5", True, None])
def test_width_mult_out_of_range_is_a_config_error_naming_model_and_option(name, bad):
    with pytest.raises(hz.errors.ConfigError, match=f"{name}: width_mult"):
        hz.create_model(name, feature_dim=DIM, width_mult=bad)


@pytest.mark.parametrize("name", ["fcsn", "avhd", "video2gif", "phdgifs", "phdgifs_full"])
def test_width_is_refused_with_a_pointer_to_width_mult(name):
    with pytest.raises(hz.errors.ConfigError, match="width_mult .*not width"):
        hz.create_model(name, feature_dim=DIM, width=0.25)


def test_detector_from_fcsn_with_a_channel_count_fails_at_once():
    """issue 12, item 12: this used to allocate ~23 GB and get killed."""
    import time

    start = time.perf_counter()
    with pytest.raises(hz.errors.ConfigError, match="width_mult"):
        hz.Detector.from_model("fcsn", feature_dim=64, width=64)
    # Also as a multiplier: over the parameter limit, refused before any allocation.
    with pytest.raises(hz.errors.ConfigError, match="allow_large=True"):
        hz.create_model("avhd", feature_dim=8192, width_mult=4.0)
    assert time.perf_counter() - start < 5.0


def test_parameter_limit_and_allow_large(monkeypatch):
    from highlightzoo.models import registry

    n = sum(p.numel() for p in hz.create_model("phdgifs", feature_dim=DIM).parameters())
    monkeypatch.setattr(registry, "MAX_PARAMETERS", n - 1)
    with pytest.raises(hz.errors.ConfigError, match=f"{n:,} parameters"):
        hz.create_model("phdgifs", feature_dim=DIM)
    model = hz.create_model("phdgifs", feature_dim=DIM, allow_large=True)
    assert model.build_args == {"feature_dim": DIM, "allow_large": True}
    # A checkpoint's build_args rebuild the same model (allow_large included).
    again = hz.create_model("phdgifs", **model.build_args)
    assert sum(p.numel() for p in again.parameters()) == n
    monkeypatch.setattr(registry, "MAX_PARAMETERS", n)
    assert hz.create_model("phdgifs", feature_dim=DIM).build_args == {"feature_dim": DIM}


@pytest.mark.parametrize("name", ["video2gif", "phdgifs", "phdgifs_full"])
@pytest.mark.parametrize("window_s", [0, -1.0, "5", float("inf"), True])
def test_a_bad_segment_window_is_refused_when_the_model_is_built(name, window_s):
    """Not at the first forward, after ``train`` had made the run folder."""
    with pytest.raises(ConfigError, match=f"model '{name}': window_s .* must be a finite number > 0"):
        hz.create_model(name, feature_dim=8, window_s=window_s)


@pytest.mark.parametrize("name", ["video2gif", "phdgifs", "phdgifs_full"])
@pytest.mark.parametrize("value", ["False", "no", 0])
def test_normalize_must_be_a_bool_not_a_truthy_string(name, value):
    """``--set normalize=False`` (not JSON's ``false``) arrives as the string "False", which is
    truthy: the model normalised while the user had asked it not to."""
    with pytest.raises(ConfigError, match=f"model '{name}': normalize .* must be true or false"):
        hz.create_model(name, feature_dim=8, normalize=value)
    model = hz.create_model(name, feature_dim=8, normalize=False)
    assert getattr(model, "concat", model).normalize is False  # phdgifs_full holds a phdgifs



def test_the_fcsn_and_avhd_parts_refuse_bad_sizes_by_name():
    """The parts A-VHD is built from, for a new detector: a text, float or negative size was
    torch's error ("not all arguments converted during string formatting", "negative
    dimension"), a non-callable norm "'int' object is not callable"."""
    from highlightzoo.models.components.fcsn import FCSN, FCSNDecoder, FCSNEncoder

    for call, match in [
        (lambda: FCSNEncoder("x"), r"in_dim .* must be an int >= 1, got 'x'"),
        (lambda: FCSNEncoder(-1), r"in_dim .* must be an int >= 1, got -1"),
        (lambda: FCSNDecoder(8, 0.5), r"fc_channels must be an int >= 1, got 0.5"),
        (lambda: FCSNDecoder(8, 8, num_classes=None), "num_classes must be an int >= 1"),
        (lambda: FCSNDecoder(8, 8, norm=3), "norm must be a factory of norm layers"),
        (lambda: FCSN(8, l2_normalize="no"), "l2_normalize must be true or false"),
        (lambda: ItemSelfAttention("x"), r"dim .* must be an int >= 1, got 'x'"),
        (lambda: TAINHistoryNet(3, fc_channels=None, pool4_channels=2), "fc_channels must be"),
        (lambda: TAINHistoryNet(3, fc_channels=4, pool4_channels=2**70), "below 2\\*\\*63"),
    ]:
        with pytest.raises(ConfigError, match=match):
            call()
    assert FCSNDecoder(8, 8, num_classes=3).score_fc7.out_channels == 3
