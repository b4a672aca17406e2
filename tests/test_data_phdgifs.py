"""PHD-GIFs import: CSV parsing, features from HDF5 / eccv16 / .npy / .npz, the loss report, splits."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from highlightzoo.data import FeatureStore
from highlightzoo.data.phdgifs import import_phdgifs, read_phdgifs_csv, split_users
from highlightzoo.errors import ConfigError, DataFormatError, WriteError

HEADER = "youtubeId,start,duration,user_id,video_duration,is_last\n"
ROWS = [
    "vidA,10.0,3.0,u1,60.0,True",  # line 2
    "vidA,11.0,2.0,u1,60.0,True",
    "vidB,1.0,2.0,u1,-1,False",  # unknown duration: from features (40 steps / 2 = 20 s)
    "vidC,0.0,2.0,u1,30.0,False",  # vidC has no features
    "vidB,5.0,2.0,u2,-1,True",
    "vidA,50.0,30.0,u2,60.0,False",  # ends 20 s after the video: outside
    "vidC,3.0,1.0,u3,30.0,True",  # u3's only target video has no features
    "vidA,1.0,1.0,u3,60.0,False",
]
RATE = 2.0


FEATS = {
    "vidA": np.random.default_rng(0).random((120, 4)),
    "vidB": np.random.default_rng(1).random((40, 4)),
}


def write_inputs(tmp_path: Path, rows=ROWS) -> tuple[Path, Path, Path]:
    csv_path = tmp_path / "ann.csv"
    csv_path.write_text(HEADER + "\n".join(rows) + "\n")
    npy = tmp_path / "npy"
    npy.mkdir()
    for vid, x in FEATS.items():
        np.save(npy / f"{vid}.npy", x)
    h5 = tmp_path / "feats.h5"
    with h5py.File(h5, "w") as f:
        for vid, x in FEATS.items():
            f[vid] = x
    return csv_path, npy, h5


def write_other_layouts(tmp_path: Path) -> dict[str, Path]:
    """The same features as a folder of .npz and as an eccv16-style HDF5 file."""
    npz = tmp_path / "npz"
    npz.mkdir()
    np.savez(npz / "vidA.npz", features=FEATS["vidA"], picks=np.arange(120) * 15)
    np.savez(npz / "vidB.npz", FEATS["vidB"])  # a single unnamed array
    eccv16 = tmp_path / "eccv16.h5"
    with h5py.File(eccv16, "w") as f:
        for i, (vid, x) in enumerate(FEATS.items(), start=1):
            g = f.create_group(f"video_{i}")
            g["features"], g["video_name"] = x, vid.encode()
            g["gtscore"], g["n_frames"] = np.zeros(len(x)), len(x) * 15
    return {"npz": npz, "eccv16": eccv16}


@pytest.mark.parametrize("source", ["npy", "h5", "npz", "eccv16"])
def test_import_keeps_valid_users_and_reports_every_loss(tmp_path: Path, source: str):
    csv_path, npy, h5 = write_inputs(tmp_path)
    features = {"npy": npy, "h5": h5, **write_other_layouts(tmp_path)}[source]
    out = tmp_path / "store.h5"
    report = import_phdgifs(csv_path, features, RATE, out, progress=False)
    assert (report.users_in, report.users_kept) == (3, 2)
    assert report.users_lost == {"target_lost": 1}
    assert (report.segments_in, report.segments_kept) == (8, 4)
    assert report.segments_lost == {
        "video_without_features": 2, "segment_outside_video": 1, "user_lost": 1,
    }  # fmt: skip
    assert report.videos_lost == {"no_features": 1} and report.videos_kept == 2
    assert report.dropped_rows == [
        (5, "video_without_features"), (7, "segment_outside_video"),
        (8, "video_without_features"), (9, "user_lost"),
    ]  # fmt: skip
    store = FeatureStore(out)
    assert sorted(store.users()) == ["u1", "u2"]
    u1 = store.user("u1")
    assert u1.target_video == "vidA"
    np.testing.assert_allclose(u1.target_segments, [[10.0, 13.0], [11.0, 13.0]])
    assert [tuple(h) for h in u1.history] == [("vidB", 1.0, 3.0)]
    assert store.video_duration("vidB") == pytest.approx(20.0)  # -1 -> T / rate
    assert store.video_duration("vidA") == 60.0 and store.video_rate("vidA") == RATE
    np.testing.assert_allclose(store.video_features("vidB"), np.load(npy / "vidB.npy"), rtol=1e-6)
    assert "u1" in report.summary() or "users 2/3" in report.summary()


@pytest.mark.parametrize("row, message", [
    ("vidA,1e30,1.0,u4,60.0,True", "a time beyond 86400 s"),  # a store of 2e30 steps was tried
    ("vidA,1.0,1e30,u4,60.0,True", "a time beyond 86400 s"),
    ("vidA,1.0,2.0,u4,1e23,True", "a time beyond 86400 s"),  # numpy's dimension error in replay
    ("vidA,1.0,2.0,u4,inf,True", "a time beyond 86400 s"),
    ("vidA,1.0,inf,u4,60.0,True", "must be finite seconds"),
    ("vidA,nan,2.0,u4,60.0,True", "must be finite seconds"),
    ("vi\x00dA,1.0,2.0,u4,60.0,True", "id holding a NUL"),  # h5py's ValueError at closing
])
def test_a_time_that_is_not_a_videos_seconds_is_a_bad_row(tmp_path: Path, capsys, row, message):
    """Huge or infinite times in the CSV: the replay rendered (or tried to) that many steps and
    ended in NumPy's "Maximum allowed dimension exceeded"; the import dropped them under other
    names. Each is a bad row naming the line: an error in strict mode, counted in lenient."""
    from highlightzoo.cli import main

    csv_path, npy, _ = write_inputs(tmp_path, [*ROWS, row])
    with pytest.raises(DataFormatError, match=f"line 10: .*{re.escape(message)}") as info:
        read_phdgifs_csv(csv_path)
    assert (info.value.user, info.value.reason) == ("u4", "bad_row")
    report = import_phdgifs(csv_path, npy, RATE, tmp_path / "o.h5", strict=False, progress=False)
    assert (10, "bad_row") in report.dropped_rows
    capsys.readouterr()
    assert main(["data", "replay", str(csv_path), "--preset", "tiny", "--out",
                 str(tmp_path / "r.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 10" in err[0] and message in err[0], err
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("row, message", [
    ("vidA,1.0,2.0,u4,60.0,True,7", "line 10 has 7 cells, the header 6"),  # was accepted
    ("vidA,1.0,2.0,u4,60.0", "line 10 has 5 cells, the header 6"),
    ("vidA,1.0,2.0,u4,60.0,yes", "line 10: is_last 'yes' is not a boolean"),
    (",1.0,2.0,u4,60.0,True", "line 10: an empty youtubeId"),
    ("vidA,1.0,2.0, ,60.0,True", "line 10: an empty user_id"),
])
def test_a_malformed_line_says_what_is_wrong_with_it(tmp_path: Path, row, message):
    """One message said "empty id or is_last not a boolean" for all of these, and a line with
    a cell more than the header was read as if it had none."""
    csv_path, npy, _ = write_inputs(tmp_path, [*ROWS, row])
    with pytest.raises(DataFormatError, match=re.escape(message)) as info:
        read_phdgifs_csv(csv_path)
    assert info.value.reason == "bad_row"
    assert read_phdgifs_csv(csv_path, strict=False).bad_rows[0][0] == 10


def test_a_spreadsheets_byte_order_mark_blank_lines_and_a_repeated_column(tmp_path: Path):
    """A UTF-8 byte-order mark made the first column '\ufeffyoutubeId' ("CSV lacks column(s)
    ['youtubeId']"); a blank line shifted every later line number by one; a column named twice
    kept the second one's cells under its name, shifting every row."""
    csv_path, _, _ = write_inputs(tmp_path)
    text = csv_path.read_text()
    csv_path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_phdgifs_csv(csv_path).n_rows == len(ROWS)
    lines = text.splitlines()
    csv_path.write_text("\n".join([*lines[:3], "", *lines[3:], "vidA,abc,1.0,u4,60.0,True"]) + "\n")
    with pytest.raises(DataFormatError, match="line 11: not a number"):
        read_phdgifs_csv(csv_path)  # the 11th line of the file (it said line 10)
    csv_path.write_text(HEADER.replace("start,", "start,start,") + "vidA,1.0,1.0,2.0,u1,60.0,True\n")
    with pytest.raises(DataFormatError, match=r"names column\(s\) \['start'\] more than once"):
        read_phdgifs_csv(csv_path)


def test_the_longest_times_of_the_real_csv_are_kept(tmp_path: Path):
    """The bound sits far above real data: PHD-GIFs' longest video lasts 11,677 s."""
    rows = [*ROWS, "vidA,8849.0,7.0,u4,11677.0,False", "vidA,1.0,2.0,u4,-1,True"]
    csv_path, _, _ = write_inputs(tmp_path, rows)
    user = next(u for u in read_phdgifs_csv(csv_path).users if u.user_id == "u4")
    assert user.history[0].video_duration == 11677.0 and user.target[0].video_duration is None


def test_malformed_csv_strict_raises_lenient_reports(tmp_path: Path):
    rows = [*ROWS, "vidA,abc,1.0,u4,60.0,True"]
    csv_path, npy, _ = write_inputs(tmp_path, rows)
    with pytest.raises(DataFormatError) as info:
        read_phdgifs_csv(csv_path)
    assert info.value.user == "u4" and "line 10" in str(info.value)
    assert info.value.path == str(csv_path)
    report = import_phdgifs(csv_path, npy, RATE, tmp_path / "o.h5", strict=False, progress=False)
    assert report.segments_lost["bad_row"] == 1 and (10, "bad_row") in report.dropped_rows
    missing = tmp_path / "bad.csv"
    missing.write_text("youtubeId,start\nx,1\n")
    with pytest.raises(DataFormatError) as info:
        read_phdgifs_csv(missing)
    assert info.value.reason == "missing_column"


def test_ambiguous_npz_and_group_without_features_are_typed_errors(tmp_path: Path):
    csv_path, _, _ = write_inputs(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    np.savez(bad / "vidA.npz", a=FEATS["vidA"], b=FEATS["vidA"])
    with pytest.raises(DataFormatError) as info:
        import_phdgifs(csv_path, bad, RATE, tmp_path / "o.h5", progress=False)
    assert info.value.reason == "ambiguous_npz" and info.value.video == "vidA"
    h5 = tmp_path / "groups.h5"
    with h5py.File(h5, "w") as f:
        f.create_group("vidA")["scores"] = np.zeros(3)
    with pytest.raises(DataFormatError) as info:
        import_phdgifs(csv_path, h5, RATE, tmp_path / "o.h5", progress=False)
    assert info.value.reason == "missing_group" and "vidA" in str(info.value)
    notes = tmp_path / "notes.txt"
    notes.write_text("not hdf5")
    with pytest.raises(DataFormatError, match="HDF5"):
        import_phdgifs(csv_path, notes, RATE, tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()


def test_missing_feature_path_is_a_typed_error(tmp_path: Path):
    csv_path, _, _ = write_inputs(tmp_path)
    with pytest.raises(DataFormatError):
        import_phdgifs(csv_path, tmp_path / "nope", RATE, tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 200), st.integers(0, 5))
def test_split_users_is_a_deterministic_partition(n, seed):
    ids = [f"user{i}" for i in range(n)]
    split = split_users(ids, (0.8, 0.1, 0.1), seed)
    got = split["train"] + split["val"] + split["test"]
    assert sorted(got) == sorted(ids)  # a partition: nothing lost, nothing twice
    assert abs(len(split["train"]) - 0.8 * n) < 1 and abs(len(split["val"]) - 0.1 * n) < 1
    assert split_users(list(reversed(ids)), (0.8, 0.1, 0.1), seed) == {
        k: list(reversed(v)) for k, v in split.items()
    }  # depends on the set of ids, not their order


def test_split_users_seed_changes_assignment():
    ids = [str(i) for i in range(100)]
    assert split_users(ids, seed=0)["test"] != split_users(ids, seed=1)["test"]
    with pytest.raises(ValueError):
        split_users(ids, (0.5, 0.5))


@pytest.mark.parametrize("fractions", [(0.5, 0.5), ("0.8", 0.1, 0.1), (float("nan"), 1, 1),
                                       (0, 0, 0), "0.8", (True, 0.1, 0.1)])
def test_split_fractions_of_the_wrong_kind_are_config_errors(fractions):
    # a string fraction was a TypeError from a comparison
    with pytest.raises(ConfigError, match="fractions must be 3 finite numbers >= 0"):
        split_users(["a", "b", "c"], fractions)
    from_array = split_users(["a", "b", "c"], np.array([1.0, 1.0, 1.0]))  # an array is taken
    assert sorted(len(users) for users in from_array.values()) == [1, 1, 1]


@pytest.mark.parametrize("kwargs, match", [
    ({"val_users": 1}, "--val-users .* applies to an official --train/--test import only"),
    ({"test_csv": "TEST", "fractions": (1, 1, 1)}, "fractions split one CSV's users"),
    ({"test_csv": "TEST", "val_users": "1"}, "--val-users must be a count"),
    ({"fractions": (1, 1)}, "fractions must be 3 finite numbers"),
    ({"strict": "no"}, "strict must be true or false"),  # truthy: it read strictly
    ({"out_path": "TMP"}, "it is a folder; name a file in it"),  # found after reading, before
])
def test_import_options_are_checked_before_any_work_not_ignored(tmp_path: Path, kwargs, match):
    """``val_users`` without ``test_csv`` (and ``fractions`` with it) was silently ignored; the
    other options failed (or not) after every feature file had been read."""
    csv_path, npy, _ = write_inputs(tmp_path)
    named = {"TEST": csv_path, "TMP": tmp_path}
    kwargs = {"out_path": tmp_path / "s.h5",
              **{k: named.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}}
    with pytest.raises((ConfigError, WriteError), match=match):
        import_phdgifs(csv_path, tmp_path / "no-such-features", RATE, progress=False, **kwargs)
    assert not (tmp_path / "s.h5").exists()


def test_cli_val_users_with_one_csv_is_refused(tmp_path: Path, capsys):
    from highlightzoo.cli import main

    csv_path, npy, _ = write_inputs(tmp_path)
    assert main(["data", "import-phdgifs", str(csv_path), "--features", str(npy), "--rate",
                 str(RATE), "--val-users", "5", "--out", str(tmp_path / "s.h5"), "--quiet"]) == 2
    assert "applies to an official --train/--test import only" in capsys.readouterr().err
    assert not (tmp_path / "s.h5").exists()


def _three_videos(tmp_path: Path, steps: dict[str, int]) -> tuple[Path, Path]:
    """Three 60 s videos, one user each (target + one history row); features of ``steps``."""
    rows = [f"{v},1.0,2.0,u{i},60.0,True\n{w},3.0,2.0,u{i},60.0,False"
            for i, (v, w) in enumerate([("v0", "v1"), ("v1", "v2"), ("v2", "v0")])]
    csv_path = tmp_path / "three.csv"
    csv_path.write_text(HEADER + "\n".join(rows) + "\n")
    feats = tmp_path / "three"
    feats.mkdir()
    for vid, n in steps.items():
        np.save(feats / f"{vid}.npy", np.ones((n, 4), np.float32))
    return csv_path, feats


@pytest.mark.parametrize("rate, steps, likely", [
    (None, 60, "1 steps/s"),  # features at 1 step/s read at the 1.875 default: 53 %
    (1.0, 120, "2 steps/s"),  # 2 steps/s read as 1: 200 %
    (1.875, 94, "1.57 steps/s"),  # C3D clips of 16 frames at 25 fps, read as 30 fps: 84 %
])
def test_a_rate_at_which_the_features_do_not_cover_their_videos_is_refused(
        tmp_path: Path, capsys, rate, steps, likely):
    """A wrong rate (or the silent 1.875 default) misplaced every label of the store."""
    from highlightzoo.cli import main

    csv_path, feats = _three_videos(tmp_path, {"v0": steps, "v1": steps, "v2": steps})
    out = tmp_path / "s.h5"
    with pytest.raises(ConfigError, match=f"of 3 videos.* looks like {likely}: give it with --rate"):
        import_phdgifs(csv_path, feats, rate, out, progress=False)
    assert not out.exists()
    argv = ["data", "import-phdgifs", str(csv_path), "--features", str(feats), "--out", str(out),
            "--quiet", *(["--rate", str(rate)] if rate else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"looks like {likely}" in err[0] and not out.exists()


def test_one_truncated_video_does_not_decide_the_rate_and_is_dropped_and_counted(tmp_path: Path):
    csv_path, feats = _three_videos(tmp_path, {"v0": 120, "v1": 119, "v2": 30})  # v2: 25 %
    report = import_phdgifs(csv_path, feats, 2.0, tmp_path / "s.h5", progress=False)
    assert report.videos_lost == {"length_mismatch": 1}  # v2 ends 15 s before its video does
    assert ("v2", "length_mismatch") in report.dropped_videos
    with FeatureStore(tmp_path / "s.h5") as store:
        assert "v2" not in store.videos and store.video_features("v1").shape[0] == 119


def _with_attr(value):
    def edit(f):
        f.attrs["features"] = value
    return edit


def _video_name(value):
    def edit(f):
        del f["video_1/video_name"]
        f["video_1/video_name"] = value
    return edit


# (layout, edit of the features file, message): each was a traceback (an array attribute, bad
# UTF-8, '/features' as one dataset, a video_name group), or was accepted: a description that is
# not an object was dropped (the rate fell back to 1.875), a rate of "2" was reported as a bad
# --rate the user never gave, and two groups named alike gave one video the other's features.
DAMAGED_FEATURE_FILES = {
    "info_array": ("h5", _with_attr(np.array([1, 2])), "'features' attribute must be a JSON text"),
    "info_bad_utf8": ("h5", _with_attr(np.bytes_(b"\xff\xfe")), "'features' attribute is not JSON"),
    "info_list": ("h5", _with_attr("[1]"), "features must be an object, got [1]"),
    "info_rate_text": ("h5", _with_attr('{"rate": "2"}'), "features.rate must be int or float"),
    "info_rate_nan": ("h5", _with_attr('{"rate": NaN}'), "NaN is not a JSON value"),
    "info_dim_text": ("h5", _with_attr('{"feature_dim": "4"}'), "features.feature_dim must be int"),
    "features_dataset": ("h5", lambda f: f.create_dataset("features", data=np.zeros((3, 4))),
                         "'/features' is one dataset"),
    "name_group": ("eccv16", lambda f: (f["video_1"].__delitem__("video_name"),
                                        f["video_1"].create_group("video_name")),
                   "group 'video_1': video_name must be one UTF-8 string"),
    "name_bad_utf8": ("eccv16", _video_name(np.bytes_(b"\xff")), "video_name must be one UTF-8"),
    "name_number": ("eccv16", _video_name(5), "video_name must be one UTF-8 string"),
    "name_twice": ("eccv16", _video_name(b"vidB"),
                   "groups 'video_1' and 'video_2' both have video_name 'vidB'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(DAMAGED_FEATURE_FILES))
def test_a_damaged_features_file_is_refused_naming_it(tmp_path: Path, case: str):
    layout, edit, message = DAMAGED_FEATURE_FILES[case]
    csv_path, _, h5 = write_inputs(tmp_path)
    path = h5 if layout == "h5" else write_other_layouts(tmp_path)["eccv16"]
    with h5py.File(path, "r+") as f:
        edit(f)
    for strict in (True, False):  # a damaged file is not a skippable row
        with pytest.raises(DataFormatError, match=re.escape(message)) as info:
            import_phdgifs(csv_path, path, None if layout == "h5" else RATE, tmp_path / "s.h5",
                           strict=strict, progress=False)
        assert info.value.path == str(path)
    assert not (tmp_path / "s.h5").exists()


def test_a_one_item_video_name_array_still_names_its_group(tmp_path: Path):
    csv_path, _, _ = write_inputs(tmp_path)
    eccv16 = write_other_layouts(tmp_path)["eccv16"]
    with h5py.File(eccv16, "r+") as f:
        _video_name(np.array([b"vidA"]))(f)
    report = import_phdgifs(csv_path, eccv16, RATE, tmp_path / "s.h5", progress=False)
    assert report.videos_kept == 2


def test_a_store_with_a_malformed_features_description_is_refused(tmp_path: Path):
    csv_path, npy, _ = write_inputs(tmp_path)
    import_phdgifs(csv_path, npy, RATE, tmp_path / "s.h5", progress=False)
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f.attrs["features"] = '{"backbone": 5}'
    with pytest.raises(DataFormatError, match="features.backbone must be str, got 5"):
        FeatureStore(tmp_path / "s.h5")
