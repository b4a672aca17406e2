"""docs/your-own-data.md end to end on tiny generated videos, with random backbone weights.

Videos -> ``features extract`` -> a CSV of users' GIFs -> ``data import-phdgifs --train/--test``
-> ``bench tables --data`` -> ``predict --video``; every step through the command line.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from video_support import write_video

from highlightzoo.bench.store_backend import StoreBackend, store_world
from highlightzoo.cli import main
from highlightzoo.data.store import StoreWriter
from highlightzoo.errors import ConfigError

VIDEO_S = 4.0
HEADER = ["youtubeId", "start", "duration", "user_id", "video_duration", "is_last"]


def _gifs(users: range, n_videos: int, rng: np.random.Generator) -> list[list]:
    """Each user: GIFs from two history videos, then two on the target video (is_last)."""
    rows = []
    for u in users:
        history, target = rng.choice(n_videos, 2, replace=False), rng.integers(n_videos)
        for v in history:
            rows.append([f"vid{v}", float(rng.integers(0, 3)), 1.0, f"u{u}", VIDEO_S, False])
        for start in (0.0, 2.0):
            rows.append([f"vid{target}", start, 1.5, f"u{u}", VIDEO_S, True])
    return rows


@pytest.mark.slow
def test_walkthrough_from_videos_to_tables_and_highlights(tmp_path, capsys):
    rng = np.random.default_rng(0)
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(6):
        write_video(videos / f"vid{i}.mp4", VIDEO_S, seed=i)
    (videos / "broken.mp4").write_bytes((videos / "vid0.mp4").read_bytes()[:600])  # truncated

    # 1. features (a bad file in a folder is reported and skipped)
    feats = tmp_path / "features.h5"
    assert main(["features", "extract", str(videos), "--backbone", "resnet18", "--weights", "none",
                 "--crop", "32", "--out", str(feats), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "6 videos" in out and "skipped" in out and "broken.mp4" in out

    # 2. the users' GIFs, official form: a training and a test CSV
    for name, users in (("training.csv", range(12)), ("testing.csv", range(12, 16))):
        with open(tmp_path / name, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(HEADER)
            writer.writerows(_gifs(users, 6, rng))
    store = tmp_path / "store.h5"
    assert main(["data", "import-phdgifs", "--train", str(tmp_path / "training.csv"), "--test",
                 str(tmp_path / "testing.csv"), "--val-users", "3", "--features", str(feats),
                 "--out", str(store), "--quiet"]) == 0
    capsys.readouterr()

    # 3. both tables on the store
    bench = tmp_path / "bench"
    args = ["bench", "tables", "--data", str(store), "--models", "video2gif", "prnet", "--seeds", "1",
            "--max-steps", "2", "--jobs", "1", "--out", str(bench), "--quiet"]
    assert main(args) == 0
    results = json.loads((bench / "results.json").read_text())
    assert results["world"]["store"] == "store.h5" and results["world_probes"] is None
    assert results["world"]["features"]["backbone"] == "resnet18"
    assert {r["id"] for r in results["runs"]} == {"video2gif/seed0", "prnet/seed0"}
    table = (bench / "table1.md").read_text()
    assert "store `store.h5`" in table and results["world"]["fingerprint"]["index_sha256"][:16] in table
    assert main(args) == 0  # resumes: nothing rerun
    assert len(json.loads((bench / "results.json").read_text())["runs"]) == 2
    capsys.readouterr()

    # 4. highlights of a new video for a user's history clips, with the run's backbone
    run = bench / "runs" / "prnet-seed0"
    assert json.loads((run / "results.json").read_text())["features"]["backbone"] == "resnet18"
    assert main(["predict", str(run), "--video", str(videos / "vid1.mp4"), "--history",
                 str(videos / "vid2.mp4"), str(videos / "vid3.mp4"), "--top-k", "2", "--json"]) == 0
    prediction = json.loads(capsys.readouterr().out)
    assert prediction["n_steps"] == math.ceil(VIDEO_S * 1.875)
    assert 1 <= len(prediction["segments"]) <= 2
    assert all(0 <= s["start_s"] < s["end_s"] <= VIDEO_S for s in prediction["segments"])
    assert len(prediction["explanations"][0]["history"]) == 2
    hist = tmp_path / "history.csv"
    hist.write_text("video,start,end\nvideos/vid2.mp4,0.5,1.5\nvideos/vid2.mp4,2,3\nvideos/vid4.mp4,1,2\n")
    assert main(["predict", str(run), "--video", str(videos / "vid1.mp4"), "--history-csv", str(hist)]) == 0
    assert "3 history segments" in capsys.readouterr().out
    # another backbone than the run's is refused, naming both; a truncated video is a typed error
    assert main(["predict", str(run), "--video", str(videos / "vid1.mp4"), "--backbone", "r3d_18"]) == 2
    err = capsys.readouterr().err
    assert "resnet18" in err and "r3d_18" in err
    assert main(["predict", str(run), "--video", str(videos / "broken.mp4")]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    # precomputed features: --rate must be the run's features' rate (it said nothing before)
    with h5py.File(feats) as f:
        np.save(tmp_path / "vid1.npy", f["features/vid1"][()])
    given = ["predict", str(run), "--video-features", str(tmp_path / "vid1.npy"), "--rate"]
    assert main([*given, "2"]) == 2
    assert "rate 2 differs from the 1.875 steps/s of the features model 'prnet'" in capsys.readouterr().err
    assert main([*given, "1.875"]) == 0


def test_a_store_without_all_three_splits_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    with StoreWriter(path, 4) as w:
        w.add_video("v", np.ones((8, 4)), 2.0)
        w.add_user("a", "v", [(0.0, 1.0)])
        w.set_split("train", ["a"])
    with pytest.raises(ConfigError, match="val"):
        store_world(path)
    backend = StoreBackend(path)
    assert backend.probes(None, None) is None
    with pytest.raises(ConfigError, match="--replay"):
        backend.build_world(None, replay=Path("x.csv"), cache_dir=tmp_path, quiet=True)
