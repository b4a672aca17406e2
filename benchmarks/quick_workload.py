"""The 8-epoch quick workload of earlier releases, run by this checkout (side-by-side timing).

    python benchmarks/quick_workload.py OUT JOBS MODEL... [--cache DIR]

The earlier releases' ``bench tables --preset quick`` (8 passes of 25 steps, last-video
clips, patience 3 passes, per-step AP) expressed as a preset of today's code, so the same
runs can be timed against an earlier checkout running its own ``bench tables --preset quick
--seeds 1 --models MODEL...`` on the same machine (docs/performance.md). Prints the wall
time; the results folder is ``OUT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from highlightzoo.bench import get_preset, run_tables


def eight_epoch_preset():
    """The 8-epoch workload as a preset (the quick world, today's training rules otherwise)."""
    return dataclasses.replace(
        get_preset("quick"), name="quick-8epoch-workload", epochs=8, max_steps=None,
        eval_every=None, patience=3, sampling="last_video", protocol="steps", model_overrides={},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("jobs", type=int)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--cache", type=Path, default=None, help="world cache folder")
    args = parser.parse_args()
    start = time.monotonic()
    run_tables(eight_epoch_preset(), args.out, seeds=1, models=args.models, cache_dir=args.cache,
               quiet=True, jobs=args.jobs, report=False)
    print(f"wall {time.monotonic() - start:.1f} s")


if __name__ == "__main__":  # the guard: run_tables(jobs > 1) starts worker processes
    main()
