"""The four baselines: T-AIN, A-VHD's history net, segment pooling, and the registered models."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import highlightzoo as hz
from highlightzoo.batch import Batch, random_batch
from highlightzoo.errors import DataFormatError
from highlightzoo.models.components.norm import (
    AffineParams,
    TAINHistoryNet,
    TemporalAdaptiveInstanceNorm,
    history_video_items,
    masked_instance_stats,
)
from highlightzoo.models.components.pooling import (
    broadcast_segment_scores,
    pool_segments,
    window_index,
)
from highlightzoo.models.phdgifs import history_feature

BASELINES = ["fcsn", "avhd", "phdgifs", "video2gif"]
DIM = 6


def build(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return hz.create_model(name, feature_dim=DIM, width=1 / 16, **kw).eval()


def row_alone(batch: Batch, i: int) -> Batch:
    """Row ``i`` of ``batch`` as a batch of one, cut to its own video and history length."""
    t = int(batch.video_mask[i].sum())
    n = int(batch.history_segment_mask[i].sum())
    return Batch(
        video=batch.video[i : i + 1, :t],
        video_mask=batch.video_mask[i : i + 1, :t],
        labels=batch.labels[i : i + 1, :t],
        history=batch.history[i : i + 1, :n],
        history_mask=batch.history_mask[i : i + 1, :n],
        history_video=batch.history_video[i : i + 1, :n],
        rate=batch.rate[i : i + 1],
        user_ids=batch.user_ids[i : i + 1],
        video_ids=batch.video_ids[i : i + 1],
        offsets=batch.offsets[i : i + 1],
    )


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


def test_tain_normalises_even_at_length_one_and_at_eval():
    norm = TemporalAdaptiveInstanceNorm(2).eval()
    params = AffineParams(torch.full((1, 2), 3.0), torch.tensor([[0.5, -1.0]]))
    out = norm(torch.tensor([[[7.0], [-2.0]]]), params)
    assert torch.allclose(out, torch.tensor([[[0.5], [-1.0]]]))  # (x - mean) = 0 -> bias


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
    # 0.5 steps per window: step t starts at 10 t s, window 2 t; exact boundaries count.
    assert index[2].tolist() == [2 * t for t in range(30)]
    at_boundary = window_index(torch.ones(1, 7, dtype=torch.bool), torch.tensor([0.1]), 30.0)
    assert at_boundary[0].tolist() == [0, 0, 0, 1, 1, 1, 2]  # 3 steps = 30 s exactly


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
        expect = [w - windows[0] for w in windows]
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
            alone = model(row_alone(batch, i)).scores[0]
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


def test_width_scales_the_mlp_heads():
    full = hz.create_model("video2gif", feature_dim=DIM)
    narrow = hz.create_model("phdgifs", feature_dim=DIM, width=0.25)
    assert [m.out_features for m in full.head.net if isinstance(m, torch.nn.Linear)] == [512, 128, 1]
    assert [m.out_features for m in narrow.head.net if isinstance(m, torch.nn.Linear)] == [128, 32, 1]
    assert narrow.head.net[0].in_features == 2 * DIM
