"""History summaries and segment means of L2-normalised steps: time and bytes allocated.

Run: ``OMP_NUM_THREADS=1 python -m pytest benchmarks/bench_history_summary.py -s``
(not run by CI). Side by side with an earlier library: a ``git worktree`` of it with
today's ``benchmarks/`` copied in, run with ``PYTHONPATH=<worktree>`` (docs/performance.md,
"History summaries without copies").

Each case times one function of the zoo (median of repeats, one thread) and counts the
bytes its ops allocate (every dispatched op's outputs, views left out): exact, so a
temporary copy of the history shows up whatever the machine. Cases:

- ``avhd_items``: A-VHD's history items (``history_video_items``);
- ``phdgifs_history``: PHD-GIFs' history segment means (``history_segment_features``);
- ``phdgifs_segments``: PHD-GIFs' 5-s segment means of the video (``segment_features``);
- ``phdgifs_step``: PHD-GIFs' forward, loss and backward (training batch only);

each at two sizes: ``train8192``, a training batch at the reference's 8192-d C3D features
(16 users, 20 history segments of up to 16 steps, 256-step clips), and ``predict512``,
the largest real history (1,347 segments of up to 54 steps, one user, 512-d, a
20,000-step video), the case of ``bench_training_predict_memory.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
import torch

import highlightzoo as hz
from highlightzoo.batch import Batch, random_batch
from highlightzoo.losses import get_loss
from highlightzoo.models.components.norm import history_video_items
from highlightzoo.models.phdgifs import history_segment_features
from highlightzoo.models.video2gif import segment_features

#: (users, clip steps, feature dim, history segments, steps per segment)
SIZES = {"train8192": (16, 256, 8192, 20, 16), "predict512": (1, 20_000, 512, 1347, 54)}
REPEATS = 5

CASES: dict[str, Callable[[Batch], object]] = {
    "avhd_items": lambda b: history_video_items(b.history, b.history_mask, b.history_video),
    "phdgifs_history": lambda b: history_segment_features(b.history, b.history_mask),
    "phdgifs_segments": lambda b: segment_features(b, 5.0, True),
}


def phdgifs_training_step(feature_dim: int) -> Callable[[Batch], object]:
    """PHD-GIFs' forward, loss and backward (no optimiser step): its two poolings are most
    of the work, the MLP sees one row per segment."""
    torch.manual_seed(0)
    model = hz.create_model("phdgifs", feature_dim=feature_dim).train()
    loss_fn = get_loss(model.card.default_loss)

    def step(batch: Batch) -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(batch), batch).backward()

    return step


def allocated_bytes(fn: Callable[[], object]) -> int:
    """Bytes of every tensor the dispatched ops in ``fn()`` return, views left out."""
    total = 0

    class Count(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            nonlocal total
            out = func(*args, **(kwargs or {}))
            if not func.is_view:
                for t in out if isinstance(out, (tuple, list)) else (out,):
                    if isinstance(t, torch.Tensor):
                        total += t.numel() * t.element_size()
            return out

    with Count():
        fn()
    return total


@pytest.fixture(scope="module", params=list(SIZES))
def sized_batch(request) -> tuple[str, Batch]:
    users, steps, dim, segments, segment_steps = SIZES[request.param]
    return request.param, random_batch(users, steps, dim, segments, segment_steps, seed=0)


@pytest.mark.parametrize("case", [*CASES, "phdgifs_step"])
def test_history_summary(benchmark, sized_batch, case: str) -> None:
    size, batch = sized_batch
    torch.set_num_threads(1)
    if case == "phdgifs_step":
        if size != "train8192":
            pytest.skip("a training step is timed on the training batch only")
        step = phdgifs_training_step(batch.video.shape[-1])

        def run() -> object:
            return step(batch)
    else:
        def run() -> object:
            with torch.no_grad():
                return CASES[case](batch)

    run()  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    allocated = allocated_bytes(run)
    read = sum(x.numel() * 4 for x, used in [(batch.history, case != "phdgifs_segments"),
                                              (batch.video, case.startswith("phdgifs_s"))] if used)
    benchmark.extra_info.update({"case": case, "size": size, "seconds": seconds,
                                 "allocated_bytes": allocated, "input_bytes": read})
    benchmark.pedantic(run, rounds=1, iterations=1)
    print(f"\n{case} {size}: {seconds * 1e3:.1f} ms, allocates {allocated / 2**20:.1f} MiB "
          f"(its input: {read / 2**20:.1f} MiB)")
