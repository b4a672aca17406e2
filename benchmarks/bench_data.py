"""Speed of the data layer (pytest-benchmark; not run by CI).

Run: ``python -m pytest benchmarks/bench_data.py --benchmark-only -q``.
The full ``quick`` preset is generated once per session into a temp folder
(about 13 s and 400 MB on 2 CPU cores).
"""

from __future__ import annotations

import pytest

from highlightzoo.data import FeatureStore, HighlightDataset, collate
from highlightzoo.data.stats import store_statistics
from highlightzoo.data.synthetic import synthesize


@pytest.fixture(scope="session")
def quick_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "quick.h5"
    synthesize("quick", 0, path, progress=False)
    return path


def test_bench_synthesize_tiny(benchmark, tmp_path):
    benchmark(lambda: synthesize("tiny", 0, tmp_path / "t.h5", progress=False))


def test_bench_open_quick_with_nan_scan(benchmark, quick_path):
    store = benchmark(lambda: FeatureStore(quick_path))
    stats = store_statistics(store)
    # acceptance figures, printed for the report (not asserted here)
    print(f"\nquick: 1:{stats['positive_to_unlabeled']:.1f} target, "
          f"history median {stats['history_segments_per_user']['median']}")  # fmt: skip


def test_bench_train_batch_of_32(benchmark, quick_path):
    ds = HighlightDataset(quick_path, "train", mode="train", clip_len=256)

    def batch():
        return collate([ds[i] for i in range(32)])

    out = benchmark(batch)
    assert out.video.shape[0] == 32


def test_bench_eval_item(benchmark, quick_path):
    ds = HighlightDataset(quick_path, "test", mode="eval")
    benchmark(lambda: collate([ds[0]]))
