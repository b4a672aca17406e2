"""Regenerate a benchmark folder's tables and plots from its results.json alone.

This is the only place tables and figures are written (``bench tables``
calls it at the end; ``bench report DIR`` calls it on its own), so every
number in them traces back to results.json.
"""

from __future__ import annotations

import re
from pathlib import Path

from highlightzoo.bench.history_value import write_history_value
from highlightzoo.bench.plots import (
    learning_curve_figure,
    map_bar_chart,
    matplotlib_available,
    score_trace_figure,
)
from highlightzoo.bench.results import RESULTS_FILE, load_results, naming_file
from highlightzoo.bench.tables import TABLES, build_table, table_csv, table_markdown
from highlightzoo.bench.world_probes import write_world_probes
from highlightzoo.errors import ConfigError
from highlightzoo.io import atomic_write_text


def write_report(folder: Path, *, plots: bool = True) -> list[Path]:
    """Write ``table{1,2}.md``/``.csv`` and, with matplotlib, the figures; return the paths."""
    folder = Path(folder)
    results = load_results(folder)
    with naming_file(folder / RESULTS_FILE):
        return _write_report(folder, results, plots)


def _write_report(folder: Path, results: dict, plots: bool) -> list[Path]:
    written: list[Path] = []
    for table in TABLES:
        rows = build_table(table, results)
        for suffix, text in ((".md", table_markdown(table, rows, results)),
                             (".csv", table_csv(rows))):
            path = folder / f"{table}{suffix}"
            atomic_write_text(path, text)
            written.append(path)
        if plots and matplotlib_available():
            ran = [r for r in rows if not r.paper_only]
            written.append(map_bar_chart(table, ran, folder / f"{table}_map.png"))
            curves = learning_curve_figure(table, results, folder / f"{table}_curves.png")
            if curves is not None:
                written.append(curves)
    written += write_history_value(folder, results, plots=plots and matplotlib_available())
    if results.get("world_probes"):
        written += write_world_probes(folder, {results["world"].get("preset", "world"): results["world_probes"]})
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
    text, pattern, (begin, end) = readme_block(readme, folder, table)
    body = (folder / f"{table}.md").read_text(encoding="utf-8").split("\n", 1)[1].strip()
    atomic_write_text(readme, pattern.sub(lambda _m: f"{begin}\n{body}\n{end}", text))
    return readme


def readme_block(
    readme: Path, folder: Path, table: str = "table1"
) -> tuple[str, re.Pattern, tuple[str, str]]:
    """The text of ``readme``, the pattern of its generated block for ``folder/<table>.md`` and
    the block's two markers; a :class:`ConfigError` naming the file when it cannot be read or
    has no such block (checked before a report is regenerated)."""
    begin, end = _markers(f"{Path(folder).name}/{table}.md")
    try:
        text = Path(readme).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the README to fill, {str(readme)!r}: "
                          f"{getattr(err, 'strerror', None) or err}") from None
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise ConfigError(f"{readme} has no '{begin}' ... '{end}' block to fill")
    return text, pattern, (begin, end)
