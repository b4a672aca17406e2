"""The official PHD-GIFs splits: ``import-phdgifs --train training.csv --test testing.csv``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from highlightzoo.cli import main
from highlightzoo.data import FeatureStore
from highlightzoo.data.phdgifs import import_phdgifs, official_splits
from highlightzoo.errors import ConfigError, DataFormatError

TESTING_CSV = Path(__file__).resolve().parents[2] / "shared/data/phd-gifs/testing.csv"
RATE = 1.875


def test_official_splits_known_answers():
    train = [f"t{i}" for i in range(10)]
    splits = official_splits(train, ["x", "y"], val_users=3, seed=0)
    assert splits["test"] == ["x", "y"]
    assert len(splits["val"]) == 3 and len(splits["train"]) == 7
    assert sorted(splits["train"] + splits["val"]) == sorted(train)
    assert [u for u in train if u in splits["val"]] == splits["val"]  # input order kept
    assert official_splits(train, [], 0.2, 0)["val"].__len__() == 2  # a fraction
    assert official_splits(list(reversed(train)), [], 3, 0)["val"] == list(reversed(splits["val"]))
    assert official_splits(train, [], 3, 1)["val"] != splits["val"]  # seeded
    assert official_splits(train, [], 0, 0)["val"] == []
    for bad in (10, 2.5, -1, float("nan")):
        with pytest.raises(ConfigError):
            official_splits(train, [], bad, 0)


def _halves(tmp_path: Path, n_users: int = 40) -> tuple[Path, Path, list[str], list[str], Path]:
    """A training CSV and a test CSV: two user-disjoint halves of the first users of testing.csv,
    with random features for every video they use (durations from the CSV)."""
    if not TESTING_CSV.exists():
        pytest.skip(f"{TESTING_CSV} is absent")
    with open(TESTING_CSV, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        by_user: dict[str, list[list[str]]] = {}
        for row in reader:
            if row[3] not in by_user and len(by_user) == n_users:
                break
            by_user.setdefault(row[3], []).append(row)
    users = list(by_user)
    a_users, b_users = users[: n_users // 2], users[n_users // 2 :]
    paths = []
    for name, group in (("A.csv", a_users), ("B.csv", b_users)):
        path = tmp_path / name
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for u in group:
                w.writerows(by_user[u])
        paths.append(path)
    feats = tmp_path / "feats"
    feats.mkdir()
    durations = {r[0]: float(r[4]) for rows in by_user.values() for r in rows}
    rng = np.random.default_rng(0)
    for vid, dur in durations.items():
        np.save(feats / f"{vid}.npy", rng.random((max(1, int(dur * RATE)), 4), dtype=np.float32))
    return paths[0], paths[1], a_users, b_users, feats


def test_test_split_is_exactly_the_test_csv_users(tmp_path):
    a, b, a_users, b_users, feats = _halves(tmp_path)
    out = tmp_path / "store.h5"
    report = import_phdgifs(a, feats, RATE, out, test_csv=b, val_users=4, progress=False)
    with FeatureStore(out) as store:
        test = store.users("test")
        assert report.users_kept == report.users_in == len(a_users) + len(b_users)  # none lost
        assert test == b_users  # exactly B's users, in B's order
        assert set(store.users("train")) | set(store.users("val")) <= set(a_users)
        assert len(store.users("val")) == 4
        assert "test users of B.csv" in store.metadata["source"]
    assert report.splits["test"] == len(test)


def test_overlapping_csvs_are_refused_naming_the_users(tmp_path):
    a, b, a_users, _, feats = _halves(tmp_path)
    overlap = tmp_path / "overlap.csv"
    overlap.write_text(b.read_text() + "".join(a.read_text().splitlines(keepends=True)[1:3]))
    with pytest.raises(DataFormatError, match=repr(a_users[0])):
        import_phdgifs(a, feats, RATE, tmp_path / "s.h5", test_csv=overlap, progress=False)
    assert not (tmp_path / "s.h5").exists()


def test_cli_official_form_and_the_single_csv_form(tmp_path, capsys):
    a, b, _, b_users, feats = _halves(tmp_path, n_users=20)
    out = tmp_path / "cli.h5"
    assert main(["data", "import-phdgifs", "--train", str(a), "--test", str(b), "--features", str(feats),
                 "--rate", str(RATE), "--val-users", "0.2", "--out", str(out), "--quiet"]) == 0
    with FeatureStore(out) as store:
        assert set(store.users("test")) <= set(b_users) and store.users("test")
    assert main(["data", "import-phdgifs", str(a), "--features", str(feats), "--rate", str(RATE),
                 "--out", str(tmp_path / "one.h5"), "--quiet"]) == 0
    assert main(["data", "import-phdgifs", str(a), "--train", str(a), "--test", str(b), "--features",
                 str(feats), "--out", str(tmp_path / "x.h5")]) == 2
    assert "not both" in capsys.readouterr().err


def test_rate_comes_from_a_features_extract_file_and_a_contradiction_is_refused(tmp_path):
    a, b, _, _, feats = _halves(tmp_path, n_users=10)
    h5 = tmp_path / "f.h5"
    info = {"backbone": "resnet18", "feature_dim": 4, "rate": RATE, "weights": "w"}
    with h5py.File(h5, "w") as f:
        f.attrs["features"] = json.dumps(info)
        g = f.create_group("features")
        for npy in feats.iterdir():
            g.create_dataset(npy.stem, data=np.load(npy))
    out = tmp_path / "s.h5"
    import_phdgifs(a, h5, None, out, test_csv=b, progress=False)
    with FeatureStore(out) as store:
        assert store.metadata["features"] == info
        assert store.video_rate(store.videos[0]) == RATE
    with pytest.raises(ConfigError, match="contradicts"):
        import_phdgifs(a, h5, 2.0, tmp_path / "t.h5", test_csv=b, progress=False)
