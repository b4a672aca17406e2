"""The benchmark harness: regenerate the PR-Net paper's Tables 1 and 2.

- :mod:`~highlightzoo.bench.presets`: machine-sized presets (world + budget)
- :mod:`~highlightzoo.bench.runner`: the resumable (model, seed) loop
- :mod:`~highlightzoo.bench.backend`: the synthetic world + shared trainer it drives
- :mod:`~highlightzoo.bench.results`: results.json (atomic, timing kept apart)
- :mod:`~highlightzoo.bench.stats`, :mod:`~highlightzoo.bench.tables`,
  :mod:`~highlightzoo.bench.plots`, :mod:`~highlightzoo.bench.report`: tables
  and figures generated from results.json only

Command line: ``highlightzoo bench tables|report|presets``.
"""

from highlightzoo.bench.presets import PRESETS, BenchPreset, EvalSettings, get_preset
from highlightzoo.bench.report import write_report
from highlightzoo.bench.results import load_results, strip_timing
from highlightzoo.bench.runner import run_tables

__all__ = [
    "PRESETS",
    "BenchPreset",
    "EvalSettings",
    "get_preset",
    "load_results",
    "run_tables",
    "strip_timing",
    "write_report",
]
