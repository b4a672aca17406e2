"""torchrun on CPU: 2 gloo processes train one model, rank 0 alone writes, evaluation equals 1 process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from training_support import write_tiny_store

from highlightzoo.cli import main

TORCHRUN = shutil.which("torchrun")


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_torchrun_two_gloo_processes_write_one_results_file(tmp_path, capsys):
    store = write_tiny_store(tmp_path / "tiny.h5")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "highlightzoo", "train",
        # prnet: history attention with cold-start users in the batches (unused parameters)
        "--model", "prnet", "--data", str(store), "--epochs", "2", "--batch-size", "2",
        "--eval-batch-size", "2", "--device", "cpu", "--out", str(out), "--quiet", "--protocol", "steps",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test mAP") == 1  # only rank 0 reports

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["checkpoints/best.pt", "checkpoints/last.pt", "config.json", "results.json",
                     "train.log"]
    results = json.loads((out / "results.json").read_text())
    assert results["provenance"]["world_size"] == 2
    assert len(results["history"]) == 2
    # gathered records: every test pair once, none duplicated by sharding
    pairs = [(r["user"], r["video"]) for r in results["records"]]
    assert len(pairs) == len(set(pairs)) == results["n_pairs"] == 4
    assert (out / "train.log").read_text().count("stop: cap") == 1

    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0  # one process, same checkpoint
    single = json.loads(capsys.readouterr().out)
    assert single["map"] == results["map"]
    assert single["records"] == results["records"]


def test_sharded_batches_partition_the_items_in_the_same_batches():
    from highlightzoo.training.distributed import ShardedBatchSampler

    one = list(ShardedBatchSampler(11, 3))
    two = [list(ShardedBatchSampler(11, 3, rank=r, world_size=2)) for r in range(2)]
    three = [list(ShardedBatchSampler(11, 3, rank=r, world_size=3)) for r in range(3)]
    for shards in (two, three):
        merged = sorted(b for shard in shards for b in shard)
        assert merged == one  # same batches, each exactly once, nothing padded
    assert one == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]


def test_plain_process_is_a_world_of_one(monkeypatch):
    from highlightzoo.training.distributed import setup

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    ctx, device = setup("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, device.type) == (0, 1, True, "cpu")
    assert ctx.gather({"a": 1}) == [{"a": 1}]
