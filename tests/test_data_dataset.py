"""HighlightDataset and collate: clips, history cap, masks, empty history, workers, samplers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from highlightzoo.batch import Batch
from highlightzoo.data import FeatureStore, HighlightDataset, StoreWriter, collate
from highlightzoo.data.labels import segments_to_step_labels
from highlightzoo.errors import ConfigError

D, RATE = 5, 2.0


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    """long (600 steps), short (40 steps), h1/h2 history videos; 5 users."""
    path = tmp_path_factory.mktemp("ds") / "s.h5"
    rng = np.random.default_rng(0)
    with StoreWriter(path, D) as w:
        for vid, n in (("long", 600), ("short", 40), ("h1", 30), ("h2", 50)):
            w.add_video(vid, rng.random((n, D), dtype=np.float32) + 0.1, RATE)
        w.add_user(
            "many",
            "long",
            [(200.0, 203.0)],
            [("h1", 0.0, 2.0), ("h2", 3.0, 6.0), ("h1", 5.0, 5.2), ("h2", 10.0, 11.0)],
        )
        w.add_user("cold", "short", [(4.0, 6.0)])  # no history at all
        w.add_user("tiny_seg", "long", [(10.0, 10.1)], [("h1", 1.0, 2.0)])  # no positive step
        w.add_user("late", "long", [(295.0, 299.5)], [("h2", 0.0, 1.0)])
        w.add_user("val_user", "short", [(1.0, 2.0)])
        w.set_split("train", ["many", "cold", "tiny_seg", "late"])
        w.set_split("val", ["val_user"])
    return path


def test_train_clips_contain_a_positive_and_are_deterministic(store_path: Path):
    ds = HighlightDataset(store_path, "train", mode="train", clip_len=64, seed=3, sampling="last_video")
    assert ds.user_ids == ["many", "cold", "late"]  # tiny_seg has no positive step
    assert ds.report.no_positive == ["tiny_seg"] and ds.report.n_users == 4
    full = FeatureStore(store_path)
    for i in range(len(ds)):
        s = ds[i]
        assert s.labels.sum() > 0
        n_video = full.video_length(s.video_id)
        assert s.video.shape == (min(64, n_video), D)
        np.testing.assert_array_equal(
            s.video.numpy(), full.video_features(s.video_id, s.offset, s.offset + len(s.video))
        )
        rec = full.user(s.user_id)
        labels = segments_to_step_labels(rec.target_segments, n_video, RATE)
        np.testing.assert_array_equal(s.labels.numpy(), labels[s.offset : s.offset + len(s.video)])
    again = HighlightDataset(store_path, "train", mode="train", clip_len=64, seed=3, sampling="last_video")
    assert [again[i].offset for i in range(3)] == [ds[i].offset for i in range(3)]
    offsets = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        offsets.add(ds[0].offset)
    assert len(offsets) > 1  # a new epoch draws new clips


def test_video_shorter_than_clip_is_returned_whole(store_path: Path):
    ds = HighlightDataset(store_path, "train", mode="train", clip_len=256, sampling="last_video")
    cold = ds[ds.user_ids.index("cold")]
    assert cold.offset == 0 and cold.video.shape == (40, D)


def test_eval_mode_keeps_users_without_positive_and_whole_videos(store_path: Path):
    ds = HighlightDataset(store_path, "train", mode="eval")
    assert ds.user_ids == ["many", "cold", "tiny_seg", "late"]
    assert ds.report.no_positive == ["tiny_seg"]
    s = ds[ds.user_ids.index("tiny_seg")]
    assert s.video.shape == (600, D) and s.offset == 0 and s.labels.sum() == 0


def test_history_segments_cap_and_video_index(store_path: Path):
    full = HighlightDataset(store_path, "train", mode="eval")[0]
    assert [h.shape[0] for h in full.history] == [4, 6, 1, 2]  # midpoint rule, >= 1 step
    assert full.history_video == [0, 1, 0, 1]
    np.testing.assert_array_equal(
        full.history[1].numpy(), FeatureStore(store_path).video_features("h2", 6, 12)
    )
    capped = HighlightDataset(store_path, "train", mode="eval", history_cap=2)[0]
    assert len(capped.history) == 2 and capped.history_video == [0, 1]
    cold = HighlightDataset(store_path, "train", mode="eval", history_cap=0)[0]
    assert cold.history == [] and cold.history_video == []
    with pytest.raises(ConfigError):
        HighlightDataset(store_path, "train", history_cap=-1)


def test_history_order_reversed_caps_from_the_end(store_path: Path):
    """history_order="reversed": the cap keeps the *last* stored segments (for a PHD-GIFs CSV,
    which lists users newest first, the oldest ones); "stored" keeps the first."""
    full = HighlightDataset(store_path, "train", mode="eval")[0]
    rev = HighlightDataset(store_path, "train", mode="eval", history_order="reversed")[0]
    assert [h.shape[0] for h in rev.history] == [2, 1, 6, 4]
    capped = HighlightDataset(store_path, "train", mode="eval", history_cap=2,
                              history_order="reversed")[0]
    assert [h.shape[0] for h in capped.history] == [2, 1]
    np.testing.assert_array_equal(capped.history[0].numpy(), full.history[3].numpy())
    np.testing.assert_array_equal(capped.history[1].numpy(), full.history[2].numpy())
    assert len(set(capped.history_video)) == 2  # h2 and h1, re-indexed for this sample
    with pytest.raises(ConfigError, match="history_order"):
        HighlightDataset(store_path, "train", history_order="newest")


def test_collate_pads_with_masks(store_path: Path):
    ds = HighlightDataset(store_path, "train", mode="eval")
    samples = [ds[0], ds[1]]  # "many" (600 steps, 4 segments) and "cold" (40 steps, none)
    b = collate(samples)
    assert isinstance(b, Batch)
    assert b.video.shape == (2, 600, D) and b.history.shape == (2, 4, 6, D)
    assert b.video_mask[0].all() and b.video_mask[1].sum() == 40
    assert (b.video[1, 40:] == 0).all() and (b.labels[1, 40:] == 0).all()
    assert b.history_mask[0].sum(-1).tolist() == [4, 6, 1, 2]
    assert not b.history_mask[1].any()
    assert b.history_video.tolist() == [[0, 1, 0, 1], [-1, -1, -1, -1]]
    assert (b.history[0, 2, 1:] == 0).all()  # padding inside a short segment
    assert b.history_segment_mask.tolist() == [[True] * 4, [False] * 4]
    assert b.rate.tolist() == [RATE, RATE] and b.offsets.tolist() == [0, 0]
    assert b.user_ids == ["many", "cold"] and b.video_ids == ["long", "short"]
    counts = b.host_counts()  # what the models may use instead of reading the device
    assert counts.lengths == (600, 40) and counts.history_videos == 2


def test_collate_gives_features_in_the_asked_dtype(store_path: Path):
    """Under bf16 training the collate pads straight into bf16 (half the bytes to move to
    the GPU); masks, labels and host counts are as in float32."""
    ds = HighlightDataset(store_path, "train", mode="eval")
    full, half = collate([ds[0], ds[1]]), collate([ds[0], ds[1]], feature_dtype=torch.bfloat16)
    assert half.video.dtype == half.history.dtype == torch.bfloat16
    assert torch.equal(half.video, full.video.bfloat16())
    assert torch.equal(half.history, full.history.bfloat16())
    assert torch.equal(half.video_mask, full.video_mask) and torch.equal(half.labels, full.labels)
    assert half.labels.dtype == torch.float32 and half.host_counts() == full.host_counts()
    assert half.to("cpu", feature_dtype=torch.bfloat16).video.dtype == torch.bfloat16


def test_pinned_batch_keeps_its_host_counts(store_path: Path, monkeypatch):
    """``DataLoader(pin_memory=True)`` pins every tensor through ``Batch.pin_memory`` and the
    collate's counts still apply (pinning needs an accelerator: stood in for by a copy)."""
    pinned = []

    def pin(self):
        pinned.append(tuple(self.shape))
        return self.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    ds = HighlightDataset(store_path, "train", mode="eval")
    b = collate([ds[0], ds[1]])
    out = b.pin_memory()
    assert (2, 600, D) in pinned and len(pinned) == sum(
        isinstance(getattr(b, f), torch.Tensor) for f in b.__dataclass_fields__)
    assert out.video is not b.video and torch.equal(out.video, b.video)
    assert out.host_counts() == b.host_counts() is not None


