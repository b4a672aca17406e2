"""The synthetic world: determinism, docs/synthetic-world.md properties, statistics, bounded memory, replay."""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from highlightzoo.data import FeatureStore, HighlightDataset
from highlightzoo.data.stats import store_statistics
from highlightzoo.data.synthetic import (
    WORLD_PRESETS,
    PlannedHighlight,
    WorldConfig,
    WorldRenderer,
    get_world_config,
    synthesize,
    synthesize_replay,
)
from highlightzoo.errors import ConfigError

CSV = Path(__file__).resolve().parents[2] / "shared/data/phd-gifs/testing.csv"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path):
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    synthesize("tiny", 7, a, progress=False)
    synthesize("tiny", 7, b, progress=False)
    synthesize("tiny", 8, c, progress=False)
    assert sha(a) == sha(b)
    assert sha(a) != sha(c)
    meta = FeatureStore(a).metadata
    assert meta["generator_config"]["seed"] == 7
    assert meta["generator_config"]["n_topics"] == WORLD_PRESETS["tiny"].n_topics


def test_tiny_preset_is_a_valid_trainable_store(tmp_path: Path):
    path = tmp_path / "t.h5"
    report = synthesize("tiny", 0, path, progress=False)
    store = FeatureStore(path)
    assert {s: len(store.users(s)) for s in store.splits} == {"train": 8, "val": 2, "test": 2}
    assert report.videos == len(store.videos) and report.users == 12
    ds = HighlightDataset(store, "train", mode="train", clip_len=64, sampling="last_video")
    assert len(ds) + len(ds.report.no_positive) == 8
    assert all(ds[i].labels.sum() > 0 for i in range(len(ds)))
    x = store.video_features(store.videos[0])
    assert x.shape[1] == 16 and (x >= 0).all() and np.isfinite(x).all()


def test_presets_have_the_documented_sizes():
    q, s, p = get_world_config("quick"), get_world_config("standard"), get_world_config("paper")
    assert (q.n_train, q.n_val, q.n_test, q.feature_dim, q.rate) == (400, 100, 150, 64, 1.875)
    assert (s.n_train, s.n_val, s.n_test, s.feature_dim) == (3000, 300, 400, 256)
    assert (p.n_train, p.n_val, p.n_test, p.max_videos_per_user) == (9478, 750, 675, 20)
    assert q.max_video_s is None and s.max_video_s is None  # real history-video durations
    with pytest.raises(ConfigError):
        get_world_config("huge")
    with pytest.raises(ConfigError):
        get_world_config(WorldConfig(interest_probs=(0.5, 0.2)))


def test_world_properties_shots_topics_and_interest_profile():
    cfg = dataclasses.replace(WORLD_PRESETS["tiny"], feature_dim=32)
    world = WorldRenderer(cfg, seed=0)
    assert (world.prototypes >= 0).all() and (world.prototypes.sum(1) > 0).all()
    assert world.popularity[0] > world.popularity[-1]  # popular topics more common
    rng = np.random.default_rng(0)
    repeats, peak_gain = 0, []
    for _ in range(40):
        seg = PlannedHighlight(60.0, 63.0, topic=int(rng.integers(cfg.n_topics)))
        shots = world.shots(180.0, [seg], rng)
        assert shots[0, 0] == 0 and shots[-1, 1] == pytest.approx(180.0)
        np.testing.assert_allclose(shots[1:, 0], shots[:-1, 1])  # shots tile the video
        (anchor,) = [s for s in shots if s[0] <= 60.0 and s[1] >= 63.0]
        assert anchor[2] == seg.topic and anchor[3] >= cfg.highlight_appeal[0]
        repeats += int((shots[:, 2] == seg.topic).sum() > 1)  # similar shots elsewhere
        lengths = shots[:, 1] - shots[:, 0]
        assert np.median(lengths) < 10  # shots of a few seconds
        x = world.render(180.0, [seg], rng)
        assert (x >= 0).all() and x.shape == (round(180 * cfg.rate), 32)
        g = x @ (world.generic / np.linalg.norm(world.generic))
        centre = int(61.5 * cfg.rate)
        edge = int(anchor[0] * cfg.rate)
        peak_gain.append(g[centre] - g[edge])
    assert repeats >= 30  # most videos repeat the highlight's topic in unlabeled shots
    assert np.mean(peak_gain) > 0  # interest rises towards the highlight's centre


