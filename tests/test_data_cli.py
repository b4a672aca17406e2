"""The ``highlightzoo data`` commands, end to end through ``main``."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from highlightzoo.cli import build_parser, main


def test_synth_then_info(tmp_path: Path, capsys):
    out = tmp_path / "t.h5"
    assert main(["data", "synth", "--preset", "tiny", "--seed", "3", "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    assert out.is_file()
    capsys.readouterr()
    assert main(["data", "info", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["users_per_split"] == {"train": 8, "val": 2, "test": 2}
    assert stats["positive_to_unlabeled"] > 1 and stats["videos"] > 12
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "positive:unlabeled" in text and "history_segments_per_user" in text


def test_info_on_a_bad_store_is_a_one_line_error_or_a_lenient_report(tmp_path: Path, capsys):
    out = tmp_path / "t.h5"
    main(["data", "synth", "--preset", "tiny", "--out", str(out), "--quiet"])
    with h5py.File(out, "r+") as f:
        f["users/target_segments"][0] = [-5.0, 1.0]
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 2
    err = capsys.readouterr().err
    assert "outside the video" in err and "user=" in err and err.count("\n") == 1
    assert main(["data", "info", str(out), "--lenient"]) == 0
    assert "skipped 1 of 12 users (segment_outside_video: 1)" in capsys.readouterr().out


def test_info_names_videos_whose_features_do_not_cover_their_duration(tmp_path: Path, capsys):
    """A store whose features end long before (or after) their videos read without a word."""
    out = tmp_path / "t.h5"
    main(["data", "synth", "--preset", "tiny", "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "feature_coverage" in text and "note: the features of" not in text
    with h5py.File(out, "r+") as f:  # two videos said to last ten times their features
        durations = f["video_index/duration"][()]
        durations[:2] *= 10
        f["video_index/duration"][...] = durations
    assert main(["data", "info", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["videos_feature_coverage_off"] == 2 and stats["feature_coverage"]["min"] < 0.11
    assert main(["data", "info", str(out)]) == 0
    assert "note: the features of 2 videos cover less than 50% or more than 200%" in (
        capsys.readouterr().out)


@pytest.mark.parametrize("cmd", ["synth", "replay", "import-phdgifs", "info"])
def test_every_option_has_help(cmd):
    parser = build_parser()
    data = parser._subparsers._group_actions[0].choices["data"]
    sub = data._subparsers._group_actions[0].choices[cmd]
    for action in sub._actions:
        assert action.help, f"{cmd} {action.option_strings or action.dest} lacks help"
