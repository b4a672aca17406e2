"""bench compare: orderings that held or flipped between two results folders."""

from __future__ import annotations

from test_bench_tables import LEVEL, make_results

from highlightzoo.bench import tables
from highlightzoo.bench.compare import compare, compare_markdown


def test_a_flip_is_found_and_a_kept_order_is_held(monkeypatch):
    a = make_results(["prnet", "avhd", "fcsn"])
    monkeypatch.setitem(LEVEL, "fcsn", 0.55)  # FCSN now above A-VHD, still below PR-Net
    b = make_results(["prnet", "avhd", "fcsn"])
    orderings, shifts = compare(a, b)
    by_pair = {(o.first, o.second): o for o in orderings if o.table == "table1"}
    assert by_pair[("fcsn", "avhd")].held is False and by_pair[("fcsn", "prnet")].held is True
    assert by_pair[("fcsn", "avhd")].p_b is not None and by_pair[("fcsn", "avhd")].p_b < 0.05
    fcsn = next(s for s in shifts if s.model == "fcsn")
    assert fcsn.diff > 20 and fcsn.ci[0] > 0 and fcsn.n_videos == 12
    text = compare_markdown(a, b, "A", "B")
    assert "FLIPPED" in text and "| fcsn | 30" in text.replace("  ", " ")
    assert all(o.first in tables.table_rows(o.table) for o in orderings)
