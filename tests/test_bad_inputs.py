"""Bad input, interrupted writes and untrusted files: a typed error or a counted skip, never a
traceback, never a silent change (docs/reliability.md).

One test per numbered case of issue 12 (``test_case_<n>_...``), then property tests
(hypothesis) over random malformed CSV rows, random store corruptions and random
``Detector.predict`` inputs.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from training_support import FEATURE_DIM, write_tiny_store

import highlightzoo as hz
from highlightzoo.cli import main
from highlightzoo.data.phdgifs import import_phdgifs
from highlightzoo.data.store import FeatureStore, StoreWriter, store_fingerprint
from highlightzoo.errors import (
    ConfigError,
    DataFormatError,
    HighlightZooError,
    RunFolderError,
    WriteError,
)
from highlightzoo.inference import Detector
from highlightzoo.io import temp_files_of
from highlightzoo.models import registry
from highlightzoo.training.checkpoint import save_checkpoint
from highlightzoo.training.config import TrainConfig

HEADER = ["youtubeId", "start", "duration", "user_id", "video_duration", "is_last"]


def cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Run the command line; return (exit code, stdout, stderr). Never a traceback."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def fails(capsys, argv: list[str], *needles: str) -> str:
    """Exit 2 with one ``highlightzoo: error:`` line that contains every needle."""
    code, _, err = cli(capsys, argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("highlightzoo: error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def make_run(run: Path, store: Path, model: str = "prnet", *, data: str | None = None) -> Path:
    """A run folder as the trainer leaves it (config.json + checkpoints/best.pt), untrained weights."""
    torch.manual_seed(0)
    net = hz.create_model(model, feature_dim=FEATURE_DIM)
    config = TrainConfig(model=model, data=data or str(store.resolve()), eval_batch_size=4).replace(
        data_fingerprint=store_fingerprint(store), out=str(run)
    )
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    payload = {
        "model_state": net.state_dict(), "build_args": dict(net.build_args),
        "model_card": net.card.to_dict(), "config": config.to_dict(),
        "history_cap": config.resolved_history_cap(net.card.history_cap),
    }  # fmt: skip
    save_checkpoint(run / "checkpoints" / "best.pt", payload)
    return run


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Two different stores of the same shape, each as ``<folder>/tiny.h5`` (issue 12, cases 1-2)."""
    root = tmp_path_factory.mktemp("worlds")
    a, b = root / "a", root / "b"
    a.mkdir(), b.mkdir()
    store_a = write_tiny_store(a / "tiny.h5", seed=0)
    write_tiny_store(b / "tiny.h5", seed=1)
    return {"root": root, "a": a, "b": b, "store": store_a}


# --------------------------------------------------------------------------- case 1


def test_case_1_resume_reads_the_recorded_store_and_refuses_a_changed_one(
    world, tmp_path, monkeypatch, capsys
):
    from highlightzoo.training import train

    work = tmp_path / "work"
    (work / "a").mkdir(parents=True)
    (work / "b").mkdir()
    shutil.copy(world["a"] / "tiny.h5", work / "tiny.h5")  # "../tiny.h5" seen from work/a
    monkeypatch.chdir(work / "a")
    config = TrainConfig(model="prnet", data="../tiny.h5", epochs=2, batch_size=4, out="R")
    train(config, quiet=True, stop_after=1)
    run = (work / "a" / "R").resolve()
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"] == str(work / "tiny.h5")  # absolute, not "../tiny.h5"
    assert saved["data_fingerprint"] == store_fingerprint(work / "tiny.h5")

    # from another folder whose ../tiny.h5 is another world: the recorded store is used
    other = tmp_path / "elsewhere" / "x"
    other.mkdir(parents=True)
    shutil.copy(world["b"] / "tiny.h5", other.parent / "tiny.h5")
    monkeypatch.chdir(other)
    # the recorded store itself replaced by another world: refused, nothing trained
    original = (work / "tiny.h5").read_bytes()
    shutil.copy(world["b"] / "tiny.h5", work / "tiny.h5")
    last = (run / "checkpoints" / "last.pt").read_bytes()
    fails(capsys, ["train", "--resume", run, "--quiet"], "store", "changed", "--data")
    assert (run / "checkpoints" / "last.pt").read_bytes() == last
    # put it back: the resume from the other folder trains on the recorded store
    (work / "tiny.h5").write_bytes(original)
    code, out, _ = cli(capsys, ["train", "--resume", run, "--quiet"])
    assert code == 0, out
    results = json.loads((run / "results.json").read_text())
    assert results["config"]["data"] == str(work / "tiny.h5")


def test_case_1_explicit_data_on_resume_is_used_and_said(world, tmp_path, capsys):
    from highlightzoo.training import train

    config = TrainConfig(
        model="prnet", data=str(world["store"]), epochs=2, batch_size=4, out=str(tmp_path / "R")
    )
    train(config, quiet=True, stop_after=1)
    other = world["b"] / "tiny.h5"
    code, _, _ = cli(capsys, ["train", "--resume", tmp_path / "R", "--data", other, "--quiet"])
    assert code == 0
    saved = json.loads((tmp_path / "R" / "config.json").read_text())
    assert saved["data"] == str(other) and saved["data_fingerprint"] == store_fingerprint(other)
    log = (tmp_path / "R" / "train.log").read_text()
    assert "note:" in log and str(other) in log and "as --data asks" in log


# --------------------------------------------------------------------------- cases 2, 3, 8


def test_case_2_evaluate_without_data_reads_the_recorded_store_from_any_folder(
    world, tmp_path, monkeypatch, capsys
):
    run = make_run(tmp_path / "R", world["store"])
    code, here, _ = cli(capsys, ["evaluate", run, "--json"])
    assert code == 0
    monkeypatch.chdir(world["b"])  # its ./tiny.h5 is another world
    code, there, _ = cli(capsys, ["evaluate", run.resolve(), "--json"])
    assert code == 0 and json.loads(there)["map"] == json.loads(here)["map"]


def test_case_2_a_changed_store_is_refused_unless_data_is_given(world, tmp_path, capsys, caplog):
    store = tmp_path / "s.h5"
    shutil.copy(world["store"], store)
    run = make_run(tmp_path / "R", store)
    shutil.copy(world["b"] / "tiny.h5", store)  # same path, other content
    fails(capsys, ["evaluate", run], "changed since it was trained", "--data", "index_sha256")
    with caplog.at_level("WARNING", logger="highlightzoo.evaluation"):  # stderr on the command line
        code, out, _ = cli(capsys, ["evaluate", run, "--data", store])
    assert code == 0 and "mAP" in out
    assert "note:" in caplog.text and "as --data asks" in caplog.text  # said, not silent


def test_case_2_a_relative_store_without_fingerprint_is_refused(world, tmp_path, capsys):
    run = make_run(tmp_path / "R", world["store"], data="tiny.h5")
    config = json.loads((run / "config.json").read_text())
    payload = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    payload["config"] = {**config, "data_fingerprint": None}
    torch.save(payload, run / "checkpoints" / "best.pt")
    fails(capsys, ["evaluate", run], "relative store path 'tiny.h5'", "--data")


