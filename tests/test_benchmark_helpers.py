"""Helpers of the benchmark suite that a wrong answer would hide in (the suite itself is not
run by CI: docs/performance.md, "Speed suite")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
sys.path.insert(0, {benchmarks!r})
from peak_rss import PEAK_RSS_SOURCE
namespace = {{}}
exec(PEAK_RSS_SOURCE, namespace)  # as the memory benchmarks' child scripts run it
print(namespace["peak_rss_bytes"]())
"""


def test_a_child_process_reports_its_own_peak_memory_not_its_parents():
    """The memory benchmarks run each case in a child process; its peak must not include the
    parent's (``ru_maxrss`` does on Linux: a 12 GiB pytest made every model read 12 GiB)."""
    ballast = np.ones(300 * 2**20 // 8)  # this process: > 300 MiB resident
    ballast += 1.0
    proc = subprocess.run([sys.executable, "-c", CHILD.format(benchmarks=str(ROOT / "benchmarks"))],
                          capture_output=True, text=True, timeout=120, check=True)
    child_peak = int(proc.stdout.strip())
    assert 0 < child_peak < 200 * 2**20, child_peak
    assert float(ballast[0]) == 2.0
