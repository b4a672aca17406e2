"""bench compare: orderings that held or flipped between two results folders."""

from __future__ import annotations

import pytest
from test_bench_tables import LEVEL, make_results

from highlightzoo.bench import tables
from highlightzoo.bench.compare import compare, compare_markdown
from highlightzoo.errors import DataFormatError


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


def _rename_videos(results: dict, suffix: str, only_first: int | None = None) -> dict:
    for run in results["runs"]:
        for i, v in enumerate(run["test"]["videos"]):
            if only_first is None or i < only_first:
                v["video"] += suffix
    return results


def test_folders_of_another_world_are_refused_not_a_table_of_nan():
    """Two folders that share no video gave NaN rows, and orderings over each folder's own
    videos called held or flipped, without a word."""
    a = make_results(["prnet", "avhd"])
    b = _rename_videos(make_results(["prnet", "avhd"]), "-other-world")
    with pytest.raises(DataFormatError, match="share no tested video for prnet"):
        compare(a, b)


def test_only_the_videos_both_folders_tested_count_orderings_included():
    a = make_results(["prnet", "avhd"])
    b = _rename_videos(make_results(["prnet", "avhd"]), "-x", only_first=4)  # 8 of 12 shared
    orderings, shifts = compare(a, b)
    assert {(s.n_videos, s.n_a, s.n_b) for s in shifts} == {(8, 12, 12)}
    same, _ = compare(a, a)
    assert orderings[0].diff_a != same[0].diff_a  # A's ordering over the 8 shared videos only
    text = compare_markdown(a, b, "A", "B")
    assert "Only the videos both folders tested count (e.g. prnet: 12 in A, 12 in B, 8 shared)" in text
    assert "nan" not in text