@pytest.mark.parametrize("size", ["-1", "0", "abc"])
def test_case_3_evaluate_batch_size_must_be_positive(world, tmp_path, capsys, size):
    run = make_run(tmp_path / "R", world["store"])
    if size == "abc":  # argparse's own one-line error (exit 2)
        with pytest.raises(SystemExit) as info:
            main(["evaluate", str(run), "--batch-size", size])
        assert info.value.code == 2
        return
    fails(capsys, ["evaluate", run, "--batch-size", size], "--batch-size", size)


def test_case_8_another_models_checkpoint_in_a_run_is_refused(world, tmp_path, capsys):
    run = make_run(tmp_path / "R", world["store"], "prnet")
    other = make_run(tmp_path / "V", world["store"], "video2gif")
    shutil.copy(other / "checkpoints" / "best.pt", run / "checkpoints" / "best.pt")
    fails(capsys, ["evaluate", run], "holds model 'video2gif'", "trains 'prnet'")
    fails(capsys, ["evaluate", run / "checkpoints" / "best.pt"], "holds model 'video2gif'")
    video = tmp_path / "v.npy"
    np.save(video, np.ones((20, FEATURE_DIM), np.float32))
    fails(
        capsys,
        ["predict", run, "--video-features", video, "--rate", "2"],
        "holds model 'video2gif'",
    )
    code, out, _ = cli(capsys, ["evaluate", other])  # the output names the model it evaluated
    assert code == 0 and out.startswith("video2gif (")


def test_case_8_build_arguments_are_checked_too(world, tmp_path, capsys):
    run = make_run(tmp_path / "R", world["store"])
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "model_overrides": {"width": 16}}))
    fails(capsys, ["evaluate", run], "other arguments", "width=None (run: 16)")


@pytest.mark.parametrize("value", ["x", 3, 1.5, True, ["width"]])
def test_case_8_a_damaged_run_config_is_refused_not_a_traceback(world, tmp_path, capsys, value):
    """``model_overrides`` that is not an object, or a config.json that is not one, is a one-line error."""
    run = make_run(tmp_path / "R", world["store"])
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "model_overrides": value}))
    fails(capsys, ["evaluate", run], "model_overrides must be an object", "config.json")
    (run / "config.json").write_text(json.dumps([config]))
    fails(capsys, ["evaluate", run], "config.json' is damaged: the file must be an object")


# --------------------------------------------------------------------------- case 4


def test_case_4_a_duplicated_user_id_is_refused_or_skipped_never_replaced(world, tmp_path, capsys):
    store = tmp_path / "dup.h5"
    shutil.copy(world["store"], store)
    with h5py.File(store, "r+") as f:
        ids = [s.decode() for s in f["users/ids"][()]]
        f["users/ids"][1] = ids[0].encode()
    with pytest.raises(DataFormatError) as info:
        FeatureStore(store)
    assert (info.value.reason, info.value.user) == ("duplicate_user", ids[0])
    lenient = FeatureStore(store, strict=False)
    # the record overwritten is gone from users/ids, so its split entry names an unknown user
    assert lenient.report.counts == {"duplicate_user": 1, "unknown_user": 1}
    assert ids[0] not in lenient.users() and ids[1] not in lenient.users()
    fails(capsys, ["data", "info", store], "listed 2 times", ids[0])


def test_case_4_duplicates_and_leaks_in_splits(world, tmp_path):
    store = tmp_path / "leak.h5"
    shutil.copy(world["store"], store)
    with h5py.File(store, "r+") as f:
        test_user = f["splits/test"][0]
        train = list(f["splits/train"][()])
        del f["splits/train"]
        f["splits"].create_dataset("train", data=[*train, test_user], dtype=h5py.string_dtype())
    with pytest.raises(DataFormatError) as info:
        FeatureStore(store)
    assert info.value.reason == "split_overlap"


# --------------------------------------------------------------------------- cases 5, 6, 7


