"""PR-Net: Eq. 1-7 against a direct loop computation, attention masks, cold start, ablations."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import highlightzoo as hz
from highlightzoo.batch import random_batch
from highlightzoo.errors import ConfigError
from highlightzoo.losses import get_loss
from highlightzoo.models.components.attention import PreferenceAttention, cosine, masked_softmax
from highlightzoo.models.components.encoders import ResidualFrameEncoder, UNetEncoder1d
from highlightzoo.models.prnet import PRNet

D, W = 6, 5


def make(name: str, seed: int = 0, **kw) -> PRNet:
    torch.manual_seed(seed)
    return hz.create_model(name, feature_dim=D, width=W, **kw).double().eval()


def batch64(**kw):
    b = random_batch(**{"feature_dim": D, "seed": 1, **kw})
    b.video, b.history, b.labels = b.video.double(), b.history.double(), b.labels.double()
    return b


def encode_alone(model: PRNet, x: torch.Tensor) -> torch.Tensor:
    """M applied to one unpadded sequence (L, d) -> (L, w)."""
    return model.encoder(x[None], torch.ones(1, x.shape[0], dtype=torch.bool))[0]


def dot(x: list[float], y: list[float]) -> float:
    return sum(a * b for a, b in zip(x, y, strict=True))


def cos(x: list[float], y: list[float]) -> float:
    nx, ny = math.sqrt(dot(x, x)), math.sqrt(dot(y, y))
    return dot(x, y) / (nx * ny) if nx > 0 and ny > 0 else 0.0


def test_eq_1_to_7_match_a_direct_loop_computation():
    model = make("prnet")
    batch = batch64(batch_size=3, steps=9, history_segments=4, segment_steps=5,
                    lengths=[9, 4, 6], history_counts=[4, 2, 0])  # fmt: skip
    with torch.no_grad():
        out = model(batch)
        g, u = model.generic.tolist(), model.non_highlight.tolist()
        for row in range(3):
            steps = int(batch.video_mask[row].sum())
            s = encode_alone(model, batch.video[row, :steps])  # Eq. 1 on the lone video
            assert torch.allclose(out.extras["embed"][row, :steps], s, atol=1e-10)
            hist = []
            for j in range(int(batch.history_segment_mask[row].sum())):
                m = batch.history_mask[row, j]
                hist.append(encode_alone(model, batch.history[row, j][m]).mean(0).tolist())
            for i in range(steps):
                si = s[i].tolist()
                if hist:
                    e = [math.exp(9 * cos(si, h)) for h in hist]  # Eq. 3
                    a = [v / sum(e) for v in e]
                    pu = [sum(a[j] * hist[j][k] for j in range(len(hist))) for k in range(W)]
                    q1, q2 = math.exp(9 * cos(si, pu)), math.exp(9 * cos(si, g))  # Eq. 5
                    pc = [(q1 * pu[k] + q2 * g[k]) / (q1 + q2) for k in range(W)]  # Eq. 4
                    got_a = out.extras["attention"][row, i, : len(hist)].tolist()
                    assert got_a == pytest.approx(a, rel=1e-9)
                else:
                    q1, q2, pc = 0.0, 1.0, g  # cold start: p^c = g
                want_w = q1 / (q1 + q2)
                assert out.extras["user_weight"][row, i].item() == pytest.approx(want_w, abs=1e-9)
                assert out.extras["anchor"][row, i].tolist() == pytest.approx(pc, rel=1e-9)
                li, bi = dot(si, pc), dot(si, u)  # Eq. 6, 7
                assert out.extras["l"][row, i].item() == pytest.approx(li, rel=1e-9, abs=1e-12)
                assert out.extras["b"][row, i].item() == pytest.approx(bi, rel=1e-9, abs=1e-12)
                assert out.scores[row, i].item() == pytest.approx(li - bi, rel=1e-9, abs=1e-12)


def test_attention_rows_sum_to_one_over_real_history_and_zero_on_padding():
    model = make("prnet")
    batch = batch64(batch_size=3, steps=12, history_segments=7, lengths=[12, 5, 8],
                    history_counts=[7, 3, 0])  # fmt: skip
    with torch.no_grad():
        att = model(batch).extras["attention"]
    assert att.shape == (3, 12, 7)
    assert torch.allclose(att[0].sum(-1), torch.ones(12, dtype=att.dtype))
    assert torch.allclose(att[1].sum(-1), torch.ones(12, dtype=att.dtype))
    assert (att[1, :, 3:] == 0).all() and (att[2] == 0).all()
    assert (att >= 0).all()


def test_attention_chunking_does_not_change_the_result():
    torch.manual_seed(0)
    frames, hist = torch.randn(2, 50, 4), torch.randn(2, 6, 4)
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    p1, a1 = PreferenceAttention(9.0, chunk_size=7)(frames, hist, mask)
    p2, a2 = PreferenceAttention(9.0, chunk_size=4096)(frames, hist, mask)
    assert torch.allclose(p1, p2, atol=1e-6) and torch.allclose(a1, a2, atol=1e-6)


def test_cosine_known_answers_and_zero_vectors():
    """cos((3,4),(4,3)) = 24/25, cos(x, -x) = -1, a zero vector gives 0 (not NaN); ``y``
    broadcasts, and precomputed norms of ``x`` give the same value."""
    x = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]]])
    y = torch.tensor([[[4.0, 3.0], [-2.0, 0.0], [1.0, 1.0]]])
    torch.testing.assert_close(cosine(x, y), torch.tensor([[24 / 25, -1.0, 0.0]]))
    g = torch.tensor([0.0, 2.0])
    torch.testing.assert_close(cosine(x, g), torch.tensor([[4 / 5, 0.0, 0.0]]))
    norms = torch.linalg.vector_norm(x, dim=-1).clamp_min(1e-8)
    assert torch.equal(cosine(x, g, norms), cosine(x, g))


def test_masked_softmax_all_masked_row_is_zero_not_nan():
    out = masked_softmax(torch.randn(2, 3), torch.tensor([[True, False, True], [False] * 3]))
    assert torch.allclose(out[0].sum(), torch.tensor(1.0)) and out[0, 1] == 0
    assert (out[1] == 0).all()


def test_cold_start_falls_back_to_the_generic_preference():
    model = make("prnet")
    batch = batch64(batch_size=2, steps=10, history_segments=0)
    with torch.no_grad():
        out = model(batch)
    assert torch.allclose(out.extras["anchor"], model.generic.expand(2, 10, W))
    assert (out.extras["user_weight"] == 0).all() and (out.extras["generic_weight"] == 1).all()


def test_prnet_u_without_history_scores_by_non_highlight_only():
    model = make("prnet_u")
    batch = batch64(batch_size=2, steps=10, history_segments=3, history_counts=[3, 0])
    with torch.no_grad():
        out = model(batch)
    assert model.generic is None
    assert (out.extras["l"][1] == 0).all()
    assert torch.allclose(out.scores[1], -out.extras["b"][1])
    assert not (out.extras["l"][0] == 0).all()


def test_prnet_g_ignores_history_entirely():
    model = make("prnet_g")
    assert not model.card.uses_history
    with_history = batch64(batch_size=2, steps=16, history_segments=5)
    other = batch64(batch_size=2, steps=16, history_segments=2, seed=9)
    other.video, other.video_mask, other.labels = (
        with_history.video, with_history.video_mask, with_history.labels
    )
    none = batch64(batch_size=2, steps=16, history_segments=0)
    none.video = with_history.video
    with torch.no_grad():
        outs = [model(b) for b in (with_history, other, none)]
    assert "attention" not in outs[0].extras
    assert torch.equal(outs[0].scores, outs[1].scores) and torch.equal(outs[0].scores, outs[2].scores)
    assert torch.allclose(outs[0].extras["anchor"], model.generic.expand(2, 16, W))


def test_prnet_mean_u_is_invariant_to_history_order_and_has_no_attention():
    model = make("prnet_mean_u")
    assert model.attention is None
    batch = batch64(batch_size=2, steps=16, history_segments=6, history_counts=[6, 4])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    shuffled = batch64(batch_size=2, steps=16, history_segments=6, history_counts=[6, 4])
    shuffled.history, shuffled.history_mask = batch.history[:, perm], batch.history_mask[:, perm]
    shuffled.history_video = batch.history_video[:, perm]
    with torch.no_grad():
        a, b = model(batch), model(shuffled)
    assert "attention" not in a.extras
    assert torch.allclose(a.scores, b.scores, atol=1e-12)
    # the holistic preference is the same for every frame
    anchors = a.extras["anchor"][0]
    assert torch.allclose(anchors, anchors[:1].expand_as(anchors))


def test_prnet_attention_does_depend_on_history_order_only_through_content():
    """Control for the test above: the full model's scores change when history changes."""
    model = make("prnet")
    batch = batch64(batch_size=1, steps=16, history_segments=4)
    changed = batch64(batch_size=1, steps=16, history_segments=4, seed=5)
    changed.video = batch.video
    with torch.no_grad():
        assert not torch.allclose(model(batch).scores, model(changed).scores)