def test_collate_whole_batch_without_history(store_path: Path):
    ds = HighlightDataset(store_path, "train", mode="eval", history_cap=0)
    b = collate([ds[0], ds[1]])
    assert b.history.shape == (2, 0, 1, D)
    assert b.history_mask.shape == (2, 0, 1) and b.history_video.shape == (2, 0)
    assert b.host_counts().history_videos == 0


def test_dataloader_with_two_workers_matches_single_process(store_path: Path):
    ds = HighlightDataset(store_path, "train", mode="train", clip_len=32, seed=1)
    ds.set_epoch(2)
    ref = collate([ds[i] for i in range(len(ds))])
    loader = DataLoader(ds, batch_size=len(ds), num_workers=2, collate_fn=collate)
    (b,) = list(loader)
    assert torch.equal(b.video, ref.video) and torch.equal(b.offsets, ref.offsets)
    assert torch.equal(b.history, ref.history)
    assert b.host_counts() == ref.host_counts() is not None  # counts survive the worker


def test_distributed_sampler_partitions_users(store_path: Path):
    ds = HighlightDataset(store_path, "train", mode="train", clip_len=32)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        ds.set_epoch(1)
        seen += list(sampler)
    assert sorted(set(seen)) == list(range(len(ds)))  # every item reached once (+ padded repeats)
    assert len(seen) == len(ds) + len(ds) % 2