def write_csv(path: Path, rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def features_folder(path: Path, n_videos: int = 20, dim: int = 4, steps: int = 40) -> Path:
    path.mkdir()
    rng = np.random.default_rng(0)
    for v in range(n_videos):
        np.save(path / f"v{v:02d}.npy", rng.random((steps, dim), dtype=np.float32))
    return path


def good_rows(n_users: int = 20) -> list[list[object]]:
    """User k: target v{k} (2-4 s), history v{k+1} (1-3 s)."""
    rows = []
    for k in range(n_users):
        rows.append([f"v{(k + 1) % n_users:02d}", 1.0, 2.0, f"u{k}", -1, "False"])
        rows.append([f"v{k:02d}", 2.0, 2.0, f"u{k}", -1, "True"])
    return rows


def test_case_5_an_import_that_keeps_nobody_writes_nothing(tmp_path, capsys):
    feats = features_folder(tmp_path / "f")
    out = tmp_path / "store.h5"
    assert cli(capsys, ["data", "import-phdgifs", write_csv(tmp_path / "good.csv", good_rows()), "--features",
                 feats, "--rate", "2", "--out", out, "--quiet"])[0] == 0  # fmt: skip
    before, mode = out.read_bytes(), out.stat().st_mode
    bad = write_csv(
        tmp_path / "bad.csv", [[f"v{k:02d}", 500.0, 2.0, f"u{k}", -1, "True"] for k in range(5)]
    )
    fails(capsys, ["data", "import-phdgifs", bad, "--features", feats, "--rate", "2", "--out", out,
                   "--quiet"], "would keep no user", "untouched")  # fmt: skip
    junk = write_csv(tmp_path / "junk.csv", [["v00", "x", "y", "u0", "z", "maybe"]])
    fails(capsys, ["data", "import-phdgifs", junk, "--features", feats, "--rate", "2", "--out", out,
                   "--quiet", "--lenient"], "would keep no user")  # fmt: skip
    fails(capsys, ["data", "replay", bad.with_name("none.csv"), "--out", out], "cannot read CSV")
    zero = write_csv(tmp_path / "zero.csv", [["v00", 5.0, 0.0, "u0", 60, "True"]])
    fails(capsys, ["data", "replay", zero, "--out", out, "--quiet"], "replay would keep no user")
    assert out.read_bytes() == before and out.stat().st_mode == mode
    assert temp_files_of(out) == []


def test_case_6_one_odd_feature_file_does_not_decide_the_feature_size(tmp_path, capsys):
    feats = features_folder(tmp_path / "f")
    np.save(feats / "v00.npy", np.ones((40, 5), np.float32))  # the first video read: 5-d, not 4-d
    out = tmp_path / "s.h5"
    code, text, _ = cli(capsys, ["data", "import-phdgifs", write_csv(tmp_path / "a.csv", good_rows()),
                                 "--features", feats, "--rate", "2", "--out", out, "--quiet"])  # fmt: skip
    assert code == 0 and "dropped video 'v00': feature_dim" in text
    report = import_phdgifs(tmp_path / "a.csv", feats, 2.0, tmp_path / "t.h5", progress=False)
    assert report.feature_dim == 4 and report.videos_lost == {"feature_dim": 1}
    assert report.users_kept == 19  # u0 lost its target; u19 only a history segment
    # a tie between sizes is an error, not a coin toss
    for v in range(10):
        np.save(feats / f"v{v:02d}.npy", np.ones((40, 5), np.float32))
    with pytest.raises(DataFormatError, match="disagree on the feature size"):
        import_phdgifs(tmp_path / "a.csv", feats, 2.0, tmp_path / "u.h5", progress=False)


@pytest.mark.parametrize("rate", ["0", "-1", "nan", "inf"])
def test_case_7_import_rate_must_be_positive_and_finite(tmp_path, capsys, rate):
    feats = features_folder(tmp_path / "f")
    rows = [[r[0], r[1], r[2], r[3], -1, r[5]] for r in good_rows()]  # unknown durations
    out = tmp_path / "s.h5"
    fails(capsys, ["data", "import-phdgifs", write_csv(tmp_path / "a.csv", rows), "--features", feats,
                   "--rate", rate, "--out", out, "--quiet"], "--rate")  # fmt: skip
    assert not out.exists() and temp_files_of(out) == []


def test_case_7_the_writer_never_writes_a_store_the_reader_rejects(tmp_path):
    with StoreWriter(tmp_path / "s.h5", 4) as w:
        for rate in (0.0, -1.0, float("nan"), True):
            with pytest.raises(DataFormatError, match="rate"):
                w.add_video("v", np.ones((3, 4)), rate)
        with pytest.raises(DataFormatError, match="duration"):
            w.add_video("v", np.ones((3, 4)), 2.0, duration=-1.0)


# --------------------------------------------------------------------------- case 9


def test_case_9_unwritable_output_is_a_typed_error(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fails(capsys, ["data", "synth", "--out", blocker / "sub" / "t.h5", "--quiet"], "cannot write")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # a read-only folder, even when run as root
    fails(capsys, ["data", "synth", "--out", tmp_path / "t.h5", "--quiet"], "Permission denied")
    with pytest.raises(WriteError):
        StoreWriter(tmp_path / "t.h5", 4)


def test_an_output_file_that_is_a_folder_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    """``--out`` naming a folder failed only at the final rename, after the whole synthesis or
    extraction, with the temp file's name in the message."""
    import highlightzoo.data.synthetic as synthetic

    def no_work(*args, **kwargs):
        raise AssertionError("the world was built before --out was checked")

    monkeypatch.setattr(synthetic, "_user_plan", no_work)
    fails(capsys, ["data", "synth", "--preset", "tiny", "--out", tmp_path, "--quiet"],
          "it is a folder; name a file in it")
    assert [p.name for p in tmp_path.iterdir()] == []  # no temp file left either


BIG = str(10**20)


@pytest.mark.parametrize("argv", [
    ["train", "--model", "prnet", "--data", "S", "--seed", BIG],  # torch.manual_seed overflowed
    ["train", "--model", "prnet", "--data", "S", "--batch-size", BIG],  # itertools.islice did
    ["bench", "tables", "--out", "O", "--jobs", BIG],  # the process pool did
    ["bench", "tables", "--out", "O", "--seeds", BIG],
    ["features", "extract", "v.mp4", "--backbone", "resnet18", "--crop", BIG, "--out", "O"],
    ["evaluate", "R", "--batch-size", "-" + BIG],
])  # fmt: skip
def test_an_int_option_too_large_for_int64_is_refused_by_the_parser(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert f"{BIG} is too large (the limit is 2**63)" in capsys.readouterr().err


def test_a_config_int_too_large_for_int64_is_a_config_error():
    for field in ("seed", "batch_size", "max_steps"):
        with pytest.raises(ConfigError, match=f"{field} must be below 2\\*\\*63"):
            TrainConfig(model="prnet", data="s.h5", **{field: 2**63})
    assert TrainConfig(model="prnet", data="s.h5", seed=2**63 - 1).seed == 2**63 - 1


@pytest.mark.parametrize("flags, needle", [
    (["--set", "width=abc"], "width"),
    (["--set", "nonexistent_kwarg=1"], "nonexistent_kwarg"),
    (["--weight-decay", "nan"], "--weight-decay"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "nan"], "lr"),
])  # fmt: skip
def test_case_9_bad_training_flags_fail_before_any_work(world, tmp_path, capsys, flags, needle):
    out = tmp_path / "R"
    fails(capsys, ["train", "--model", "prnet", "--data", world["store"], "--out", out, "--quiet",
                   "--epochs", "1", *flags], needle)  # fmt: skip
    assert not out.exists()  # no run folder left behind


@pytest.mark.parametrize("content", ["corrupt", "object", "strings"])
def test_case_9_unreadable_feature_files_are_named_or_counted(tmp_path, capsys, content):
    feats = features_folder(tmp_path / "f")
    bad = feats / "v03.npy"
    if content == "corrupt":
        bad.write_bytes(b"\x93NUMPY garbage")
    elif content == "object":
        np.save(bad, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    else:
        np.save(bad, np.array([["a", "b", "c", "d"]] * 40))
    csv_path = write_csv(tmp_path / "a.csv", good_rows())
    fails(capsys, ["data", "import-phdgifs", csv_path, "--features", feats, "--rate", "2",
                   "--out", tmp_path / "s.h5", "--quiet"], "v03.npy", "video='v03'")  # fmt: skip
    report = import_phdgifs(csv_path, feats, 2.0, tmp_path / "s.h5", strict=False, progress=False)
    assert ("v03", "unreadable_features") in report.dropped_videos
    assert report.videos_lost["unreadable_features"] == 1


def _damaged_array_file(path: Path, how: str) -> Path:
    """A .npy/.npz as a crash or a full disk leaves it: cut in half, or empty."""
    arrays = {"a": np.ones((3, FEATURE_DIM), np.float32), "b": np.ones((2, FEATURE_DIM), np.float32)}
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        np.save(path, np.ones((20, FEATURE_DIM), np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "half" else b"")
    return path


@pytest.mark.parametrize("how", ["half", "empty"])
def test_a_truncated_or_empty_array_file_is_named_never_a_traceback(world, tmp_path, capsys, how):
    """``predict`` ended in zipfile's BadZipFile or an EOFError traceback on these."""
    run = make_run(tmp_path / "R", world["store"])
    video = tmp_path / "v.npy"
    np.save(video, np.ones((20, FEATURE_DIM), np.float32))
    for name, argv in [
        ("h.npz", ["--video-features", video, "--history", "H"]),
        ("v.npz", ["--video-features", "H"]),  # an .npz given as the video's .npy
        ("w.npy", ["--video-features", "H"]),
        ("x.npy", ["--video-features", video, "--history", "H"]),
    ]:
        bad = _damaged_array_file(tmp_path / name, how)
        argv = [bad if a == "H" else a for a in argv]
        fails(capsys, ["predict", run, *argv, "--rate", "2"], "cannot read", f"file='{bad}'")
    feats = features_folder(tmp_path / "f")  # the import reads the same files the same way
    (feats / "v03.npy").unlink()
    _damaged_array_file(feats / "v03.npz", how)
    fails(capsys, ["data", "import-phdgifs", write_csv(tmp_path / "a.csv", good_rows()),
                   "--features", feats, "--rate", "2", "--out", tmp_path / "s.h5", "--quiet"],
          "cannot read features", "v03.npz", "video='v03'")


def test_a_npy_given_as_the_history_npz_is_named(world, tmp_path, capsys):
    run = make_run(tmp_path / "R", world["store"])
    video = tmp_path / "v.npy"
    np.save(video, np.ones((20, FEATURE_DIM), np.float32))
    fails(capsys, ["predict", run, "--video-features", video, "--history", video, "--rate", "2"],
          "expected a .npz of history segments, got one array")


@functools.lru_cache(maxsize=1)
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector.from_model("prnet", feature_dim=4, detector_args={"window_steps": None})


@pytest.mark.parametrize("video", [
    [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]],  # ragged
    [["a", "b", "c", "d"]],  # strings
    np.array([[object()] * 4], dtype=object),
    "not an array",
    np.ones((3, 4), dtype=complex),
])  # fmt: skip
def test_case_9_predict_refuses_non_numeric_video_features(video):
    with pytest.raises(DataFormatError):
        detector().predict(video, [], 2.0)


def test_case_9_predict_refuses_non_numeric_history():
    with pytest.raises(DataFormatError, match="history segment 1"):
        detector().predict(np.ones((5, 4)), [np.ones((2, 4)), [[1, 2], [3]]], 2.0)


# --------------------------------------------------------------------------- case 10


def test_case_10_training_on_an_empty_store_is_a_clear_error(tmp_path, capsys):
    store = tmp_path / "empty.h5"
    with StoreWriter(store, 4) as w:
        for split in ("train", "val", "test"):
            w.set_split(split, [])
    line = fails(
        capsys, ["train", "--model", "prnet", "--data", store, "--out", tmp_path / "R", "--quiet"]
    )
    assert "FeatureStore object" not in line and "train" in line


# --------------------------------------------------------------------------- case 11


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_case_11_written_files_get_the_umask_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = tmp_path / "s.h5"
        path.write_bytes(b"")
        os.chmod(path, 0o600)
        write_tiny_store(path)  # overwrites a 0600 file
        from highlightzoo.io import atomic_write_text

        atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask


KILLED_WRITER = """
import os, signal, sys
import numpy as np
from highlightzoo.data.store import StoreWriter
w = StoreWriter(sys.argv[1], 4)
w.add_video("v", np.ones((1000, 4), np.float32), 2.0)
w._f.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_case_11_a_killed_write_is_named_by_info_and_cleaned_by_the_next_write(tmp_path, capsys):
    out = tmp_path / "t.h5"
    write_tiny_store(out)
    before = out.read_bytes()
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out)], capture_output=True)
    assert proc.returncode == -9
    [left] = temp_files_of(out)
    assert out.read_bytes() == before  # the old store is intact
    code, text, _ = cli(capsys, ["data", "info", out])
    assert code == 0 and left.name in text and "interrupted write" in text
    write_tiny_store(out, seed=3)  # the next write to the same target removes it
    assert temp_files_of(out) == []


def test_case_11_a_temp_file_of_a_live_writer_is_kept(tmp_path):
    out = tmp_path / "t.h5"
    with StoreWriter(out, 4) as first:  # still writing: another write must not remove its file
        first.add_video("v", np.ones((3, 4)), 2.0)
        with StoreWriter(out, 4) as second:
            second.add_video("w", np.ones((3, 4)), 2.0)
            assert len(temp_files_of(out)) == 2
        assert first._tmp.exists()


def test_a_folder_in_use_is_refused_and_a_killed_holders_lock_taken_over(tmp_path):
    """Two processes training or benchmarking into one folder rewrote each other's files."""
    from highlightzoo.io import HOST_TAG, LOCK_FILE, folder_lock

    lock = tmp_path / LOCK_FILE
    with folder_lock(tmp_path, "train"):
        assert lock.read_text().split() == [HOST_TAG, str(os.getpid()), "train"]
        with pytest.raises(RunFolderError, match=f"in use by process {os.getpid()} on "
                                                 f"{HOST_TAG} \\(train\\)"), folder_lock(tmp_path, "x"):
            pass
        assert lock.exists()  # the refused one left the holder's lock alone
    assert not lock.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    lock.write_text(f"{HOST_TAG} {int(dead.stdout)} train\n")  # left by a killed process
    with folder_lock(tmp_path, "bench tables"):
        assert lock.read_text().split()[1] == str(os.getpid())
    lock.write_text("other-host 12345 train\n")  # cannot be checked from here: named, kept
    with pytest.raises(RunFolderError, match="process 12345 on other-host .* delete"), \
            folder_lock(tmp_path, "train"):
        pass
    assert lock.exists()


def test_a_resume_into_a_folder_in_use_is_refused_before_writing(world, tmp_path):
    from highlightzoo.io import folder_lock
    from highlightzoo.training import train

    run = tmp_path / "run"
    config = TrainConfig(model="video2gif", data=str(world["store"]), out=str(run), epochs=3,
                         batch_size=3, eval_every=2)
    train(config, quiet=True, stop_after=1)
    before = (run / "config.json").read_bytes()
    with folder_lock(run, "train"):  # as a first resume would hold it
        with pytest.raises(RunFolderError, match="is in use by process"):
            train(None, quiet=True, resume=run, overrides={"max_steps": 40})
    assert (run / "config.json").read_bytes() == before  # not rewritten with the new cap
    assert train(None, quiet=True, resume=run).selection.stop_reason in ("patience", "cap")
    assert not list(run.glob(".highlightzoo.lock"))


def test_case_11_smaller_ones():
    with pytest.raises(ConfigError, match="explain_top"):
        detector().predict(np.ones((8, 4)), [np.ones((2, 4))], 2.0, explain_top=-1)
    with pytest.raises(DataFormatError, match="not an integer"):
        detector().predict(np.ones((8, 4)), [np.ones((2, 4))] * 2, 2.0, history_video=[0, 0.5])
    with pytest.raises(DataFormatError, match="outside"):
        detector().predict(np.ones((8, 4)), [np.ones((2, 4))] * 2, 2.0, history_video=[0, 7])
    ok = detector().predict(
        np.ones((8, 4)), [np.ones((2, 4))] * 2, np.float32(1.875), history_video=[0, 1.0]
    )
    assert ok.rate == 1.875 and len(ok.scores) == 8


def test_case_11_width_zero_is_refused_not_replaced():
    with pytest.raises(ConfigError):
        hz.create_model("prnet", feature_dim=8, width=0)


def test_case_11_header_only_csv(tmp_path, capsys):
    feats = features_folder(tmp_path / "f")
    fails(capsys, ["data", "import-phdgifs", write_csv(tmp_path / "h.csv", []), "--features", feats,
                   "--out", tmp_path / "s.h5", "--quiet"], "no data rows")  # fmt: skip


def test_predict_history_video_from_a_float_npz_is_checked_not_truncated(tmp_path, capsys):
    from training_support import write_fresh_checkpoint

    ckpt = write_fresh_checkpoint(tmp_path / "c.pt", "prnet", tmp_path / "unused.h5")
    np.save(tmp_path / "v.npy", np.ones((20, FEATURE_DIM), np.float32))
    np.savez(tmp_path / "h.npz", np.ones((3, FEATURE_DIM)), np.ones((2, FEATURE_DIM)),
             history_video=np.array([0.0, 1.5]))  # fmt: skip
    fails(capsys, ["predict", ckpt, "--video-features", tmp_path / "v.npy", "--history",
                   tmp_path / "h.npz", "--rate", "2"], "history_video[1] = 1.5")  # fmt: skip


def test_train_config_file_of_wrong_types_or_bad_json_is_one_line(world, tmp_path, capsys):
    """``train --config``: a value of the wrong type (``"lr": "abc"``) or a file that is not
    JSON is exit 2 and one line naming the field or the file, never a traceback."""
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"lr": "abc"}))
    broken = tmp_path / "broken.json"
    broken.write_text("not json")
    train = ["train", "--model", "prnet", "--data", world["store"], "--quiet", "--config"]
    fails(capsys, [*train, wrong, "--out", tmp_path / "r1"], "lr must be a number, got 'abc'")
    fails(capsys, [*train, broken, "--out", tmp_path / "r2"], "not valid JSON", "broken.json")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_missing_videos_are_refused_before_any_backbone_is_built(tmp_path, capsys,
                                                                  monkeypatch):
    """``features extract`` and ``predict --video``: a typo in a video path (or a history
    CSV's), or a folder without videos, is refused before the backbone is built, which may
    first download its weights."""
    from highlightzoo.features.extract import Extractor

    def no_backbone(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the backbone was built before the inputs were checked")

    monkeypatch.setattr(Extractor, "create", no_backbone)
    (tmp_path / "empty").mkdir()
    extract = ["features", "extract", "--backbone", "resnet18", "--out", tmp_path / "f.h5"]
    fails(capsys, [*extract, tmp_path / "nope.mp4"], "video file does not exist", "nope.mp4")
    fails(capsys, [*extract, tmp_path / "empty"], "no video files found", "empty")
    assert not (tmp_path / "f.h5").exists()
    # predict from video files: the same, before the run's backbone is built
    from training_support import write_fresh_checkpoint

    import highlightzoo.cli.engine as engine

    monkeypatch.setattr(engine, "extractor_for_run", no_backbone)
    ckpt = write_fresh_checkpoint(tmp_path / "c.pt", "prnet", tmp_path / "unused.h5")
    (tmp_path / "v.mp4").write_bytes(b"")
    predict = ["predict", ckpt, "--video"]
    fails(capsys, [*predict, tmp_path / "nope.mp4"], "video file does not exist", "nope.mp4")
    fails(capsys, [*predict, tmp_path / "v.mp4", "--history", tmp_path / "h1.mp4"],
          "video file does not exist", "h1.mp4")  # fmt: skip
    fails(capsys, [*predict, tmp_path / "v.mp4", "--history-csv", tmp_path / "h.csv"],
          "history CSV does not exist", "h.csv")  # fmt: skip
    # a run whose store does not name its backbone: the named one must have the model's width
    monkeypatch.undo()
    monkeypatch.setattr(Extractor, "create", no_backbone)
    fails(capsys, [*predict, tmp_path / "v.mp4", "--backbone", "resnet18"],
          f"backbone 'resnet18' gives 512-d features, but the model takes {FEATURE_DIM}-d")  # fmt: skip


def test_output_folders_that_are_files_are_one_line(world, tmp_path, capsys):
    """``--out`` naming a file: ``bench tables``, ``bench probes`` and ``bench attention`` raised
    ``FileExistsError`` from ``mkdir``; now one line naming the path (``io.output_folder``)."""
    from highlightzoo.errors import WriteError
    from highlightzoo.io import output_folder

    file = tmp_path / "taken"
    file.write_text("")
    with pytest.raises(WriteError, match="it is a file, not a folder"):
        output_folder(file)
    assert output_folder(tmp_path / "a" / "b").is_dir()
    assert not output_folder(tmp_path / "c", make=False).exists()
    run = make_run(tmp_path / "R", world["store"])
    fails(capsys, ["bench", "attention", run, "--out", file], "it is a file, not a folder",
          str(file))  # fmt: skip
    fails(capsys, ["bench", "tables", "--models", "random", "--seeds", "1", "--out", file],
          "it is a file, not a folder")  # fmt: skip


def test_a_negative_seed_is_one_line_not_numpys_value_error(tmp_path, capsys):
    """``data synth --seed -1`` and ``data replay --seed -1`` were NumPy ``ValueError``
    tracebacks ("expected non-negative integer"); the split seed of an import too."""
    from highlightzoo.data.phdgifs import split_users

    fails(capsys, ["data", "synth", "--preset", "tiny", "--seed", "-1", "--out",
                   tmp_path / "s.h5", "--quiet"], "the world's seed must be an int >= 0, got -1")  # fmt: skip
    csv = write_csv(tmp_path / "one.csv", [("v1", 1.0, 2.0, "u1", 60.0, True)])
    fails(capsys, ["data", "replay", csv, "--seed", "-1", "--out", tmp_path / "r.h5",
                   "--quiet"], "the world's seed must be an int >= 0")  # fmt: skip
    with pytest.raises(ConfigError, match="the split seed must be an int >= 0"):
        split_users(["a", "b"], seed=-1)
    assert not (tmp_path / "s.h5").exists() and not (tmp_path / "r.h5").exists()


def test_an_unknown_extraction_device_is_refused_before_the_weights_load(monkeypatch):
    """``features extract --device tpu`` was a RuntimeError traceback, after the weights."""
    import highlightzoo.features.extract as extract

    def no_weights(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the weights were loaded before the device was checked")

    monkeypatch.setattr(extract, "load_backbone", no_weights)
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        extract.Extractor.create("resnet18", "none", device="tpu")


def test_predict_names_the_file_and_the_array_of_bad_features(tmp_path, capsys):
    """What ``predict`` loads is checked as it is loaded: the error names the file (and, in a
    history .npz, the array), not just "video features" or "history segment 1"."""
    from training_support import write_fresh_checkpoint

    ckpt = write_fresh_checkpoint(tmp_path / "c.pt", "prnet", tmp_path / "unused.h5")
    good, wide, nan = tmp_path / "v.npy", tmp_path / "wide.npy", tmp_path / "nan.npy"
    np.save(good, np.ones((20, FEATURE_DIM), np.float32))
    np.save(wide, np.ones((20, FEATURE_DIM + 1), np.float32))
    np.save(nan, np.full((20, FEATURE_DIM), np.nan, np.float32))
    history = tmp_path / "h.npz"
    np.savez(history, first=np.ones((3, FEATURE_DIM)), second=np.ones((2, FEATURE_DIM - 1)))
    predict = ["predict", ckpt, "--rate", "2", "--video-features"]
    fails(capsys, [*predict, wide], f"{FEATURE_DIM + 1}-d features, but the model expects "
                                    f"{FEATURE_DIM}-d", f"file='{wide}'")  # fmt: skip
    fails(capsys, [*predict, nan], "NaN", f"file='{nan}'")
    fails(capsys, [*predict, good, "--history", history], "history segment 'second'",
          f"{FEATURE_DIM - 1}-d features", f"file='{history}'")  # fmt: skip


# --------------------------------------------------------------------------- properties: CSV

# CSV cells: valid values, the usual kinds of damage, and plain junk
NUMBER = st.one_of(
    st.floats(-5, 60).map(lambda x: f"{x:.2f}"),
    st.sampled_from(["nan", "inf", "-inf", "-1", "", "1e308", "x", "1,5"]),
    st.text(max_size=4),
)
# a junk value per column: damaged ids, numbers and booleans
JUNK = [
    st.one_of(st.sampled_from(["v09", "missing", "", ".", "../v00"]), st.text(max_size=3)),
    NUMBER,
    NUMBER,
    st.one_of(st.just(""), st.text(max_size=3)),
    NUMBER,
    st.sampled_from(["maybe", "", "yes", "2"]),
]


@st.composite
def csv_row(draw) -> list[object]:
    """A well-formed row (its span may still lie outside its video), with 0-2 cells damaged."""
    row = [
        draw(st.sampled_from(["v00", "v01", "v02"])),
        f"{draw(st.floats(-2, 25)):.2f}",
        f"{draw(st.floats(-1, 8)):.2f}",
        draw(st.sampled_from(["u0", "u1", "u2"])),
        draw(st.sampled_from(["-1", "20", "20.4", "10"])),
        draw(st.sampled_from(["True", "False", "true", "0", "1"])),
    ]
    for k in draw(
        st.one_of(st.sets(st.integers(0, 5), max_size=0), st.sets(st.integers(0, 5), max_size=2))
    ):
        row[k] = draw(JUNK[k])
    cut = draw(st.sampled_from(["whole", "whole", "whole", "short", "long"]))
    return row[:3] if cut == "short" else [*row, "extra"] if cut == "long" else row


ROWS = st.lists(csv_row(), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, strict=st.booleans())
def test_property_random_csv_rows_are_kept_or_counted_never_a_traceback(rows, strict):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        feats = features_folder(tmp / "f", n_videos=3)
        out = tmp / "store.h5"
        out.write_bytes(b"previous store")
        csv_path = write_csv(tmp / "a.csv", rows)
        try:
            report = import_phdgifs(csv_path, feats, 2.0, out, strict=strict, progress=False)
        except HighlightZooError:
            assert out.read_bytes() == b"previous store"  # a failed import changes nothing
            assert temp_files_of(out) == []
            return
        assert report.segments_in == report.segments_kept + sum(report.segments_lost.values())
        assert report.users_in == report.users_kept + sum(report.users_lost.values())
        assert report.users_kept >= 1 and len(report.dropped_rows) == sum(
            report.segments_lost.values()
        )
        store = FeatureStore(out)  # what was written is a valid store, strictly
        assert len(store) == report.users_kept


# --------------------------------------------------------------------------- properties: store


def small_store(path: Path) -> None:
    """3 users, 3 videos; every video is some user's target or history."""
    rng = np.random.default_rng(0)
    with StoreWriter(path, 4) as w:
        for v, n in (("a", 20), ("b", 16), ("c", 12)):
            w.add_video(v, rng.random((n, 4), dtype=np.float32), 2.0)
        w.add_user("u1", "a", [(1.0, 3.0), (4.0, 5.0)], [("b", 0.5, 2.0), ("c", 1.0, 4.0)])
        w.add_user("u2", "b", [(2.0, 4.0)], [("a", 5.0, 6.0)])
        w.add_user("u3", "c", [(0.5, 1.5)], [("a", 1.0, 2.0)])
        w.set_split("train", ["u1", "u2"])
        w.set_split("test", ["u3"])


TABLES = ["users/ids", "users/target_video", "users/target_ptr", "users/history_ptr",
          "users/target_segments", "users/history_segments", "users/history_video",
          "video_index/ids", "video_index/dataset", "video_index/rate", "video_index/duration",
          "video_index/n_steps"]  # fmt: skip


def _rewrite(f: h5py.File, name: str, data) -> None:
    dtype = f[name].dtype
    del f[name]
    f.create_dataset(name, data=data, dtype=dtype)


CORRUPTIONS = st.one_of(
    st.tuples(st.just("truncate"), st.sampled_from(TABLES), st.integers(1, 3)),
    st.tuples(
        st.just("pointer_order"), st.sampled_from(["target_ptr", "history_ptr"]), st.integers(0, 99)
    ),
    st.tuples(st.just("nan"), st.sampled_from(["a", "b", "c"]), st.integers(0, 999)),
    st.tuples(st.just("outside"), st.sampled_from(["target", "history"]), st.integers(0, 99)),
    st.tuples(
        st.just("duplicate"), st.sampled_from(["users/ids", "video_index/ids"]), st.integers(0, 99)
    ),
    st.tuples(
        st.just("bad_rate"),
        st.sampled_from([0.0, -2.0, float("nan"), float("inf")]),
        st.integers(0, 2),
    ),
    st.tuples(
        st.just("strings"), st.sampled_from(["video_index/n_steps", "users/target_ptr"]), st.just(0)
    ),
    st.tuples(st.just("unknown_split_user"), st.sampled_from(["train", "test"]), st.just(0)),
)


def corrupt(f: h5py.File, kind: str, what, k: int) -> None:
    """Apply one corruption; each one changes what the store says (none is a no-op)."""
    if kind == "truncate":
        data = f[what][()]
        _rewrite(f, what, data[: max(0, len(data) - min(k, len(data)))])
    elif kind == "pointer_order":
        ptr = f[f"users/{what}"][()]
        pairs = [
            (i, j) for i in range(len(ptr)) for j in range(i + 1, len(ptr)) if ptr[i] != ptr[j]
        ]
        i, j = pairs[k % len(pairs)]
        ptr[i], ptr[j] = ptr[j], ptr[i]
        f[f"users/{what}"][...] = ptr
    elif kind == "nan":
        ds = f["videos"][what]
        ds[k % ds.shape[0], k % 4] = np.nan
    elif kind == "outside":
        table = f[f"users/{what}_segments"]
        row = k % table.shape[0]
        video = f["users/target_video"] if what == "target" else f["users/history_video"]
        ptr = f["users/target_ptr"][()] if what == "target" else None
        vid = (
            video[int(np.searchsorted(ptr, row, side="right") - 1)]
            if ptr is not None
            else video[row]
        )
        ids = [v.decode() for v in f["video_index/ids"][()]]
        duration = f["video_index/duration"][ids.index(vid.decode())]
        table[row] = [duration + 0.5, duration + 3.0]
    elif kind == "duplicate":
        ids = f[what][()]
        i = k % len(ids)
        ids[(i + 1) % len(ids)] = ids[i]
        f[what][...] = ids
    elif kind == "bad_rate":
        f["video_index/rate"][k] = what
    elif kind == "strings":
        n = len(f[what])
        del f[what]
        f.create_dataset(what, data=["x"] * n, dtype=h5py.string_dtype())
    elif kind == "unknown_split_user":
        ids = list(f[f"splits/{what}"][()])
        del f[f"splits/{what}"]
        f["splits"].create_dataset(what, data=[*ids, b"nobody"], dtype=h5py.string_dtype())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corruption=CORRUPTIONS)
def test_property_store_corruptions_are_typed_errors_or_counted_skips(corruption):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.h5"
        small_store(path)
        clean = store_fingerprint(path)
        with h5py.File(path, "r+") as f:
            corrupt(f, *corruption)
        with pytest.raises(DataFormatError):  # strict: never opens as if nothing happened
            FeatureStore(path)
        try:
            store = FeatureStore(path, strict=False)
        except DataFormatError:
            return  # file-level damage: refused in both modes
        assert store.report.skipped, "a lenient open must count what it skipped"
        assert (
            store.fingerprint() != clean or corruption[0] == "nan"
        )  # index damage is seen by runs


# --------------------------------------------------------------------------- properties: predict

DTYPES = st.sampled_from(
    [np.float32, np.float64, np.int64, np.bool_, np.complex64, np.str_, object]
)


def _array(dtype, shape: tuple[int, ...], scale: float) -> np.ndarray:
    with np.errstate(all="ignore"):  # nan/huge values cast to ints on purpose
        return (np.random.default_rng(0).random(shape) * scale).astype(dtype)


ARRAYS = st.builds(
    _array,
    DTYPES,
    st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple),
    st.sampled_from([1.0, 1e6, 1e40, float("nan")]),
)
VALID = st.builds(  # well-formed (steps, 4) features, so that the checks after scoring run too
    _array, st.sampled_from([np.float32, np.float64, np.int64]),
    st.integers(1, 6).map(lambda t: (t, 4)), st.sampled_from([1.0, 3.0]),
)  # fmt: skip
FEATURES = st.one_of(
    VALID,
    ARRAYS,
    st.lists(st.lists(st.floats(allow_nan=True), max_size=5), max_size=4),  # ragged or not
    st.text(max_size=3),
    st.none(),
    st.integers(),
)
NUMBERS = st.one_of(st.integers(-2, 6), st.floats(), st.sampled_from([np.float32(1.875), np.int64(2)]),
                    st.booleans(), st.text(max_size=2))  # fmt: skip