def test_users_interests_are_one_to_four_topics():
    world = WorldRenderer(WORLD_PRESETS["tiny"], seed=1)
    rng = np.random.default_rng(0)
    sizes = collections.Counter(len(world.interests(rng)) for _ in range(400))
    assert set(sizes) <= {1, 2, 3, 4} and sizes[1] > sizes[4] > 0


def test_quick_like_statistics_match_the_real_data(tmp_path: Path):
    """quick's generator at fewer users and dims (the full preset is measured in benchmarks)."""
    cfg = dataclasses.replace(WORLD_PRESETS["quick"], n_train=150, n_val=0, n_test=0, feature_dim=2)
    path = tmp_path / "q.h5"
    synthesize(cfg, 0, path, progress=False)
    st = store_statistics(FeatureStore(path, check_features=False))
    assert 5 <= st["history_segments_per_user"]["median"] <= 20  # real median 10, factor 2
    assert 1.5 <= st["segment_duration_s"]["median"] <= 6.2  # real median 3.1 s
    assert st["segment_duration_s"]["max"] <= 26.7 + 1e-6
    assert st["history_videos_per_user"]["max"] <= cfg.max_videos_per_user - 1
    # real testing.csv target videos: 1:27.5; all annotated videos 1:36; paper "about 1:50"
    assert 20 <= st["positive_to_unlabeled"] <= 40
    assert 30 <= st["annotated_positive_to_unlabeled"] <= 70
    assert 0.015 <= st["target_coverage"]["median"] <= 0.075  # real median 3.7 %


def _peak_traced(cfg: WorldConfig, path: Path) -> int:
    tracemalloc.start()
    synthesize(cfg, 0, path, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_generation_memory_does_not_grow_with_users(tmp_path: Path):
    """The paper preset streams users to disk: 4x the users must not need ~4x the memory."""
    base = dataclasses.replace(WORLD_PRESETS["paper"], n_train=15, n_val=0, n_test=0, feature_dim=8)
    small = _peak_traced(base, tmp_path / "s.h5")
    large = _peak_traced(dataclasses.replace(base, n_train=60), tmp_path / "l.h5")
    assert (tmp_path / "l.h5").stat().st_size > 2.5 * (tmp_path / "s.h5").stat().st_size
    assert large < 1.6 * small + 2**20, (small, large)


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    if not CSV.is_file():
        pytest.skip("testing.csv not available")
    path = tmp_path_factory.mktemp("replay") / "r.h5"
    cfg = dataclasses.replace(WORLD_PRESETS["tiny"], feature_dim=2, dtype="float16")
    report = synthesize_replay(CSV, 0, path, config=cfg, progress=False)
    return report, FeatureStore(path)


def test_replay_keeps_the_csv_structure(replay):
    report, store = replay
    with open(CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    history = collections.Counter(r["user_id"] for r in rows if r["is_last"] == "False")
    target = collections.Counter(r["user_id"] for r in rows if r["is_last"] == "True")
    assert report.dropped_rows == []  # nothing dropped on testing.csv
    assert report.users == len(store) == 850 and report.segments == 20488
    assert len(store.videos) == len({r["youtubeId"] for r in rows}) == 10222
    assert sum(len(store.users(s)) for s in store.splits) == 850
    for uid in store.users():
        rec = store.user(uid)
        assert len(rec.history) == history[uid] and len(rec.target_segments) == target[uid]
    first = rows[0]
    rec = store.user(first["user_id"])
    assert rec.target_video == first["youtubeId"]
    assert rec.target_segments[0, 0] == pytest.approx(float(first["start"]))
    # 114 unknown durations drawn, 9 stated durations shorter than a segment extended
    assert report.changes == {"duration_drawn": 114, "duration_extended": 9}


def test_replay_shared_videos_are_stored_once(replay):
    _, store = replay
    owners = collections.defaultdict(set)
    for uid in store.users():
        rec = store.user(uid)
        for vid in [rec.target_video, *rec.history_videos]:
            owners[vid].add(uid)
    shared = [v for v, us in owners.items() if len(us) > 1]
    assert shared  # testing.csv has videos shared by several users
    assert len(set(store.videos)) == len(store.videos)