def test_prnet_ce_logits_are_b_then_l():
    model = make("prnet_ce")
    assert model.card.default_loss == "cross_entropy"
    batch = batch64(batch_size=2, steps=8)
    out = model(batch)
    assert torch.equal(out.extras["logits"][..., 0], out.extras["b"])
    assert torch.equal(out.extras["logits"][..., 1], out.extras["l"])


@pytest.mark.parametrize("name", ["prnet_ranking", "prnet_triplet"])
def test_variants_without_non_highlight_score_by_l(name):
    model = make(name)
    assert model.non_highlight is None
    out = model(batch64(batch_size=1, steps=8))
    assert "b" not in out.extras and torch.equal(out.scores, out.extras["l"])


def test_cards_match_the_paper_tables():
    expected = {"prnet": 18.66, "prnet_residual": 16.69, "prnet_ranking": 16.85,
                "prnet_ce": 17.09, "prnet_triplet": 17.26, "prnet_g": 16.78, "prnet_u": 17.57,
                "prnet_mean_u": 16.87, "prnet_mean_u_g": 17.21, "prnet_h0": 16.78,
                "prnet_h5": 17.48}  # fmt: skip
    assert set(hz.list_models("prnet*")) == set(expected)
    for name, value in expected.items():
        card = hz.get_model_card(name)
        assert card.paper_map == value and card.granularity == "frame"
        assert card.table == ("table1" if name == "prnet" else "table2")
        get_loss(card.default_loss)  # the named loss exists
    assert hz.get_model_card("prnet_h0").history_cap == 0
    assert hz.get_model_card("prnet_h5").history_cap == 5
    assert hz.get_model_card("prnet").history_cap is None