PREDICT_ARGS = ("video", "history", "owners", "rate", "top_k", "explain_top")


@st.composite
def predict_inputs(draw) -> dict[str, object]:
    """Arguments of ``Detector.predict``: valid ones, with 0-3 of them replaced by junk."""
    broken = draw(st.sets(st.sampled_from(PREDICT_ARGS), max_size=3))
    junk = {
        "video": FEATURES,
        "history": st.one_of(st.lists(FEATURES, max_size=3), st.text(max_size=2), st.integers()),
        "owners": st.lists(st.one_of(NUMBERS, st.floats(-1, 3)), max_size=3),
        "rate": NUMBERS,
        "top_k": NUMBERS,
        "explain_top": NUMBERS,
    }
    args = {
        "video": draw(VALID),
        "history": draw(st.one_of(st.none(), st.lists(VALID, max_size=3))),
    }
    n = len(args["history"] or [])
    args["owners"] = draw(
        st.one_of(st.none(), st.lists(st.integers(0, max(n - 1, 0)), min_size=n, max_size=n))
    )
    args["rate"] = draw(
        st.one_of(st.floats(0.5, 4), st.sampled_from([np.float32(1.875), np.int64(2)]))
    )
    args["top_k"] = draw(st.integers(1, 4))
    args["explain_top"] = draw(st.integers(0, 3))
    for name in sorted(broken):
        args[name] = draw(junk[name])
    if "owners" in broken and isinstance(args["history"], list):  # often the right length
        n = len(args["history"])
        same_length = st.lists(st.one_of(NUMBERS, st.floats(-1, 3)), min_size=n, max_size=n)
        args["owners"] = draw(st.one_of(junk["owners"], same_length))
    return args


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=predict_inputs())
def test_property_random_predict_inputs_are_a_typed_error_or_a_checked_result(args):
    video, history, owners, rate, top_k, explain_top = (args[k] for k in PREDICT_ARGS)
    try:
        result = detector().predict(
            video, history, rate, top_k, history_video=owners, explain_top=explain_top
        )
    except HighlightZooError:
        return
    # a result only for valid input, and nothing in it silently changed
    array = np.asarray(video)
    assert array.dtype.kind in "fiu" and array.ndim == 2 and array.shape[1] == 4
    assert np.isfinite(array).all() and float(rate) > 0 and not isinstance(rate, bool)
    assert result.scores.shape == (array.shape[0],) and np.isfinite(result.scores).all()
    assert int(top_k) >= 1 and not isinstance(top_k, bool) and float(top_k) == int(top_k)
    assert int(explain_top) >= 0 and float(explain_top) == int(explain_top)
    assert len(result.segments) >= 1
    n = len(history or [])
    if owners is not None:
        assert len(owners) == n
        assert all(float(o) == int(o) and 0 <= int(o) < n for o in owners)
    for segment in history or []:
        segment = np.asarray(segment)
        assert segment.dtype.kind in "fiu" and segment.ndim == 2 and np.isfinite(segment).all()


