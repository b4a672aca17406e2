"""Attention diagnostics: known answers for the entropy and the user share, and a run on a checkpoint."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from training_support import write_fresh_checkpoint, write_tiny_store

from highlightzoo.bench.attention import (
    attention_diagnostics,
    attention_entropy,
    spearman,
    user_share,
    write_attention_diagnostics,
)
from highlightzoo.cli import main
from highlightzoo.errors import ConfigError


def test_entropy_known_answers():
    mask = np.array([True, True, True, True, False])
    uniform = np.array([[0.25, 0.25, 0.25, 0.25, 0.0]])
    one_hot = np.array([[0.0, 1.0, 0.0, 0.0, 0.0]])
    assert attention_entropy(uniform, mask) == pytest.approx(1.0)
    assert attention_entropy(one_hot, mask) == pytest.approx(0.0)
    # half on two segments of four: log 2 / log 4 = 0.5; mean over the two steps
    half = np.array([[0.5, 0.5, 0.0, 0.0, 0.0]])
    assert attention_entropy(np.vstack([half, one_hot]), mask) == pytest.approx(0.25)
    assert attention_entropy(one_hot, np.array([False, True, False, False, False])) is None


def test_user_share_known_answer():
    assert user_share(np.array([0.6, 0.4, 0.5, 0.9]), np.array([0.4, 0.6, 0.5, 0.1])) == 0.5
    assert math.isnan(user_share(np.array([]), np.array([])))


def test_spearman_uses_only_defined_values():
    got = spearman([1.0, 2.0, None, 3.0, 4.0], [0.1, 0.2, 0.9, 0.3, 0.4])
    assert got["rho"] == pytest.approx(1.0) and got["n"] == 4
    assert spearman([None, 1.0], [0.1, 0.2])["rho"] is None


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_tiny_store(tmp_path_factory.mktemp("data") / "tiny.h5")


def test_diagnostics_of_a_checkpoint_and_files(store, tmp_path):
    ckpt = write_fresh_checkpoint(tmp_path / "prnet.pt", "prnet", store)
    report = attention_diagnostics(ckpt, split="train", trace_videos=2)
    assert report.model == "prnet" and len(report.videos) == 8  # every train user has a positive
    with_history = [v for v in report.videos if v.n_history >= 2]
    assert with_history and all(0.0 <= v.entropy <= 1.0 for v in with_history)
    assert all(v.entropy is None for v in report.videos if v.n_history < 2)
    assert all(v.user_share == 0.0 for v in report.videos if v.n_history == 0)  # cold start: g only
    assert all(0.0 <= v.ap <= 1.0 for v in report.videos)
    assert len(report.traces) == 2 and report.traces[0]["attention"].shape[1] >= 2
    paths = write_attention_diagnostics(tmp_path / "out", report)
    names = {p.name for p in paths}
    assert {"attention_prnet.json", "attention_prnet.md"} <= names
    assert "entropy" in (tmp_path / "out" / "attention_prnet.md").read_text()


def test_diagnostics_need_a_prnet(store, tmp_path):
    ckpt = write_fresh_checkpoint(tmp_path / "fcsn.pt", "fcsn", store)
    with pytest.raises(ConfigError, match="need a PR-Net"):
        attention_diagnostics(ckpt)


def test_cli_bench_attention_writes_the_report(store, tmp_path, capsys):
    ckpt = write_fresh_checkpoint(tmp_path / "prnet.pt", "prnet", store)
    out = tmp_path / "report"
    assert main(["bench", "attention", str(ckpt), "--out", str(out), "--split", "train",
                 "--no-plots"]) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(out / "attention_prnet.json"), str(out / "attention_prnet.md")]
    assert json.loads((out / "attention_prnet.json").read_text())["split"] == "train"


def test_cli_bench_attention_refuses_another_model_in_one_line(store, tmp_path, capsys):
    ckpt = write_fresh_checkpoint(tmp_path / "fcsn.pt", "fcsn", store)
    assert main(["bench", "attention", str(ckpt), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "need a PR-Net" in err and not (tmp_path / "r").exists()


def test_trace_count_and_device_are_checked_before_the_checkpoint_loads(store, tmp_path, capsys):
    # --trace-videos -1 traced no video, silently
    ckpt = write_fresh_checkpoint(tmp_path / "prnet.pt", "prnet", store)
    with pytest.raises(ConfigError, match="--trace-videos must be an int >= 0, got -1"):
        attention_diagnostics(ckpt, trace_videos=-1)
    assert main(["bench", "attention", str(ckpt), "--device", "tpu", "--out",
                 str(tmp_path / "r")]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err and not (tmp_path / "r").exists()

