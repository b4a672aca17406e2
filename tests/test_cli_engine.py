"""The engine's command line: help, list-models, predict files, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from training_support import FEATURE_DIM, write_fresh_checkpoint, write_tiny_store

import highlightzoo as hz
from highlightzoo.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    store = write_tiny_store(root / "tiny.h5")
    other = write_tiny_store(root / "wide.h5", feature_dim=FEATURE_DIM + 2, users=(2, 1, 1))
    ckpt = write_fresh_checkpoint(root / "prnet.pt", "prnet", store)
    rng = np.random.default_rng(0)
    np.save(root / "video.npy", rng.random((70, FEATURE_DIM), dtype=np.float32))
    np.savez(root / "history.npz", *[rng.random((n, FEATURE_DIM), dtype=np.float32) for n in (3, 6, 4)],
             history_video=np.array([0, 0, 1]))  # fmt: skip
    return {"root": root, "store": store, "other": other, "ckpt": ckpt}


def _fails(capsys, argv: list[str], match: str) -> str:
    """Run the CLI, expect exit 2 and a single 'highlightzoo: error:' line containing ``match``."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("highlightzoo: error:"), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command, flag", [("train", "--resume"), ("evaluate", "--split"),
                                           ("predict", "--video-features"), ("list-models", "--json")])
def test_every_command_has_help(command, flag, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0 and flag in capsys.readouterr().out


def test_list_models_shows_every_card_and_filters(capsys):
    assert main(["list-models"]) == 0
    out = capsys.readouterr().out
    for name in hz.list_models():
        assert f"\n{name} " in out
    assert main(["list-models", "prnet_h*", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in cards] == ["prnet_h0", "prnet_h5"] and cards[1]["history_cap"] == 5


def test_train_model_choices_come_from_the_registry(capsys, files):
    with pytest.raises(SystemExit) as info:
        main(["train", "--model", "no_such_model", "--data", str(files["store"])])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_predict_json_with_history_and_with_an_empty_history(files, capsys):
    base = ["predict", str(files["ckpt"]), "--video-features", str(files["root"] / "video.npy"),
            "--rate", "2", "--top-k", "3", "--json"]  # fmt: skip
    assert main([*base, "--history", str(files["root"] / "history.npz")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "prnet" and len(out["scores"]) == 70 and len(out["segments"]) == 3
    assert {j for e in out["explanations"] for j, _ in e["history"]} <= {0, 1, 2}
    assert main(base) == 0
    empty = json.loads(capsys.readouterr().out)
    assert all(e["history"] == [] for e in empty["explanations"])
    assert main(base[:-1]) == 0  # text output
    assert capsys.readouterr().out.count("s - ") == 3


def test_predict_refuses_video_file_options_with_video_features(files, capsys, tmp_path):
    """``--weights`` (the backbone's) was ignored with --video-features, and --history-csv was
    refused with a message about .npz files."""
    base = ["predict", str(files["ckpt"]), "--video-features", str(files["root"] / "video.npy"),
            "--rate", "2"]  # fmt: skip
    _fails(capsys, [*base, "--weights", str(tmp_path / "w.pt")], "--weights are the backbone's")
    _fails(capsys, [*base, "--history", str(files["root"] / "history.npz"), "--history-csv",
                    str(tmp_path / "h.csv")], "--history-csv lists history clips in video files")


def test_bad_checkpoints_and_data_give_one_line_errors(files, capsys, tmp_path):
    data = (files["ckpt"]).read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    _fails(capsys, ["evaluate", str(tmp_path / "cut.pt"), "--data", str(files["store"])],
           "truncated or corrupt")  # fmt: skip
    _fails(capsys, ["evaluate", str(files["store"])], "is not a highlightzoo checkpoint; it is an HDF5 file")
    _fails(capsys, ["evaluate", str(tmp_path / "missing.pt")], "does not exist")
    _fails(capsys, ["evaluate", str(files["ckpt"]), "--data", str(files["other"])],
           "trained on 8-d features but the data has 10-d features")  # fmt: skip
    _fails(capsys, ["predict", str(tmp_path / "cut.pt"), "--video-features",
                    str(files["root"] / "video.npy"), "--rate", "2"], "truncated")  # fmt: skip
    np.save(tmp_path / "wide.npy", np.zeros((20, FEATURE_DIM + 1), dtype=np.float32))
    _fails(capsys, ["predict", str(files["ckpt"]), "--video-features", str(tmp_path / "wide.npy"),
                    "--rate", "2"], "expects 8-d")  # fmt: skip
    (tmp_path / "bad.npy").write_text("not numpy")
    _fails(capsys, ["predict", str(files["ckpt"]), "--video-features", str(tmp_path / "bad.npy"),
                    "--rate", "2"], "cannot read video features")  # fmt: skip


def test_train_errors_are_one_line(files, capsys, tmp_path):
    existing = tmp_path / "exists"
    existing.mkdir()
    common = ["train", "--model", "video2gif", "--data", str(files["store"]), "--quiet"]
    _fails(capsys, [*common, "--out", str(existing)], "already exists")
    _fails(capsys, [*common, "--out", str(tmp_path / "r"), "--precision", "bf16", "--device", "cpu"],
           "bf16")  # fmt: skip
    _fails(capsys, ["train", "--data", str(files["store"])], "--model")
    _fails(capsys, ["train", "--resume", str(tmp_path / "nope")], "no such run folder")
    (tmp_path / "store.h5").write_text("")
    _fails(capsys, ["train", "--resume", str(tmp_path / "store.h5")], "a file, not a run folder")
    # stop after one epoch (as if killed), then try to resume it as another model
    from highlightzoo.training import TrainConfig, train

    run = tmp_path / "half"
    train(TrainConfig(model="video2gif", data=str(files["store"]), epochs=2, batch_size=4,
                      out=str(run)), quiet=True, stop_after=1)  # fmt: skip
    _fails(capsys, ["train", "--resume", str(run), "--model", "phdgifs"], "cannot change model")
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert "test mAP" in capsys.readouterr().out and (run / "results.json").exists()
