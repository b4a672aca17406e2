"""history_context: history segments encoded alone ("segment") or inside their video ("video:K")."""

from __future__ import annotations

import pytest
import torch
from training_support import write_tiny_store

import highlightzoo as hz
from highlightzoo.data import HighlightDataset, collate
from highlightzoo.data.labels import segment_steps
from highlightzoo.errors import ConfigError
from highlightzoo.models.components.encoders import UNetEncoder1d
from highlightzoo.models.components.history import (
    HistoryEmbedding,
    length_groups,
    parse_history_context,
)

D = 8


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_tiny_store(tmp_path_factory.mktemp("data") / "tiny.h5")


def _prnet(context: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return hz.create_model("prnet", feature_dim=D, width=8, history_context=context).eval()


def _batch(store, k: int | None, split: str = "test"):
    data = HighlightDataset(store, split, mode="eval", history_context=k)
    return collate([data[i] for i in range(len(data))]), data


def test_parse_history_context():
    assert parse_history_context("segment") is None
    assert parse_history_context("video:0") == 0 and parse_history_context("video:12") == 12
    for bad in ("video", "video:-1", "video:x", "frames:3", ""):
        with pytest.raises(ConfigError, match="history_context must be"):
            parse_history_context(bad)
    with pytest.raises(ConfigError, match="history_context must be"):
        _prnet("video:")


def test_dataset_gives_slices_of_the_source_video_with_the_own_steps_marked(store):
    k = 3
    data = HighlightDataset(store, "train", mode="eval", history_context=k)
    plain = HighlightDataset(store, "train", mode="eval")
    clipped = 0
    for i in range(len(data)):
        sample, reference = data[i], plain[i]
        assert sample.history_context is not None and reference.history_context is None
        segments = data.store.user(sample.user_id).history
        assert len(sample.history_context) == len(reference.history) == len(segments)
        for seg_feats, (a, b), context, seg in zip(
            reference.history, sample.history_own, sample.history_context, segments, strict=True
        ):
            video = torch.from_numpy(data.store.video_features(seg.video_id))
            first, stop = segment_steps(seg.start, seg.end, data.store.video_rate(seg.video_id),
                                        len(video))  # fmt: skip
            lo, hi = max(0, first - k), min(len(video), stop + k)
            assert torch.equal(context, video[lo:hi])  # up to k steps each side, inside the video
            assert (a, b) == (first - lo, stop - lo)
            assert torch.equal(context[a:b], seg_feats)  # own steps = today's segment features
            clipped += (lo > first - k) or (hi < stop + k)
    assert clipped > 0  # the tiny store has segments near a video's edge


def test_store_reads_stay_slices(store, monkeypatch):
    data = HighlightDataset(store, "test", mode="eval", history_context=2)
    calls = []
    real = data.store.video_features

    def spy(video_id, start=None, stop=None):
        calls.append((video_id, start, stop))
        return real(video_id, start, stop)

    monkeypatch.setattr(data.store, "video_features", spy)
    data._cache.clear()
    for i in range(len(data)):
        data[i]
    history_reads = [c for c in calls if c[0].endswith(tuple(f"-h{h}" for h in range(4)))]
    assert history_reads and all(c[1] is not None and c[2] is not None for c in history_reads)


def test_video_0_equals_the_segment_embedding(store):
    segment, video0 = _prnet("segment"), _prnet("video:0")
    batch, _ = _batch(store, 0)
    assert batch.history_context.shape == batch.history.shape
    with torch.no_grad():
        a = segment.embed_history(batch)
        b = video0.embed_history(batch)
        assert torch.equal(a, b)
        assert torch.equal(segment(batch).scores, video0(batch).scores)


def test_video_k_embedding_depends_on_the_neighbours_and_only_averages_own_steps():
    torch.manual_seed(0)
    encoder = UNetEncoder1d(D, 8, depth=3).eval()
    embed = HistoryEmbedding(encoder)
    context = torch.rand(1, 1, 12, D)
    mask = torch.ones(1, 1, 12, dtype=torch.bool)
    own = torch.zeros(1, 1, 12, dtype=torch.bool)
    own[..., 4:8] = True
    with torch.no_grad():
        got = embed(context, mask, own)
        # known answer: M over the whole slice, mean over the own steps 4..7
        want = encoder(context[0], mask[0])[:, 4:8].mean(dim=1)
        assert torch.allclose(got[0], want, atol=1e-6)
        changed = context.clone()
        changed[..., :2, :] += 1.0  # neighbours before the segment
        assert not torch.allclose(embed(changed, mask, own), got)
        # alone (no context), the same neighbours cannot matter
        alone = embed(context[..., 4:8, :], mask[..., 4:8])
        assert torch.equal(alone, embed(changed[..., 4:8, :], mask[..., 4:8]))
        assert not torch.allclose(alone, got)


def test_prnet_video_k_on_real_batches_padding_invariant_and_differs_from_segment(store):
    model = _prnet("video:4")
    assert model.history_context_steps == 4
    batch, data = _batch(store, 4)
    with torch.no_grad():
        together = model(batch).scores
        for i in range(len(data)):
            single = collate([data[i]])
            got = model(single).scores[0]
            assert torch.allclose(got, together[i, : got.shape[0]], atol=1e-5)
        segment = _prnet("segment")
        has_history = batch.history_segment_mask.any(dim=1)
        assert has_history.any()
        differs = (segment(batch).scores - together).abs().amax(dim=1) > 1e-6
        assert differs[has_history].any()


def test_video_k_without_context_in_the_batch_is_a_config_error(store):
    batch, _ = _batch(store, None)
    with pytest.raises(ConfigError, match=r"history_context=3"):
        _prnet("video:3")(batch)


def test_memory_is_bounded_with_1347_history_segments():
    """A user with the largest real history: the encoder never sees more than chunk_steps steps."""
    torch.manual_seed(0)
    encoder = UNetEncoder1d(D, 8, depth=3).eval()
    seen = []

    class Spy(torch.nn.Module):
        width = encoder.width

        def forward(self, x, m):
            seen.append(x.shape[0] * x.shape[1])
            return encoder(x, m)

    embed = HistoryEmbedding(Spy(), chunk_steps=8192)
    n, lc = 1347, 2 * 16 + 20  # 20-step segments with 16 steps of context each side
    context = torch.rand(1, n, lc, D)
    mask = torch.ones(1, n, lc, dtype=torch.bool)
    own = torch.zeros(1, n, lc, dtype=torch.bool)
    own[..., 16:36] = True
    with torch.no_grad():
        out = embed(context, mask, own)
    assert out.shape == (1, n, 8) and torch.isfinite(out).all()
    assert max(seen) <= 8192 and sum(seen) == n * lc
    # chunking does not change the result
    with torch.no_grad():
        whole = HistoryEmbedding(encoder, chunk_steps=10**9)(
            context[:, :50], mask[:, :50], own[:, :50]
        )
    assert torch.allclose(out[:, :50], whole, atol=1e-5)


def test_length_groups_known_answers():
    # no call cost: one call per padded length; lengths rounded to the multiple for the cost
    assert length_groups([3, 0, 9, 4, 16], call_cost=0, multiple=8) == [(4, [0, 3]), (16, [2, 4])]
    assert length_groups([3, 0, 9, 4, 17], call_cost=0) == [
        (3, [0]), (4, [3]), (9, [2]), (17, [4])]
    # a large call cost: everything in one call, cut to the longest extent
    assert length_groups([3, 0, 9, 4], call_cost=10**6) == [(9, [0, 2, 3])]
    # the exact optimum: 10 short + 1 long; merging costs 11 x 40 = 440 > 10 x 8 + 40 + 100
    assert length_groups([8] * 10 + [40], call_cost=100) == [(8, list(range(10))), (40, [10])]
    assert length_groups([8] * 10 + [40], call_cost=400) == [(40, list(range(11)))]
    assert length_groups([0, 0], call_cost=0) == []


@pytest.mark.parametrize("with_own", [False, True])
def test_grouping_history_segments_by_length_does_not_change_the_embeddings(with_own):
    """Uneven segments (1-40 steps, some empty): grouped calls, one call over the real
    segments and one call over every slot (the GPU path) give the same embeddings."""
    torch.manual_seed(0)
    encoder = UNetEncoder1d(D, 8, depth=3).eval()
    history = torch.rand(3, 7, 40, D)
    lengths = torch.randint(0, 41, (3, 7))
    mask = torch.arange(40)[None, None, :] < lengths[..., None]
    history = history * mask[..., None]
    own = mask & (torch.arange(40)[None, None, :] >= 2) if with_own else None
    with torch.no_grad():
        grouped = HistoryEmbedding(encoder, group_by_length=True, call_cost=0)(history, mask, own)
        one_call = HistoryEmbedding(encoder, group_by_length=True, call_cost=10**9)(
            history, mask, own)
        every_slot = HistoryEmbedding(encoder, group_by_length=False)(history, mask, own)
    assert len(length_groups(lengths.flatten().tolist(), 0, 8)) > 2
    torch.testing.assert_close(grouped, one_call, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(every_slot, one_call, rtol=1e-5, atol=1e-6)
    assert torch.equal(grouped[lengths == 0], torch.zeros_like(grouped[lengths == 0]))
    assert torch.equal(every_slot[lengths == 0], torch.zeros_like(every_slot[lengths == 0]))
