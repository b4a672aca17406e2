"""Speed suite set-up: collect ``bench_*.py`` files here (CI's ``tests/`` run never sees them).

Run: ``python -m pytest benchmarks --benchmark-json=bench.json`` (pytest-benchmark);
``--benchmark-only`` skips plain checks. See benchmarks/README.md.
"""

from __future__ import annotations

import pytest


def pytest_collect_file(file_path, parent):
    """Collect ``benchmarks/bench_*.py`` as test modules (the project default is ``test_*.py``)."""
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest collects it already
    return pytest.Module.from_parent(parent, path=file_path)
