"""Regenerate a benchmark folder's tables and plots from its results.json alone.

This is the only place tables and figures are written (``bench tables``
calls it at the end; ``bench report DIR`` calls it on its own), so every
number in them traces back to results.json.
"""

from __future__ import annotations

import re
from pathlib import Path

from highlightzoo.bench.plots import map_bar_chart, matplotlib_available, score_trace_figure
from highlightzoo.bench.results import load_results
from highlightzoo.bench.tables import TABLES, build_table, table_csv, table_markdown
from highlightzoo.errors import ConfigError
from highlightzoo.io import atomic_write_text


def write_report(folder: Path, *, plots: bool = True) -> list[Path]:
    """Write ``table{1,2}.md``/``.csv`` and, with matplotlib, the figures; return the paths."""
    folder = Path(folder)
    results = load_results(folder)
    written: list[Path] = []
    for table in TABLES:
        rows = build_table(table, results)
        for suffix, text in ((".md", table_markdown(table, rows, results)),
                             (".csv", table_csv(rows))):
            path = folder / f"{table}{suffix}"
            atomic_write_text(path, text)
            written.append(path)
        if plots and matplotlib_available():
            written.append(map_bar_chart(table, rows, folder / f"{table}_map.png"))
    if plots and matplotlib_available():
        trace = score_trace_figure(results, folder / "score_traces.png")
        if trace is not None:
            written.append(trace)
    return written


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN generated from {name} -->", f"<!-- END generated from {name} -->"


def embed_table(readme: Path, folder: Path, table: str = "table1") -> Path:
    """Copy ``folder/<table>.md`` into ``readme`` between its BEGIN/END generated markers.

    The markers name the source (e.g. ``quick/table1.md``), so a README can
    show a generated table without anyone typing its numbers. The heading line
    of the table file is left out (the README has its own headings).
    """
    readme, folder = Path(readme), Path(folder)
    name = f"{folder.name}/{table}.md"
    begin, end = _markers(name)
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise ConfigError(f"{readme} has no '{begin}' ... '{end}' block to fill")
    body = (folder / f"{table}.md").read_text(encoding="utf-8").split("\n", 1)[1].strip()
    atomic_write_text(readme, pattern.sub(lambda _m: f"{begin}\n{body}\n{end}", text))
    return readme