def test_leave_one_out_makes_every_annotated_video_a_target_with_the_others_as_history(store_path):
    ds = HighlightDataset(store_path, "train", mode="train", clip_len=64, seed=1)
    items = [(ds[i].user_id, ds[i].video_id) for i in range(len(ds))]
    # "many": h1 (2 segments, one labels nothing on its own: 5.0-5.2 s), h2, long (the target);
    # "tiny_seg": h1 only (its target has no positive step); "late": h2 (0-1 s), long
    assert sorted(set(items)) == sorted({("many", "h1"), ("many", "h2"), ("many", "long"),
                                         ("cold", "short"), ("tiny_seg", "h1"), ("late", "h2"),
                                         ("late", "long")})
    assert ds.report.videos_without_positive == 1  # tiny_seg's target: counted, not dropped silently
    store = FeatureStore(store_path)
    for i in range(len(ds)):
        s = ds[i]
        assert s.labels.sum() > 0 and s.video.shape[0] == min(64, store.video_length(s.video_id))
        rec = store.user(s.user_id)
        others = [h for h in rec.history if h.video_id != s.video_id]
        extra = len(rec.target_segments) if s.video_id != rec.target_video else 0
        assert len(s.history) == len(others) + extra  # the target video's own segments never leak
    many_h2 = next(ds[i] for i in range(len(ds)) if (ds[i].user_id, ds[i].video_id) == ("many", "h2"))
    # history of (many, h2): the last video's segment (200-203 s = 6 steps at 2/s), the
    # newest, first; then h1's two segments in stored order (stored histories are newest first)
    assert many_h2.history_video == [0, 1, 1]
    assert [len(h) for h in many_h2.history] == [6, 4, 1]  # h1: 0-2 s, 5.0-5.2 s


def test_a_capped_leave_one_out_history_keeps_the_newest_segments(store_path):
    """Under leave-one-out the last video's segments are the newest, so a cap of 1 keeps
    them for every other target video; ``history_order="reversed"`` keeps the oldest."""
    def history_of(ds: HighlightDataset, video: str) -> list[int]:
        s = next(ds[i] for i in range(len(ds)) if (ds[i].user_id, ds[i].video_id) == ("many", video))
        return [len(h) for h in s.history]

    newest = HighlightDataset(store_path, "train", mode="train", clip_len=64, history_cap=1)
    oldest = HighlightDataset(store_path, "train", mode="train", clip_len=64, history_cap=1,
                              history_order="reversed")
    whole = HighlightDataset(store_path, "train", mode="train", clip_len=64)
    assert history_of(newest, "h2") == [6]  # the last video's 200-203 s
    assert history_of(oldest, "h2") == [1]  # h1's 5.0-5.2 s, the oldest stored
    assert history_of(whole, "long") == [4, 6, 1, 2]  # the user's own target: the stored history
    assert history_of(newest, "long") == [4]