SEGMENT_OPTIONS = {"rate": st.floats(0.5, 4), "k": st.integers(1, 4),
                   "min_len_s": st.floats(0.5, 3), "max_len_s": st.floats(3, 12),
                   "baseline": st.one_of(st.none(), st.floats(-1, 1)),
                   "max_lengths": st.integers(1, 70)}  # fmt: skip


@st.composite
def segment_inputs(draw) -> dict[str, object]:
    """Arguments of ``top_k_segments`` for 1-40 scores: valid ones, 0-3 replaced by junk."""
    args = {name: draw(valid) for name, valid in SEGMENT_OPTIONS.items()}
    for name in sorted(draw(st.sets(st.sampled_from(sorted(SEGMENT_OPTIONS)), max_size=3))):
        args[name] = draw(st.one_of(NUMBERS, st.none()))
    return args


@settings(max_examples=200, deadline=None)
@given(args=segment_inputs(), n=st.integers(1, 40))
@example(  # found by CI: seconds x steps/s overflowed to inf before clipping to the video
    args={"rate": 2.3425702861621914e205, "k": 1, "min_len_s": 1.0,
          "max_len_s": 7.67402005174179e102, "baseline": 0, "max_lengths": 1}, n=1)
def test_property_random_segment_options_are_a_typed_error_or_checked_segments(args, n):
    """Every scalar option of ``top_k_segments``: a ``MetricInputError`` naming it, or segments
    that fit the video (no ``TypeError`` from a comparison, no NaN baseline let through)."""
    from highlightzoo.errors import MetricInputError
    from highlightzoo.metrics import top_k_segments

    scores = np.random.default_rng(n).random(n)
    try:
        segments = top_k_segments(scores, **args)
    except MetricInputError:
        return
    for name in ("rate", "min_len_s", "max_len_s"):
        value = args[name]
        assert not isinstance(value, (str, bool)) and np.isfinite(value) and value > 0, name
    for name in ("k", "max_lengths"):
        value = args[name]
        assert isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
    assert args["baseline"] is None or (not isinstance(args["baseline"], (str, bool))
                                        and np.isfinite(args["baseline"]))
    assert 1 <= len(segments) <= args["k"]
    duration = n / float(args["rate"])
    spans = sorted((s.start_s, s.end_s) for s in segments)
    assert all(0 <= a < b <= duration + 1e-9 for a, b in spans)
    assert all(b1 <= a2 + 1e-9 for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False))


