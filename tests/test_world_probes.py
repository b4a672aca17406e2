"""World probes: latents redrawn exactly, probe rules, and mAP on the tiny world."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from highlightzoo.bench.world_probes import (
    probe_scores,
    split_user_indices,
    world_probes,
    write_world_probes,
)
from highlightzoo.data.store import FeatureStore
from highlightzoo.data.synthetic import (
    StepLatents,
    WorldRenderer,
    get_world_config,
    synthesize,
    target_latents,
)
from highlightzoo.errors import ConfigError, DataFormatError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("world") / "tiny.h5"
    synthesize("tiny", 3, path, progress=False)
    return path


def test_render_with_latents_keeps_the_features_and_the_draws():
    world = WorldRenderer(get_world_config("tiny"), 0)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    plain = world.render(30.0, [], a)
    feats, latents = world.render_with_latents(30.0, [], b)
    assert np.array_equal(plain, feats)
    assert a.random() == b.random()  # the same number of draws
    assert latents.topic.shape == latents.appeal.shape == (feats.shape[0],)
    assert (latents.appeal >= 0).all() and (latents.appeal <= 1).all()


def test_redrawn_targets_equal_the_stored_ones(tiny):
    cfg = get_world_config("tiny")
    world = WorldRenderer(cfg, 3)
    with FeatureStore(tiny) as store:
        for index in range(cfg.n_users):
            rec = store.user(f"u{index:06d}")
            latent = target_latents(world, 3, index)
            assert np.array_equal(store.video_features(rec.target_video), latent.features)
            assert np.allclose(rec.target_segments, [(s.start, s.end) for s in latent.segments])


def test_probe_rules_known_answer():
    steps = StepLatents(topic=np.array([1, 2, 3, 2]), appeal=np.array([0.9, 0.1, 0.5, 0.6]))
    got = probe_scores(steps, np.array([2, 7]))
    assert np.allclose(got["generic"], [0.9, 0.1, 0.5, 0.6])
    assert np.allclose(got["interest"], [0, 1, 0, 1])
    assert np.allclose(got["both"], [0.9, 1.1, 0.5, 1.6])
    assert list(np.argsort(-got["both"])) == [3, 1, 0, 2]  # user's topics first, then by appeal


def test_split_indices_follow_the_generation_order():
    cfg = dataclasses.replace(get_world_config("tiny"), n_train=5, n_val=2, n_test=3)
    assert list(split_user_indices(cfg, "test")) == [7, 8, 9]
    assert list(split_user_indices(cfg, "val")) == [5, 6]
    with pytest.raises(ConfigError, match="unknown split"):
        split_user_indices(cfg, "dev")


def test_probes_on_the_tiny_world_from_store_and_from_config_agree(tiny, tmp_path):
    from_store = world_probes(tiny)
    from_config = world_probes(world_config="tiny", seed=3)
    assert from_store["probes"] == from_config["probes"]
    assert from_store["n_videos"] + from_store["n_skipped"] == get_world_config("tiny").n_test
    for name in ("generic", "interest", "both"):
        assert 0.0 < from_store["probes"][name]["map"] <= 100.0
    assert from_store["records"][0]["video"] is not None
    paths = write_world_probes(tmp_path, {"tiny": from_store})
    assert json.loads(paths[0].read_text())["tiny"]["probes"] == from_store["probes"]
    assert "| tiny | 3 |" in paths[1].read_text()


def test_a_store_of_another_world_is_refused(tiny):
    with pytest.raises(ConfigError, match="seed 3, not 4"):
        world_probes(tiny, seed=4)
    other = dataclasses.replace(get_world_config("tiny"), noise=0.4)
    with pytest.raises(DataFormatError, match="differs from the stored one"):
        world_probes(tiny, world_config=other)
    with pytest.raises(ConfigError, match="needs a store_path"):
        world_probes(world_config="tiny")


def test_cli_bench_probes_writes_the_chosen_worlds(tmp_path, capsys):
    from highlightzoo.cli import main

    assert main(["bench", "probes", "--out", str(tmp_path), "--worlds", "tiny", "--seed", "3"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "world_probes.json"),
                                               str(tmp_path / "world_probes.md")]
    written = json.loads((tmp_path / "world_probes.json").read_text())
    assert list(written) == ["tiny"]
    assert written["tiny"]["probes"] == world_probes(world_config="tiny", seed=3)["probes"]
