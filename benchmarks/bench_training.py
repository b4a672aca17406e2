"""Training throughput per model: optimiser steps per second (pytest-benchmark; not run by CI).

Run: ``python -m pytest benchmarks/bench_training.py --benchmark-only -q``
(on a GPU machine: ``HZ_BENCH_DEVICE=cuda HZ_BENCH_PRECISION=bf16``; CPU threads:
``HZ_BENCH_THREADS``, default 1).

One timed round is one full training step as the trainer does it: forward,
the model card's default loss, backward, Adam step, on a fixed collated batch
of ``B`` users with ``T``-step clips and ``N`` history segments of ``L`` steps
(``D``-d features). ``extra_info`` carries steps/s and clip-steps/s. The FCN
baselines keep the paper's width (1.0) so their cost is honest.
"""

from __future__ import annotations

import os

import pytest
import torch

import highlightzoo as hz
from highlightzoo.batch import random_batch
from highlightzoo.device import resolve_device
from highlightzoo.losses import get_loss
from highlightzoo.training.optim import make_adam
from highlightzoo.training.trainer import training_step

B, T, N, L, D = 8, 256, 10, 8, 128
DEVICE = resolve_device(os.environ.get("HZ_BENCH_DEVICE", "cpu"))
PRECISION = os.environ.get("HZ_BENCH_PRECISION", "fp32")
# CPU threads: 1 by default, so that timings on a shared machine are not dominated by
# OpenMP threads competing with other processes (set HZ_BENCH_THREADS to change).
THREADS = int(os.environ.get("HZ_BENCH_THREADS", "1"))


@pytest.mark.parametrize("name", hz.list_models())
def test_bench_training_step(benchmark, name):
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=D).to(DEVICE).train()
    loss_fn = get_loss(model.card.default_loss)
    optimizer = make_adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    lengths = [T - 17 * i for i in range(B)]  # padded like a real batch
    counts = [i % (N + 1) for i in range(B)]  # cold-start rows included
    batch = random_batch(B, T, D, N, L, lengths=lengths, history_counts=counts).to(DEVICE)

    def step() -> float:  # the trainer's step (single process)
        loss = training_step(model, model, loss_fn, optimizer, batch, DEVICE, PRECISION)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return float(loss.detach())

    step()  # warm-up (allocator, Adam state)
    loss = benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    assert torch.isfinite(torch.tensor(loss))
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        {
            "device": str(DEVICE),
            "cpu_threads": THREADS,
            "precision": PRECISION,
            "steps_per_s": 1.0 / mean,
            "clip_steps_per_s": sum(lengths) / mean,
            "parameters": sum(p.numel() for p in model.parameters()),
            "shape": {"B": B, "T": T, "N": N, "L": L, "D": D},
        }
    )


@pytest.mark.parametrize("name", ["prnet", "prnet_triplet"])
def test_bench_history_segments_grouped_by_length(benchmark, name):
    """Side by side in one process: history segments encoded in one call over every slot
    (padded to the longest; the default off a CPU) against grouped by length (the default
    on a CPU), at the quick world's batch shape (16 clips of 256 steps, 64-d, up to 14
    segments of 1-46 steps, ~10 on average, per user). ``extra_info["ratio"]`` = one-call time / grouped
    time (medians of interleaved repeats, process CPU seconds)."""
    import time

    torch.set_num_threads(THREADS)
    batch = random_batch(16, 256, 64, 14, 46, seed=0)
    # segment lengths as measured in the quick world's training batches: ~10 steps on
    # average, up to ~46 (exponential, mean 10, cut to 1-46)
    g = torch.Generator().manual_seed(0)
    lengths = (torch.empty(16, 14).exponential_(1 / 10, generator=g).ceil().clamp(1, 46))
    batch.history_mask = torch.arange(46)[None, None, :] < lengths[..., None]
    batch.history = batch.history * batch.history_mask[..., None]
    batch = batch.to(DEVICE)
    steps = {}
    for arm, grouped in (("one_call", False), ("grouped", True)):
        torch.manual_seed(0)
        model = hz.create_model(name, feature_dim=64).to(DEVICE).train()
        model.history_embedding.group_by_length = grouped
        loss_fn = get_loss(model.card.default_loss)
        optimizer = make_adam(model.parameters(), lr=1e-4)
        steps[arm] = (model, loss_fn, optimizer)

    def timed(arm: str) -> float:
        model, loss_fn, optimizer = steps[arm]
        start = time.process_time()
        training_step(model, model, loss_fn, optimizer, batch, DEVICE, PRECISION)
        return time.process_time() - start

    def run() -> dict[str, float]:
        for arm in steps:
            timed(arm)  # warm-up
        times: dict[str, list[float]] = {arm: [] for arm in steps}
        for _ in range(7):
            for arm in steps:
                times[arm].append(timed(arm))
        return {arm: sorted(ts)[len(ts) // 2] for arm, ts in times.items()}

    medians = benchmark.pedantic(run, rounds=1, iterations=1)
    ratio = medians["one_call"] / medians["grouped"]
    benchmark.extra_info.update({"model": name, "ratio": ratio, **medians})
    print(f"\n{name}: one call {medians['one_call'] * 1e3:.1f} ms, grouped "
          f"{medians['grouped'] * 1e3:.1f} ms per training step: {ratio:.2f}x")