MODEL_OPTIONS = [(name, option) for name in hz.list_models()
                 for option in registry.builder_options(registry._REGISTRY[name][1]) or []]
JUNK_OPTION_VALUES = [0, -1, 2, 0.5, 2.5, 17, 100, float("nan"), float("inf"), -0.5, "a", "", "1",
                      None, True, False, [1], "video:4", "max", np.float32(0.3), np.int64(2)]


@pytest.mark.parametrize("name, option", MODEL_OPTIONS)
def test_any_model_option_value_is_refused_when_built_or_runs(name, option):
    """Every registered model's every option with each junk value: a ``ConfigError`` from
    ``create_model``, or a model whose forward gives finite scores (a typed error at most,
    for a batch it cannot take). Found: PR-Net variants without attention took any ``lam``
    (a string failed, NaN gave NaN scores, at the first forward), FCSN and A-VHD a NaN
    dropout, and PR-Net ``depth=100`` overflowed the padding."""
    from highlightzoo.batch import random_batch

    batch = random_batch(batch_size=2, steps=12, feature_dim=4, history_segments=2)
    for value in JUNK_OPTION_VALUES:
        try:
            model = hz.create_model(name, feature_dim=4, **{option: value})
        except ConfigError:
            continue
        try:
            scores = model(batch).scores
        except HighlightZooError:
            continue
        assert torch.isfinite(scores).all(), (name, option, value)


