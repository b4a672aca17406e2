"""Feature store: round trip, atomic writes, and every bad-input case (strict and lenient)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from highlightzoo.data import store_reader
from highlightzoo.data.store import FORMAT_VERSION, FeatureStore, StoreWriter, store_fingerprint
from highlightzoo.data.store_format import FEATURES_FORMAT
from highlightzoo.errors import ConfigError, DataFormatError

D = 6


def feats(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, D), dtype=np.float32)


def write_store(path: Path, target_c: list | None = None) -> dict[str, np.ndarray]:
    """3 videos, 3 users: u1 (a; history b, c), u2 (b; history a), u3 (c; no history)."""
    videos = {"a/1": feats(40, 0), "b": feats(20, 1), "c": feats(10, 2)}
    with StoreWriter(path, D, source="unit test", generator_config={"k": 1}) as w:
        for vid, x in videos.items():
            w.add_video(vid, x, rate=2.0)
        w.add_user("u1", "a/1", [(1.0, 3.0), (10.0, 12.5)], [("b", 0.5, 2.0), ("c", 1.0, 4.0)])
        w.add_user("u2", "b", [(2.0, 4.0)], [("a/1", 5.0, 6.0)])
        w.add_user("u3", "c", target_c if target_c is not None else [(0.0, 1.0)])
        w.set_split("train", ["u1", "u2"])
        w.set_split("test", ["u3"])
    return videos


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    write_store(path)
    return path


def test_round_trip_gives_identical_arrays_and_segments(tmp_path: Path):
    path = tmp_path / "s.h5"
    videos = write_store(path)
    store = FeatureStore(path)
    assert store.splits == ["test", "train"]
    assert store.users("train") == ["u1", "u2"] and store.users("test") == ["u3"]
    assert store.feature_dim == D and len(store) == 3
    assert store.metadata["format_version"] == FORMAT_VERSION
    assert store.metadata["generator_config"] == {"k": 1}
    assert store.metadata["source"] == "unit test"
    for vid, x in videos.items():
        np.testing.assert_array_equal(store.video_features(vid), x)
        assert store.video_rate(vid) == 2.0
        assert store.video_duration(vid) == pytest.approx(len(x) / 2.0)
        assert store.video_length(vid) == len(x)
    np.testing.assert_array_equal(store.video_features("a/1", 3, 7), videos["a/1"][3:7])
    u1 = store.user("u1")
    assert u1.target_video == "a/1"
    np.testing.assert_array_equal(u1.target_segments, [[1.0, 3.0], [10.0, 12.5]])
    assert [tuple(h) for h in u1.history] == [("b", 0.5, 2.0), ("c", 1.0, 4.0)]
    assert u1.history_videos == ["b", "c"]
    assert store.user("u3").history == []


def test_float16_storage_reads_back_as_float32(tmp_path: Path):
    x = feats(5, 3)
    with StoreWriter(tmp_path / "h.h5", D, dtype="float16") as w:
        w.add_video("v", x, 1.0)
        w.add_user("u", "v", [(0, 1)])
    out = FeatureStore(tmp_path / "h.h5").video_features("v")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, x, atol=1e-3)


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path: Path):
    path = tmp_path / "s.h5"
    with pytest.raises(RuntimeError), StoreWriter(path, D) as w:
        w.add_video("v", feats(4, 0), 1.0)
        raise RuntimeError("interrupted")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # the temp file is gone too
    write_store(path)
    before = path.read_bytes()
    with pytest.raises(DataFormatError), StoreWriter(path, D) as w:
        w.add_video("v", np.zeros((4, D + 1)), 1.0)  # wrong dim is refused on write
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


@pytest.mark.parametrize("call, what", [
    (lambda w: w.add_video("v\x00", feats(4, 0), 1.0), "video id"),
    (lambda w: w.add_video("", feats(4, 0), 1.0), "video id"),
    (lambda w: w.add_user("u\x00", "v", [(0.0, 1.0)]), "user id"),
    (lambda w: w.add_user("u", "v\x00", [(0.0, 1.0)]), "target video id"),
    (lambda w: w.add_user("u", "v", [(0.0, 1.0)], [("w\x00", 0.0, 1.0)]), "history video id"),
    (lambda w: w.add_user("u", "v", [(0.0, 1.0)], [(None, 0.0, 1.0)]), "history video id"),
    (lambda w: w.set_split("test", ["u", "a\x00b"]), "user id"),
    (lambda w: w.set_split("", ["u"]), "split name"),
])
def test_an_id_hdf5_cannot_store_is_refused_when_added(tmp_path: Path, call, what):
    """An id holding a NUL reached h5py only when the store was closed: its ``ValueError``
    ("VLEN strings do not support embedded NULLs"), after every video had been written. An
    empty or ``None`` id was stored as '' or 'None'."""
    path = tmp_path / "s.h5"
    with pytest.raises(DataFormatError, match=f"{what} must be a non-empty text") as info, \
            StoreWriter(path, D) as w:
        call(w)
    assert info.value.reason == "bad_id" and not path.exists()
    with StoreWriter(path, D) as w:  # ints and NumPy strings are ids, stored as text
        w.add_video(np.str_("v"), feats(4, 0), 1.0)
        w.add_user(7, "v", [(0.0, 1.0)])
        w.set_split("test", [7])
    assert FeatureStore(path).users() == ["7"]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"compression": "x"}, ConfigError, "compression must be None, 'gzip' or 'lzf'"),  # h5py's
    ({"chunk_steps": 0}, ConfigError, "chunk_steps must be an int >= 1"),  # at the first video
    ({"source": 3}, ConfigError, "source must be a text"),
    ({"generator_config": {"a": object()}}, ConfigError, "generator_config must be plain JSON"),
    ({"generator_config": {"a": float("nan")}}, ConfigError, "without NaN"),  # unreadable after
    ({"features_info": {"rate": "2"}}, ConfigError, "features_info is malformed"),  # ditto
])
def test_writer_arguments_are_checked_before_the_temp_file_exists(tmp_path: Path, kwargs, error,
                                                                  match):
    """A generator_config JSON cannot hold failed after the temp file was made (left behind);
    the others were h5py's ValueError at the first video, or a store the reader refuses."""
    with pytest.raises(error, match=match):
        StoreWriter(tmp_path / "s.h5", D, **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("segments, history", [
    ([(0.0, 1.0, 2.0)], []),  # a reshape ValueError
    ([0.0, 1.0, 2.0, 3.0], []),  # silently read as two pairs
    ("ab", []),
    ([(0.0, 1.0)], [("b", 0.0)]),  # an unpacking ValueError
])
def test_malformed_segments_are_named_when_the_user_is_added(tmp_path: Path, segments, history):
    with pytest.raises(DataFormatError, match="target_segments must be .start, end. pairs") as info, \
            StoreWriter(tmp_path / "s.h5", D) as w:
        w.add_video("a", feats(4, 0), 1.0)
        w.add_user("u", "a", segments, history)
    assert info.value.user == "u" and info.value.reason == "malformed_segment"


def _edit(path: Path, fn) -> None:
    with h5py.File(path, "r+") as f:
        fn(f)


def _replace_video(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f["videos"][name]
    f["videos"].create_dataset(name, data=data)


# (edit of the file, reason tag, users a lenient open skips)
USER_CASES = {
    "nan": (lambda f: _replace_video(f, "b", np.full((20, D), np.nan, np.float32)),
            "nan_features", {"u1", "u2"}),
    "inf": (lambda f: _replace_video(f, "c", np.full((10, D), np.inf, np.float32)),
            "nan_features", {"u1", "u3"}),
    "dim": (lambda f: _replace_video(f, "c", np.zeros((10, D + 2), np.float32)),
            "feature_dim", {"u1", "u3"}),
    "outside": (lambda f: f["users/history_segments"].__setitem__(2, [1.0, 30.0]),
                "segment_outside_video", {"u2"}),
    "negative_start": (lambda f: f["users/target_segments"].__setitem__(3, [-2.0, 1.0]),
                       "segment_outside_video", {"u3"}),
    "zero_segment": (lambda f: f["users/target_segments"].__setitem__(0, [2.0, 2.0]),
                     "nonpositive_duration", {"u1"}),
    "video_duration": (lambda f: f["video_index/duration"].__setitem__(1, -1.0),
                       "nonpositive_duration", {"u1", "u2"}),
    "missing_video": (lambda f: f["users/history_video"].__setitem__(0, "zzz"),
                      "missing_video", {"u1"}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(USER_CASES))
def test_each_bad_user_case_strict_raises_lenient_reports(store_path: Path, case: str, caplog):
    edit, reason, skipped = USER_CASES[case]
    _edit(store_path, edit)
    with pytest.raises(DataFormatError) as info:
        FeatureStore(store_path)
    assert info.value.reason == reason
    assert info.value.path == str(store_path) and info.value.user in skipped
    assert str(store_path) in str(info.value)
    with caplog.at_level(logging.WARNING, logger="highlightzoo.data"):
        store = FeatureStore(store_path, strict=False)
    assert set(store.report.skipped) == skipped
    assert store.report.counts == {reason: len(skipped)}
    assert set(store.users()) == {"u1", "u2", "u3"} - skipped
    assert "skipped" in caplog.text  # a lenient open is never silent
    with pytest.raises(DataFormatError, match="skipped on open"):
        store.user(sorted(skipped)[0])


def test_user_without_target_is_an_error(tmp_path: Path):
    path = tmp_path / "s.h5"
    write_store(path, target_c=[])
    with pytest.raises(DataFormatError) as info:
        FeatureStore(path)
    assert (info.value.reason, info.value.user) == ("no_target", "u3")
    assert FeatureStore(path, strict=False).report.counts == {"no_target": 1}


FILE_CASES = {
    "version": (lambda f: f.attrs.__setitem__("format_version", FORMAT_VERSION + 1),
                "format_version"),
    "not_a_store": (lambda f: f.attrs.__delitem__("format"), "format_version"),
    "missing_group": (lambda f: f.__delitem__("splits"), "missing_group"),
    "missing_table": (lambda f: f["users"].__delitem__("target_ptr"), "missing_group"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FILE_CASES))
@pytest.mark.parametrize("strict", [True, False])
def test_file_level_problems_raise_in_both_modes(store_path: Path, case: str, strict: bool):
    edit, reason = FILE_CASES[case]
    _edit(store_path, edit)
    with pytest.raises(DataFormatError) as info:
        FeatureStore(store_path, strict=strict)
    assert info.value.reason == reason


def _set_attr(name: str, value: object):
    return lambda f: f.attrs.__setitem__(name, value)


# (edit, what the message names): the header's values of the wrong kind were Python's errors
# wrapped as "malformed feature store (ValueError: invalid literal for int() ...)"
HEADER_CASES = {
    "version_text": (_set_attr("format_version", "x"), "format_version attribute 'x' is not an int"),
    "version_nan": (_set_attr("format_version", np.nan), "format_version attribute .*nan.* not an int"),
    "version_bool": (_set_attr("format_version", True), "format_version attribute .*True.* not an int"),
    "version_array": (_set_attr("format_version", np.array([1, 2])), "format_version attribute array"),
    "dim_text": (_set_attr("feature_dim", "16"), "feature_dim attribute '16' is not an int >= 1"),
    "dim_float": (_set_attr("feature_dim", 4.0), "feature_dim attribute .*4.0.* is not an int >= 1"),
    "format_array": (_set_attr("format", np.array([1, 2])), "not a highlightzoo feature store"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_a_header_value_of_the_wrong_kind_is_named_on_open_and_by_the_fingerprint(
        store_path: Path, case: str):
    edit, message = HEADER_CASES[case]
    _edit(store_path, edit)
    for read in (FeatureStore, store_fingerprint):  # train/evaluate read the fingerprint first
        with pytest.raises(DataFormatError, match=message) as info:
            read(store_path)
        assert "malformed feature store" not in str(info.value)


def test_an_integer_table_of_floats_and_a_segment_without_a_finite_end_say_so(store_path: Path):
    _edit(store_path, lambda f: f["users/target_segments"].__setitem__(0, [1.0, np.inf]))
    with pytest.raises(DataFormatError, match=r"segment \[1.0, inf\] s has no finite end"):
        FeatureStore(store_path)
    _edit(store_path, lambda f: (f["video_index"].__delitem__("n_steps"),
                                 f["video_index"].create_dataset("n_steps", data=np.ones(3) / 2)))
    with pytest.raises(DataFormatError, match="n_steps has dtype float64, expected integers"):
        FeatureStore(store_path)


@pytest.mark.parametrize("kwargs", [{"strict": "no"}, {"strict": 0}, {"check_features": "false"}])
def test_store_switches_must_be_bools(store_path: Path, kwargs):
    """``strict="no"`` is truthy: the open was strict while the user had asked for lenient."""
    with pytest.raises(ConfigError, match=f"{next(iter(kwargs))} must be true or false"):
        FeatureStore(store_path, **kwargs)
    assert FeatureStore(store_path, strict=np.bool_(False)).strict is False


def test_not_hdf5_and_unknown_ids(tmp_path: Path, store_path: Path):
    bad = tmp_path / "x.h5"
    bad.write_text("hello")
    with pytest.raises(DataFormatError) as info:
        FeatureStore(bad)
    assert info.value.reason == "not_hdf5"
    features = tmp_path / "features.h5"  # what `highlightzoo features extract` writes
    with h5py.File(features, "w") as f:
        f.attrs["format"] = FEATURES_FORMAT
    for read in (FeatureStore, store_fingerprint):
        with pytest.raises(DataFormatError, match="a features file of .*data import-phdgifs"):
            read(features)
    missing = tmp_path / "none.h5"
    for read in (FeatureStore, store_fingerprint):
        with pytest.raises(DataFormatError, match="no such feature store") as info:
            read(missing)
        assert info.value.reason == "missing" and info.value.path == str(missing)
    store = FeatureStore(store_path)
    with pytest.raises(DataFormatError, match="no_split|no split"):
        store.users("val")
    with pytest.raises(DataFormatError) as info:
        store.video_features("nope")
    assert info.value.video == "nope"


def test_nan_scan_reads_in_chunks(store_path: Path, monkeypatch):
    import highlightzoo.data.store_reader as store_mod

    monkeypatch.setattr(store_mod, "SCAN_CHUNK_STEPS", 7)
    x = np.zeros((40, D), np.float32)
    x[33, 2] = np.nan  # only in the 5th chunk
    _edit(store_path, lambda f: _replace_video(f, "a%2F1", x))
    with pytest.raises(DataFormatError) as info:
        FeatureStore(store_path)
    assert (info.value.reason, info.value.video) == ("nan_features", "a/1")
    FeatureStore(store_path, strict=False, check_features=False)  # trusted: no scan


def test_store_pickles_without_its_handle(store_path: Path):
    import pickle

    store = FeatureStore(store_path)
    store.video_features("b")  # opens a handle
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone.video_features("b"), store.video_features("b"))


def _age(path: Path, seconds: float = 60.0) -> None:
    """Set the file's modification time ``seconds`` into the past (a store written earlier)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def test_an_unchanged_store_is_validated_once_per_process(store_path: Path, monkeypatch):
    store_reader.forget_validated_stores()
    _age(store_path)
    calls = []
    original = FeatureStore._load_and_validate
    monkeypatch.setattr(FeatureStore, "_load_and_validate",
                        lambda self, check: (calls.append(check), original(self, check)))
    first, second = FeatureStore(store_path), FeatureStore(store_path)
    assert calls == [True]  # the second open took the first one's validation
    assert second.users() == first.users() and second.fingerprint() == first.fingerprint()
    assert second.user("u1") == first.user("u1") and second.feature_dim == first.feature_dim
    np.testing.assert_array_equal(second.video_features("b"), first.video_features("b"))
    second._users.clear()  # instances do not share tables
    assert first.users() == ["u1", "u2", "u3"]
    FeatureStore(store_path, strict=False)  # other options: validated on their own
    assert calls == [True, True]
    FeatureStore(store_path, check_features=False)  # a full validation covers the lighter one
    assert calls == [True, True]
    store_reader.forget_validated_stores()
    FeatureStore(store_path, check_features=False)
    FeatureStore(store_path)  # the lighter one does not cover the NaN scan
    assert calls == [True, True, False, True]


def test_a_changed_or_just_written_store_is_validated_again(store_path: Path):
    store_reader.forget_validated_stores()
    FeatureStore(store_path)  # just written: not remembered (a change could keep size and time)
    _edit(store_path, lambda f: _replace_video(f, "b", np.full((20, D), np.nan, np.float32)))
    with pytest.raises(DataFormatError, match="b"):
        FeatureStore(store_path)
    other = store_path.parent / "other.h5"
    write_store(other)
    _age(other)
    assert FeatureStore(other).users() == ["u1", "u2", "u3"]  # remembered now
    _edit(other, lambda f: _replace_video(f, "c", np.full((10, D), np.inf, np.float32)))
    _age(other, 30.0)  # even an old modification time: the identity (time, size) changed
    with pytest.raises(DataFormatError, match="c"):
        FeatureStore(other)


def test_the_lenient_report_of_a_remembered_store_is_a_copy(store_path: Path, caplog):
    store_reader.forget_validated_stores()
    _edit(store_path, lambda f: _replace_video(f, "c", np.full((10, D), np.inf, np.float32)))
    _age(store_path)
    first = FeatureStore(store_path, strict=False)
    with caplog.at_level(logging.WARNING):
        second = FeatureStore(store_path, strict=False)
    assert second.report.skipped == first.report.skipped == {"u1": "nan_features", "u3": "nan_features"}
    assert "skipped 2 of 3 users" in caplog.text  # said again on every open
    second.report.skipped.clear()
    assert first.report.skipped


def test_an_id_of_a_kind_no_store_key_has_is_no_such_split_user_or_video(store_path: Path):
    """A list as a split, user or video id was a ``TypeError: unhashable type: 'list'``."""
    store = FeatureStore(store_path)
    for call, match in [(lambda: store.users(["train"]), "no split"),
                        (lambda: store.user(["u1"]), "no such user"),
                        (lambda: store.video_rate(["a/1"]), "no such video")]:
        with pytest.raises(DataFormatError, match=match):
            call()
