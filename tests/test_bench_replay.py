"""``--replay CSV``: the world keeps a PHD-GIFs CSV's structure and is cached by its digest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from highlightzoo.bench.backend import TrainerBackend
from highlightzoo.bench.presets import get_preset
from highlightzoo.data.store import FeatureStore

TESTING_CSV = Path(__file__).resolve().parents[2] / "shared/data/phd-gifs/testing.csv"


@pytest.fixture
def small_csv(tmp_path):
    if not TESTING_CSV.exists():
        pytest.skip(f"{TESTING_CSV} is absent")
    lines = TESTING_CSV.read_text().splitlines()
    users: list[str] = []
    keep = [lines[0]]
    for line in lines[1:]:
        user = line.split(",")[3]
        if user not in users:
            if len(users) == 30:
                break
            users.append(user)
        keep.append(line)
    path = tmp_path / "small.csv"
    path.write_text("\n".join(keep) + "\n")
    return path, users


def test_replay_world_keeps_the_csv_users_and_is_keyed_by_its_digest(small_csv, tmp_path):
    csv_path, users = small_csv
    preset = get_preset("quick")
    backend = TrainerBackend()
    world = backend.build_world(preset, replay=csv_path, cache_dir=tmp_path / "c", quiet=True)
    assert world.path.exists() and world.path.name.startswith("replay-")
    assert world.info["replay"]["file"] == "small.csv" and len(world.info["replay"]["sha256"]) == 64
    with FeatureStore(world.path) as store:
        stored = set(store.users())
        assert {s for s in ("train", "val", "test") if store.users(s)} >= {"train", "test"}
    assert stored <= set(users) and len(stored) >= 25  # rows with empty spans may drop a user
    again = backend.build_world(preset, replay=csv_path, cache_dir=tmp_path / "c", quiet=True)
    assert again.path == world.path and again.key == world.key  # cached, not rebuilt
    tiny = dataclasses.replace(preset, world="tiny")
    plain = backend.build_world(tiny, replay=None, cache_dir=tmp_path / "c", quiet=True)
    assert plain.key != world.key