CPU_ALLOCATOR_FAILURE = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 2097152 bytes. Error code 12 (Cannot allocate memory)\n"
    "frame #0: c10::ThrowEnforceNotMet(...)"
)


@pytest.mark.parametrize("error", [
    RuntimeError(CPU_ALLOCATOR_FAILURE),  # torch on CPU: a plain RuntimeError with a C++ stack
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    MemoryError(),
])
def test_running_out_of_memory_is_one_line_naming_what_to_shrink(monkeypatch, capsys, error):
    """A model or batch too large for the machine (``--set depth=100000`` on prnet_residual)
    ended in torch's allocator traceback and its C++ frames."""
    from highlightzoo.cli import engine

    def run_train(args):
        raise error

    monkeypatch.setattr(engine, "run_train", run_train)
    code, _, err = cli(capsys, ["train", "--model", "fcsn", "--data", "x.h5"])
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("highlightzoo: error: out of memory (") and "--batch-size" in lines[0]


def test_an_error_that_is_not_about_memory_is_still_a_traceback(monkeypatch):
    """Only memory is turned into a line: any other RuntimeError is a bug to report."""
    from highlightzoo.cli import engine

    def run_train(args):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(engine, "run_train", run_train)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["train", "--model", "fcsn", "--data", "x.h5"])