def test_variant_switches_cannot_be_overridden_but_sizes_can():
    with pytest.raises(ConfigError, match="user_pref"):
        hz.create_model("prnet", feature_dim=D, user_pref="mean")
    model = hz.create_model("prnet", feature_dim=D, width=3, depth=1, lam=4.0)
    assert model.encoder.width == 3 and model.encoder.depth == 1 and model.lam == 4.0
    assert hz.create_model("prnet", feature_dim=D).encoder.width == D  # paper: width = d


def test_residual_encoder_has_more_parameters_than_m():
    for width, depth in ((16, 3), (64, 2), (32, 5)):
        unet = UNetEncoder1d(width, width, depth=depth)
        residual = ResidualFrameEncoder(width, width, blocks=depth + 1)
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        assert count(residual) > count(unet)
    a = hz.create_model("prnet", feature_dim=32)
    b = hz.create_model("prnet_residual", feature_dim=32)
    assert sum(p.numel() for p in b.parameters()) > sum(p.numel() for p in a.parameters())


@settings(max_examples=20, deadline=None)
@given(steps=st.integers(1, 40), extra=st.integers(0, 20), depth=st.integers(0, 4),
       width=st.sampled_from([3, 4]))
def test_unet_any_length_is_padding_invariant_and_zero_on_padding(steps, extra, depth, width):
    """Whatever the padded steps hold (here random values, not zeros), the real steps'
    embeddings equal the lone video's and the padded ones are zero (width 3: no input
    projection; width 4: a projection whose bias is non-zero on padding)."""
    torch.manual_seed(depth)
    enc = UNetEncoder1d(3, width, depth=depth).double()
    x = torch.rand(1, steps + extra, 3, dtype=torch.float64) - 0.5
    mask = torch.arange(steps + extra)[None] < steps
    padded = enc(x, mask)
    lone = enc(x[:, :steps], mask[:, :steps])
    assert padded.shape == (1, steps + extra, width)
    assert torch.allclose(padded[:, :steps], lone, atol=1e-12)
    assert (padded[:, steps:] == 0).all()


