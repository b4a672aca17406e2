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
from collections.abc import Callable

import pytest
import torch
from bench_reference import interleaved

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
    if not hz.get_model_card(name).trainable:
        pytest.skip(f"{name} has no trainable parameters (a floor): no training step")
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

    def arm_step(arm: str) -> Callable[[], object]:
        model, loss_fn, optimizer = steps[arm]
        return lambda: training_step(model, model, loss_fn, optimizer, batch, DEVICE, PRECISION)

    def run() -> dict[str, float]:
        return interleaved({arm: arm_step(arm) for arm in steps}, repeats=7)

    medians = benchmark.pedantic(run, rounds=1, iterations=1)
    ratio = medians["one_call"] / medians["grouped"]
    benchmark.extra_info.update({"model": name, "ratio": ratio, **medians})
    print(f"\n{name}: one call {medians['one_call'] * 1e3:.1f} ms, grouped "
          f"{medians['grouped'] * 1e3:.1f} ms per training step: {ratio:.2f}x")


@pytest.mark.parametrize(("rows", "steps"), [(16, 256), (16, 64), (60, 16), (40, 8)])
def test_bench_time_major_conv(benchmark, rows, steps):
    """Side by side in one process: a 64 -> 64, kernel-3 conv (forward + backward) on
    channels-first memory (``Conv1d``, the U-net's form before ``conv_steps``) against the
    same conv on time-major memory (:func:`~highlightzoo.models.components.steps.conv_steps`,
    a channels-last 2-D conv). Shapes of PR-Net's target clips and history groups on the
    quick world. ``extra_info["ratio"]`` = channels-first time / time-major time (medians of
    interleaved repeats, process CPU seconds)."""
    from highlightzoo.models.components.steps import conv_steps

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(64, 64, 3, padding=1).to(DEVICE)
    first = torch.randn(rows, 64, steps, device=DEVICE, requires_grad=True)
    major = torch.randn(rows, steps, 64, device=DEVICE, requires_grad=True)
    # dense upstream gradients in each side's own layout, as inside a network (the expanded
    # gradient of a .sum() would time another backward path)
    grad_first, grad_major = torch.randn_like(first), torch.randn_like(major)
    arms = {"channels_first": lambda: conv(first).backward(grad_first),
            "time_major": lambda: conv_steps(major, conv).backward(grad_major)}

    def run() -> dict[str, float]:
        return interleaved(arms, repeats=25)

    medians = benchmark.pedantic(run, rounds=1, iterations=1)
    ratio = medians["channels_first"] / medians["time_major"]
    benchmark.extra_info.update({"shape": [rows, steps, 64], "ratio": ratio, **medians})
    print(f"\nconv {rows} x {steps} x 64: channels-first {medians['channels_first'] * 1e3:.2f} "
          f"ms, time-major {medians['time_major'] * 1e3:.2f} ms: {ratio:.2f}x")


@pytest.mark.parametrize(("dim", "batch_size"), [(64, 16), (512, 16), (4096, 1)])
def test_bench_unet_kernel_layout(benchmark, dim, batch_size):
    """Side by side in one process: PR-Net's training step with its U-net kernels stored
    contiguous (before) and channels-last (the default: the layout the backward returns
    their gradients in, so autograd accumulates them without a copy). Clips of 256 steps,
    20 history segments of up to 16 steps, width = ``dim``. ``extra_info``: ``ratio`` =
    contiguous time / channels-last time (medians of interleaved repeats, process CPU
    seconds) and the bytes every op of one forward + backward allocates, per layout (exact)."""
    from bench_history_summary import allocated_bytes

    from highlightzoo.models.components.steps import set_kernel_layout

    torch.set_num_threads(THREADS)
    batch = random_batch(batch_size, 256, dim, 20, 16, seed=0,
                         lengths=[256 - 7 * i for i in range(batch_size)]).to(DEVICE)
    arms, allocated = {}, {}
    for layout in ("contiguous", "channels_last"):
        torch.manual_seed(0)
        model = hz.create_model("prnet", feature_dim=dim).to(DEVICE).train()
        for conv in (m for m in model.modules() if isinstance(m, torch.nn.Conv1d)):
            set_kernel_layout(conv, layout)
        loss_fn = get_loss(model.card.default_loss)
        allocated[layout] = allocated_bytes(
            lambda m=model, f=loss_fn: f(m(batch), batch).backward())
        optimizer = make_adam(model.parameters(), lr=1e-4)
        arms[layout] = (lambda m=model, f=loss_fn, o=optimizer:
                        training_step(m, m, f, o, batch, DEVICE, PRECISION))

    medians = benchmark.pedantic(lambda: interleaved(arms, repeats=3 if dim > 512 else 7),
                                 rounds=1, iterations=1)
    ratio = medians["contiguous"] / medians["channels_last"]
    benchmark.extra_info.update({"dim": dim, "batch": batch_size, "ratio": ratio, **medians,
                                 "allocated_bytes": allocated})
    print(f"\nPR-Net {dim}-d, batch {batch_size}: contiguous kernels {medians['contiguous'] * 1e3:.1f}"
          f" ms, channels-last {medians['channels_last'] * 1e3:.1f} ms per step: {ratio:.2f}x; "
          f"allocated per forward + backward {allocated['contiguous'] / 2**20:.0f} -> "
          f"{allocated['channels_last'] / 2**20:.0f} MiB")


@pytest.mark.parametrize("name", ["video2gif", "phdgifs"])
def test_bench_dropout_mask(benchmark, name):
    """Side by side in one process: the model's training step with torch's ``nn.Dropout``
    (before: a ``bernoulli_`` mask) and with the zoo's ``Dropout`` (the default: a uniform
    mask on a CPU; docs/performance.md, "Dropout on a CPU"), at the quick preset's shapes
    (16 clips of 256 steps, 64-d, Video2GIF at width 1/4). ``extra_info["ratio"]`` =
    ``nn.Dropout`` time / zoo time (medians of interleaved repeats, process CPU seconds)."""
    from highlightzoo.models.components.dropout import Dropout

    torch.set_num_threads(THREADS)
    batch = random_batch(16, 256, 64, 14, 10, seed=0,
                         lengths=[256 - 9 * i for i in range(16)]).to(DEVICE)
    arms = {}
    for arm in ("torch_dropout", "zoo_dropout"):
        torch.manual_seed(0)
        model = hz.create_model(name, feature_dim=64,
                                **({"width_mult": 0.25} if name == "video2gif" else {}))
        if arm == "torch_dropout":
            for parent in list(model.modules()):
                for child_name, child in parent.named_children():
                    if isinstance(child, Dropout):
                        setattr(parent, child_name, torch.nn.Dropout(child.p))
        model = model.to(DEVICE).train()
        loss_fn = get_loss(model.card.default_loss)
        optimizer = make_adam(model.parameters(), lr=1e-4)
        arms[arm] = (lambda m=model, f=loss_fn, o=optimizer:
                     training_step(m, m, f, o, batch, DEVICE, PRECISION))

    medians = benchmark.pedantic(lambda: interleaved(arms, repeats=7), rounds=1, iterations=1)
    ratio = medians["torch_dropout"] / medians["zoo_dropout"]
    benchmark.extra_info.update({"model": name, "ratio": ratio, **medians})
    print(f"\n{name}: nn.Dropout {medians['torch_dropout'] * 1e3:.1f} ms, zoo Dropout "
          f"{medians['zoo_dropout'] * 1e3:.1f} ms per training step: {ratio:.2f}x")