@pytest.mark.parametrize("device, message", [
    ("xpu", "highlightzoo runs on 'cpu' or 'cuda'"),  # torch's AssertionError mid-run before
    ("mps", "not on 'mps' devices"),  # "PyTorch is not linked with support for mps devices"
    ("meta", "not on 'meta' devices"),  # "unsupported autocast device_type 'meta'"
])
def test_a_device_type_the_package_does_not_run_on_is_one_line(world, tmp_path, capsys, device,
                                                               message):
    fails(capsys, ["train", "--model", "random", "--data", world["store"], "--max-steps", "1",
                   "--out", tmp_path / "r", "--device", device], message)
    assert not (tmp_path / "r").exists()


def test_a_cuda_index_beyond_the_machines_devices_is_refused(monkeypatch):
    from highlightzoo.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="this machine has 1 CUDA device"):
        resolve_device("cuda:5")


def test_a_benchmark_folder_given_to_a_runs_command_is_named_as_one(tmp_path, capsys):
    """``train --resume BENCH`` said "already finished" of a benchmark folder, ``evaluate
    BENCH`` only "no checkpoints/best.pt", and ``data info FOLDER`` printed h5py's message with
    a C buffer's address."""
    bench = tmp_path / "bench"
    (bench / "runs" / "prnet-seed0").mkdir(parents=True)
    (bench / "results.json").write_text("{}")
    note = "it is a benchmark folder of `highlightzoo bench tables`"
    fails(capsys, ["evaluate", bench], "has no checkpoints/best.pt", note)
    fails(capsys, ["train", "--resume", bench], "not a run folder", note, "as --out")
    fails(capsys, ["data", "info", bench], "a folder, not a feature store")


def test_a_file_given_in_anothers_place_is_named_by_its_kind(world, tmp_path, capsys):
    """A store given as a checkpoint said "reading it would need pickled code"; a checkpoint
    given as a store, h5py's "file signature not found"; a store given as a JSON or CSV file,
    a UTF-8 decoding error. Each message now also says what the file is."""
    from training_support import write_fresh_checkpoint

    store = world["store"]
    ckpt = write_fresh_checkpoint(tmp_path / "c.pt", "prnet", store)
    hdf5, zip_ = "it is an HDF5 file", "it is a zip file (a PyTorch checkpoint"
    fails(capsys, ["evaluate", store], "is not a highlightzoo checkpoint", hdf5)
    fails(capsys, ["data", "info", ckpt], "cannot open as HDF5", zip_)
    fails(capsys, ["train", "--config", store, "--out", tmp_path / "r"], "not valid JSON", hdf5)
    fails(capsys, ["data", "replay", store, "--out", tmp_path / "x.h5"], "cannot read CSV", hdf5)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "results.json").write_bytes(store.read_bytes())
    fails(capsys, ["bench", "report", bench], "not valid JSON", hdf5)
