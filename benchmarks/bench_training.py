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
from highlightzoo.device import autocast, resolve_device
from highlightzoo.losses import get_loss
from highlightzoo.training.trainer import zero_tie

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
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    lengths = [T - 17 * i for i in range(B)]  # padded like a real batch
    counts = [i % (N + 1) for i in range(B)]  # cold-start rows included
    batch = random_batch(B, T, D, N, L, lengths=lengths, history_counts=counts).to(DEVICE)

    def step() -> float:
        with autocast(DEVICE, PRECISION):
            loss = loss_fn(model(batch), batch) + zero_tie(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
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
