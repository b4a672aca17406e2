"""Speed and memory of every registered model on CPU (pytest-benchmark; not run by CI).

Run:  python -m pytest benchmarks/bench_models.py --benchmark-columns=mean,stddev,rounds

- ``test_forward`` / ``test_forward_backward``: one user, T = 1024 steps,
  d = 512 features, 20 history segments of up to 16 steps, each model at its
  reference size (PR-Net: width = d, as in the paper); forward in eval mode
  without autograd, forward + backward of the card's default loss in train mode.
- ``test_prnet_long_video_memory``: PR-Net inference on the longest case of
  the real test split: T = 20,000 steps and n = 1,347 history segments (of up
  to 54 steps, about 27 s, the longest PHD-GIFs segment), d = 512, run in a
  fresh subprocess whose peak resident memory (``VmHWM``: ``peak_rss.py``, whole process,
  torch itself included) must stay under 4 GiB. The same for one training
  step (forward + backward) is recorded too, not asserted (training uses
  256-step clips).

Timings use one intra-op thread unless ``HZ_BENCH_THREADS`` says otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from peak_rss import PEAK_RSS_SOURCE

import highlightzoo as hz
from highlightzoo.batch import random_batch
from highlightzoo.losses import get_loss

STEPS, DIM, HISTORY, SEGMENT_STEPS = 1024, 512, 20, 16
LIMIT_MIB = 4096
# Intra-op threads (default 1: stable numbers on a shared machine; set HZ_BENCH_THREADS=0
# to keep torch's default).
THREADS = int(os.environ.get("HZ_BENCH_THREADS", "1"))


@pytest.fixture(autouse=True)
def threads():
    before = torch.get_num_threads()
    if THREADS > 0:
        torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def batch():
    return random_batch(1, STEPS, DIM, HISTORY, SEGMENT_STEPS, seed=0)


@pytest.mark.parametrize("name", hz.list_models())
def test_forward(benchmark, batch, name):
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=DIM).eval()

    def run():
        with torch.no_grad():
            return model(batch).scores

    scores = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    benchmark.extra_info["parameters"] = sum(p.numel() for p in model.parameters())
    assert scores.shape == (1, STEPS)


@pytest.mark.parametrize("name", hz.list_models())
def test_forward_backward(benchmark, batch, name):
    if not hz.get_model_card(name).trainable:
        pytest.skip(f"{name} has no trainable parameters (a floor): nothing to backpropagate")
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=DIM).train()
    loss_fn = get_loss(model.card.default_loss)

    def run():
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch), batch)
        loss.backward()
        return loss

    loss = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert torch.isfinite(loss)


PEAK_SCRIPT = PEAK_RSS_SOURCE + textwrap.dedent(
    """
    import json, sys, time
    import torch
    import highlightzoo as hz
    from highlightzoo.batch import random_batch
    from highlightzoo.losses import get_loss

    train = sys.argv[1] == "train"
    if int(sys.argv[2]) > 0:
        torch.set_num_threads(int(sys.argv[2]))
    batch = random_batch(1, 20_000, 512, 1347, 54, seed=0)
    torch.manual_seed(0)
    model = hz.create_model("prnet", feature_dim=512)
    before = peak_rss_bytes() / 2**20
    start = time.perf_counter()
    if train:
        model.train()
        get_loss("contrastive")(model(batch), batch).backward()
    else:
        model.eval()
        with torch.no_grad():
            out = model(batch)
        assert out.extras["attention"].shape == (1, 20_000, 1347)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes() / 2**20
    print(json.dumps({"peak_mib": peak, "before_mib": before, "seconds": seconds}))
    """
)


def measure_long_video(mode: str) -> dict:
    """Peak RSS (MiB, the child's own: ``peak_rss.py``) of one PR-Net pass on the longest test case."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, mode, str(THREADS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_prnet_long_video_memory(benchmark, mode):
    result = benchmark.pedantic(measure_long_video, args=(mode,), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\nPR-Net T=20000 n=1347 {mode}: {result}")
    if mode == "inference":
        assert result["peak_mib"] < LIMIT_MIB, result