def test_unet_has_temporal_context_and_residual_has_none():
    torch.manual_seed(0)
    x = torch.rand(1, 32, 4)
    mask = torch.ones(1, 32, dtype=torch.bool)
    y = x.clone()
    y[0, 20] += 1.0  # change one step far from step 10
    for enc, should_change in ((UNetEncoder1d(4, 4, depth=3), True),
                               (ResidualFrameEncoder(4, 4), False)):  # fmt: skip
        with torch.no_grad():
            changed = not torch.allclose(enc(x, mask)[0, 10], enc(y, mask)[0, 10])
        assert changed == should_change, type(enc).__name__


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", hz.list_models("prnet*"))
def test_runs_on_cuda_under_bf16_autocast(name):
    """Every tensor the model and its loss make is on the input's device; bf16 stays finite."""
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=D, width=8).cuda()
    batch = random_batch(2, 300, D, 6, 5, lengths=[300, 120], history_counts=[6, 0]).to("cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(batch)
        loss = get_loss(model.card.default_loss)(out, batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("kwargs, match", [
    ({"lam": "x"}, "lam .* must be a finite number >= 0"),
    ({"lam": -1.0}, "lam .* must be a finite number >= 0"),
    ({"lam": float("nan")}, "lam .* must be a finite number >= 0"),
    ({"chunk_size": 0}, "chunk_size .* must be an int >= 1"),
    ({"chunk_size": "x"}, "chunk_size .* must be an int >= 1"),
])
def test_attention_options_are_checked_when_built(kwargs, match):
    """A bad lambda or chunk size failed inside the first forward (after the trainer had made
    the run folder); now create_model refuses it, naming the model."""
    with pytest.raises(ConfigError, match=f"model 'prnet': {match}"):
        hz.create_model("prnet", feature_dim=8, **kwargs)
    assert hz.create_model("prnet", feature_dim=8, lam=0).attention.lam == 0.0  # uniform: allowed


@pytest.mark.parametrize("kwargs, match", [
    ({"depth": "2"}, "depth .* must be an int >= 0, got '2'"),  # a comparison TypeError before
    ({"depth": -1}, "depth .* must be an int >= 0"),
    ({"kernel_size": 2}, "kernel_size must be odd, got 2"),
    ({"kernel_size": 3.0}, "kernel_size must be an int >= 1"),
])
def test_encoder_options_are_config_errors_naming_the_model(kwargs, match):
    with pytest.raises(ConfigError, match=f"model 'prnet': {match}"):
        hz.create_model("prnet", feature_dim=8, **kwargs)


def test_the_residual_variant_checks_depth_before_counting_its_blocks():
    with pytest.raises(ConfigError, match="model 'prnet_residual': depth .* got '2'"):
        hz.create_model("prnet_residual", feature_dim=8, depth="2")  # '2' + 1 before
    # 10**7 blocks were built on the meta device, for minutes, before the parameter limit
    with pytest.raises(ConfigError, match="model 'prnet_residual': depth must be <= 16"):
        hz.create_model("prnet_residual", feature_dim=8, depth=10**7)
    assert len(hz.create_model("prnet_residual", feature_dim=8, depth=16).encoder.blocks) == 17


@pytest.mark.parametrize("name, kwargs", [
    ("prnet", {"chunk_size": 2**70}),  # torch's "Overflow when unpacking long long" at training
    ("prnet", {"width": 2**70}),  # a one-line message followed by torch's C++ stack
    ("prnet", {"kernel_size": 2**63 + 1}),  # was "must be odd"
    ("prnet_residual", {"depth": 2**63}),  # built 2**63 blocks (hung) before
])
def test_an_option_too_large_for_int64_is_one_config_error_line(name, kwargs):
    with pytest.raises(ConfigError, match=rf"model '{name}': .* must be below 2\*\*63") as info:
        hz.create_model(name, feature_dim=8, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kernel_size", [5, 3, "x", None])
def test_the_residual_variant_refuses_a_kernel_size_it_would_not_use(kernel_size):
    """PR-Net_residual has no convolution: ``kernel_size`` of any value (even a string) was
    accepted and silently unused. Only leaving it out (None) builds the model."""
    if kernel_size is None:
        assert hz.create_model("prnet_residual", feature_dim=8, kernel_size=None) is not None
        return
    with pytest.raises(ConfigError, match="model 'prnet_residual': kernel_size has no effect"):
        hz.create_model("prnet_residual", feature_dim=8, kernel_size=kernel_size)
    assert hz.create_model("prnet", feature_dim=8, kernel_size=5).encoder.kernel_size == 5
    assert hz.create_model("prnet", feature_dim=8).encoder.kernel_size == 3  # the paper's


def test_shared_parts_refuse_bad_sizes_by_name():
    """The parts a new detector is built from: a width of 0 was read as "the input width", a
    negative hidden size or a bare int was torch's error, a non-module encoder failed at the
    first forward."""
    from highlightzoo.models.components.heads import MLPHead
    from highlightzoo.models.components.history import HistoryEmbedding

    for call, match in [
        (lambda: UNetEncoder1d(16, 0), r"width \(encoder channels\) must be an int >= 1 or None, got 0"),
        (lambda: UNetEncoder1d(0, 8), r"in_dim .* must be an int >= 1, got 0"),
        (lambda: ResidualFrameEncoder(16, "8"), "width .* got '8'"),
        (lambda: ResidualFrameEncoder(16, 8, blocks=-1), "blocks .* must be an int >= 0"),
        (lambda: MLPHead(8, hidden=4), "hidden must be a sequence of layer sizes"),
        (lambda: MLPHead(8, hidden=(16, -1)), "hidden layer size must be an int >= 1, got -1"),
        (lambda: HistoryEmbedding(None), "encoder must be an nn.Module"),
        (lambda: HistoryEmbedding(UNetEncoder1d(4), chunk_steps=0), "chunk_steps must be an int >= 1"),
        (lambda: HistoryEmbedding(UNetEncoder1d(4), group_by_length="no"),
         "group_by_length must be true or false or None, got 'no'"),
    ]:
        with pytest.raises(ConfigError, match=match):
            call()
    assert UNetEncoder1d(16).width == 16 and UNetEncoder1d(16, 4, depth=0).width == 4
    assert MLPHead(8, hidden=[]).hidden == ()

