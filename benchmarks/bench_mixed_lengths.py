"""FCSN and A-VHD on batches whose videos differ in length, at the quick preset's shapes.

Not run by CI. Two cases per model, each a ratio measured in one process (medians of
interleaved repeats, process CPU seconds, :func:`bench_reference.interleaved`):

- ``train``: a training step (forward, the card's loss, backward, Adam) on 16 clips of
  mixed lengths against the same step on 16 full 256-step clips. The mixed lengths are
  drawn as the quick world's training clips are (70 % of them full length, the rest
  shorter: about 6 distinct lengths per batch of 16, ``MIXED_CLIPS``). ``ratio`` = mixed
  time / full time: what mixed lengths cost over a batch of one length.
- ``eval``: a no-grad forward of 8 whole videos of similar lengths (the middle batch of the
  quick world's validation videos sorted by length, as the evaluator batches them;
  ``EVAL_LENGTHS``) against one forward per video. ``ratio`` = per-video time / batch time.

The same file runs on an earlier commit (a git worktree with this ``benchmarks/`` copied in,
run from the worktree) for the side by side in docs/performance.md ("Mixed lengths in one
forward"):

    OMP_NUM_THREADS=1 python -m pytest benchmarks/bench_mixed_lengths.py -s
"""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
import torch
from bench_reference import interleaved

import highlightzoo as hz
from highlightzoo.batch import Batch, random_batch
from highlightzoo.losses import get_loss
from highlightzoo.training.optim import make_adam

#: the quick preset: 64-d features, FCSN/A-VHD at width 1/4, 16 clips of 256 steps
DIM, WIDTH, CLIPS, CLIP_LEN, HISTORY_SEGMENTS, SEGMENT_STEPS = 64, 0.25, 16, 256, 10, 8
#: share of the quick world's training clips that are full length (4,027 clips, 70 %)
FULL_SHARE = 0.70
#: the quick world's middle validation batch: 8 whole videos, sorted by length
EVAL_LENGTHS = [342, 342, 348, 356, 357, 357, 363, 367]


def mixed_clip_lengths(seed: int = 0) -> list[int]:
    """16 clip lengths: full with probability ``FULL_SHARE``, else uniform in [32, 255]."""
    rng = np.random.default_rng(seed)
    return [CLIP_LEN if rng.random() < FULL_SHARE else int(rng.integers(32, CLIP_LEN))
            for _ in range(CLIPS)]


MIXED_CLIPS = mixed_clip_lengths()


def one_row(batch: Batch, i: int) -> Batch:
    """``batch.row(i)``; on an earlier commit without it (a side by side), the row with its
    video cut to its real length and its history left padded."""
    if hasattr(batch, "row"):
        return batch.row(i)
    n, one = int(batch.video_mask[i].sum()), slice(i, i + 1)
    tensors = {f.name: getattr(batch, f.name)[one] for f in fields(batch)
               if isinstance(getattr(batch, f.name), torch.Tensor)}
    tensors.update(video=batch.video[one, :n], video_mask=batch.video_mask[one, :n],
                   labels=batch.labels[one, :n])
    return replace(batch, **tensors, user_ids=batch.user_ids[one],
                   video_ids=batch.video_ids[one], host=None)


@pytest.mark.parametrize("model", ["fcsn", "avhd"])
def test_mixed_lengths_training_step(benchmark, model: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = hz.create_model(model, feature_dim=DIM, width_mult=WIDTH).train()
    optimizer = make_adam(net.parameters(), lr=1e-3)
    loss_fn = get_loss(net.card.default_loss)
    batches = {
        "mixed": random_batch(CLIPS, CLIP_LEN, DIM, HISTORY_SEGMENTS, SEGMENT_STEPS, seed=1,
                              lengths=MIXED_CLIPS),
        "full": random_batch(CLIPS, CLIP_LEN, DIM, HISTORY_SEGMENTS, SEGMENT_STEPS, seed=1),
    }
    batches = {k: b.with_host_counts(b.lengths.tolist(), HISTORY_SEGMENTS // 2)
               for k, b in batches.items()}  # the collate's counts, as the trainer's batches

    def step(batch) -> None:  # noqa: ANN001
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(batch), batch).backward()
        optimizer.step()

    fns = {name: (lambda b=b: step(b)) for name, b in batches.items()}
    times = benchmark.pedantic(lambda: interleaved(fns, 7), rounds=1, iterations=1)
    ratio = times["mixed"] / times["full"]
    benchmark.extra_info.update({"model": model, "ratio": ratio, "lengths": MIXED_CLIPS,
                                 **{f"{k}_s": v for k, v in times.items()}})
    print(f"\n{model} training step: mixed {times['mixed'] * 1e3:.0f} ms, full "
          f"{times['full'] * 1e3:.0f} ms, mixed/full {ratio:.2f} "
          f"({len(set(MIXED_CLIPS))} distinct lengths)")


@pytest.mark.parametrize("model", ["fcsn", "avhd"])
def test_mixed_lengths_evaluation(benchmark, model: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = hz.create_model(model, feature_dim=DIM, width_mult=WIDTH).eval()
    batch = random_batch(len(EVAL_LENGTHS), max(EVAL_LENGTHS), DIM, HISTORY_SEGMENTS,
                         SEGMENT_STEPS, seed=2, lengths=EVAL_LENGTHS)
    rows = [one_row(batch, i) for i in range(len(batch))]

    @torch.no_grad()
    def one_batch() -> list[torch.Tensor]:
        scores = net(batch).scores
        return [scores[i, :n] for i, n in enumerate(EVAL_LENGTHS)]

    @torch.no_grad()
    def per_video() -> list[torch.Tensor]:
        return [net(row).scores[0] for row in rows]

    for got, want in zip(one_batch(), per_video(), strict=True):
        assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    times = benchmark.pedantic(
        lambda: interleaved({"per_video": per_video, "batch": one_batch}, 7),
        rounds=1, iterations=1)
    ratio = times["per_video"] / times["batch"]
    benchmark.extra_info.update({"model": model, "ratio": ratio,
                                 **{f"{k}_s": v for k, v in times.items()}})
    print(f"\n{model} evaluation of {len(EVAL_LENGTHS)} videos: batch "
          f"{times['batch'] * 1e3:.0f} ms, one forward per video {times['per_video'] * 1e3:.0f} "
          f"ms, per-video/batch {ratio:.2f}")
