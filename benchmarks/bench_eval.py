"""Evaluation throughput: the whole evaluation pipeline over an HDF5 feature store.

What is timed is what validation and testing do every epoch: read whole
target videos and history segments from the store, collate, run the model
(untrained weights: speed does not depend on them), compute per-video AP,
nMSD and hit@5. ``extra_info`` gives video steps per second and the model's
forward FLOPs (``torch.utils.flop_counter``) over the set, so achieved FLOP/s =
FLOPs / mean time (end to end, input pipeline and metrics included). Runs on
CUDA when available. Data loading alone is timed in ``bench_data.py``.

The store is random (non-negative features, 2 s highlight segments, 8 history
segments per user) so sizes are fixed here and independent of the synthetic
world presets: ``USERS`` users with ``STEPS``-step target videos of ``DIM``-d
features.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from highlightzoo.data.dataset import HighlightDataset
from highlightzoo.data.store import StoreWriter
from highlightzoo.models import create_model, get_model_card
from highlightzoo.training.evaluation import evaluate_model

USERS, STEPS, DIM, RATE = 32, 1024, 64, 2.0
MODELS = ["prnet", "fcsn", "avhd", "phdgifs", "video2gif"]
# The benchmark presets' width for the models sized for 8192-d C3D input (bench/presets.py).
OVERRIDES = {"fcsn": {"width_mult": 0.25}, "avhd": {"width_mult": 0.25},
             "video2gif": {"width_mult": 0.25}}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("store") / "bench.h5"
    with StoreWriter(path, DIM, source="benchmark") as w:
        for u in range(USERS):
            w.add_video(f"t{u}", rng.random((STEPS, DIM), dtype=np.float32), RATE)
            w.add_video(f"h{u}", rng.random((256, DIM), dtype=np.float32), RATE)
            start = float(rng.uniform(0, STEPS / RATE - 4))
            history = [(f"h{u}", 10.0 * j, 10.0 * j + 3.0) for j in range(8)]
            w.add_user(f"u{u}", f"t{u}", [(start, start + 2.0)], history)
        # the test split only: a store may not put a user in two splits (docs/data-format.md)
        w.set_split("test", [f"u{u}" for u in range(USERS)])
    return path


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def forward_flops(model: torch.nn.Module, data: HighlightDataset, batch_size: int) -> int:
    """FLOPs of the model's forward passes over the whole eval set (torch's FLOP counter)."""
    from torch.utils.data import DataLoader
    from torch.utils.flop_counter import FlopCounterMode

    from highlightzoo.data.dataset import collate

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        for batch in DataLoader(data, batch_size=batch_size, collate_fn=collate):
            model(batch.to(DEVICE))
    return int(counter.get_total_flops())


@pytest.mark.parametrize("name", MODELS)
def test_evaluation_throughput(benchmark, store_path, name):
    torch.manual_seed(0)
    model = create_model(name, DIM, **OVERRIDES.get(name, {})).to(DEVICE).eval()
    data = HighlightDataset(store_path, "test", mode="eval",
                            history_cap=get_model_card(name).history_cap)
    result = benchmark.pedantic(
        evaluate_model, args=(model, data, DEVICE), kwargs={"batch_size": 8},
        rounds=2, iterations=1, warmup_rounds=1,
    )
    assert result.n_pairs == USERS  # every video was scored
    seconds = benchmark.stats.stats.mean
    flops = forward_flops(model, data, 8)
    benchmark.extra_info.update(
        {"device": DEVICE, "videos": USERS, "steps_per_video": STEPS, "feature_dim": DIM,
         "steps_per_s": USERS * STEPS / seconds, "videos_per_s": USERS / seconds,
         "forward_flops": flops, "achieved_flops_per_s": flops / seconds}
    )