def test_leave_one_out_has_one_item_per_chunk_with_a_positive_and_random_offsets(store_path):
    ds = HighlightDataset(store_path, "train", mode="train", clip_len=64, seed=1)
    long_items = [i for i in range(len(ds)) if ds[i].video_id == "long"]
    # "many" 200-203 s = steps 400-405 (chunk 6), "late" 295-299.5 s = steps 590-598 (chunk 9)
    assert len(long_items) == 2
    starts = set()
    for epoch in range(10):
        ds.set_epoch(epoch)
        s = ds[long_items[0]]
        starts.add(s.offset)
        assert s.labels.sum() > 0 and 400 - 63 <= s.offset <= 405
    assert len(starts) > 1
    capped = HighlightDataset(store_path, "train", mode="train", clip_len=64, history_cap=1)
    assert all(len(capped[i].history) <= 1 for i in range(len(capped)))


def test_power_of_two_buckets():
    from highlightzoo.data.dataset import power_of_two_at_least

    assert [power_of_two_at_least(n) for n in (0, 1, 2, 3, 4, 5, 8, 9, 70)] == \
        [0, 1, 2, 4, 4, 8, 8, 16, 128]


@pytest.mark.parametrize("context", [None, 1])
def test_bucketed_history_pads_to_powers_of_two_and_changes_no_score(store_path: Path, context):
    """``collate(bucket_history=True)`` (the trainer's collate under cuda_graphs) rounds the
    history's segment count and segment length (and the context slices') up to powers of
    two; every registered model gives the unbucketed batch's scores, and the loss too."""
    import highlightzoo as hz
    from highlightzoo.losses import get_loss

    ds = HighlightDataset(store_path, "train", mode="eval", history_cap=3, history_context=context)
    samples = [ds[i] for i in range(len(ds))]
    plain, bucketed = collate(samples), collate(samples, bucket_history=True)
    assert plain.history.shape[1:3] == (3, 6) and bucketed.history.shape[1:3] == (4, 8)
    if context is not None:
        lc = plain.history_context.shape[2]
        assert bucketed.history_context.shape[1:3] == (4, 1 << (lc - 1).bit_length())
    assert bucketed.host_counts().lengths == plain.host_counts().lengths
    names = [n for n in hz.list_models() if context is None or n.startswith("prnet")]
    for name in names:
        kwargs = {"history_context": f"video:{context}"} if context is not None and name == "prnet" \
            else {}
        if kwargs == {} and context is not None:
            continue
        torch.manual_seed(0)
        model = hz.create_model(name, feature_dim=D, **kwargs).eval()
        with torch.no_grad():
            a, b = model(plain), model(bucketed)
        torch.testing.assert_close(b.scores, a.scores, rtol=1e-5, atol=1e-5, msg=name)
        loss = get_loss(model.card.default_loss)
        losses = []
        for out, batch in ((a, plain), (b, bucketed)):
            torch.manual_seed(1)  # the same sampled pairs, for the losses that sample
            losses.append(loss(out, batch))
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"clip_len": "64"}, "clip_len must be an int >= 1, got '64'"),
        ({"clip_len": 0}, "clip_len must be an int >= 1, got 0"),
        ({"history_cap": "5"}, "history_cap must be an int >= 0 or None, got '5'"),
        ({"history_cap": 2.5}, "history_cap must be an int >= 0 or None, got 2.5"),
        ({"seed": "x"}, "seed must be an int >= 0, got 'x'"),
        ({"history_context": -1}, "history_context (steps) must be an int >= 0 or None, got -1"),
    ],
)
def test_dataset_arguments_of_the_wrong_type_are_config_errors(store_path, kwargs, match):
    """A string or float where a count belongs is refused by name, not a TypeError from a
    comparison (``clip_len="64"``) nor used as a slice bound later (``history_cap=2.5``)."""
    with pytest.raises(ConfigError, match=re.escape(match)):
        HighlightDataset(store_path, "train", mode="train", **kwargs)
