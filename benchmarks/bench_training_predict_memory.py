"""Memory check of ``Detector.predict`` on a long video with a huge history (not run by CI).

Run: ``python -m pytest benchmarks/bench_training_predict_memory.py -q -s``.

The issue's target: a 20,000-step video with 1,347 history segments (the
largest history in PHD-GIFs' testing.csv) must stay under 4 GiB. Each model
runs in a fresh Python process so its peak resident memory (``VmHWM``,
``peak_rss.py``) is its own; the peak includes the Python + torch runtime (about 0.4 GB).
Features are ``D = 512``-d; history segments are 6-10 steps (3-5 s at 2
steps/s, PHD-GIFs' median 3.1 s).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from peak_rss import PEAK_RSS_SOURCE

import highlightzoo as hz

LIMIT_GIB = 4.0
T, N, D, RATE = 20_000, 1_347, 512, 2.0

SCRIPT = PEAK_RSS_SOURCE + r"""
import json, sys, time
import numpy as np
from highlightzoo.inference import Detector
name, T, N, D, rate = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5])
rng = np.random.default_rng(0)
video = rng.random((T, D), dtype=np.float32)
history = [rng.random((int(rng.integers(6, 11)), D), dtype=np.float32) for _ in range(N)]
det = Detector.from_model(name, feature_dim=D)
start = time.perf_counter()
pred = det.predict(video, history, rate, top_k=5)
seconds = time.perf_counter() - start
assert pred.scores.shape == (T,) and np.isfinite(pred.scores).all()
print(json.dumps({"model": name, "peak_gib": peak_rss_bytes() / 2**30, "seconds": seconds,
                  "segments": len(pred.segments)}))
"""


@pytest.mark.parametrize("name", hz.list_models())
def test_predict_20k_steps_1347_history_segments_under_4_gib(name):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, name, str(T), str(N), str(D), str(RATE)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{name}: peak {report['peak_gib']:.2f} GiB, {report['seconds']:.1f} s")
    assert report["peak_gib"] < LIMIT_GIB
