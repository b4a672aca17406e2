"""Compare two benchmark folders: which model orderings held, which flipped, with paired tests.

Used to say in words what a change of training rules did to the tables (e.g. an
8-epoch budget vs every model trained to convergence). Only the (user, video)
pairs both folders tested count (folders sharing none are refused; the output
says when some are not shared). The comparison uses one AP
protocol for both: per video, the record's ``ap_<protocol>`` when present,
else ``ap`` when the results' own protocol is that one (results made before
protocols used ``steps``).

For every pair of models of a table that both folders ran, the ordering of
their mAPs in each folder and the two-sided Wilcoxon p of their paired
per-video difference in each folder; for every model, the paired difference
of its own per-video AP between the folders (bootstrap interval, Wilcoxon p).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from highlightzoo.bench.results import final_runs
from highlightzoo.bench.stats import pair_id
from highlightzoo.bench.tables import TABLES, table_rows
from highlightzoo.errors import DataFormatError
from highlightzoo.metrics import paired_test


def per_video_ap(results: dict[str, Any], protocol: str) -> dict[str, dict[str, float]]:
    """``{model: {pair_id: seed-averaged AP}}`` under ``protocol`` (models lacking it are left out)."""
    own = {run.get("test", {}).get("protocol", "steps") for run in final_runs(results)}
    by_model: dict[str, list[dict[str, float]]] = {}
    for run in final_runs(results):
        videos = run.get("test", {}).get("videos", [])
        key = f"ap_{protocol}"
        if videos and all(key in v for v in videos):
            field = key
        elif videos and own == {protocol}:
            field = "ap"
        else:
            continue
        # a missing AP (null / NaN: no positive under this protocol) leaves the pair out
        values = {pair_id(v["user"], v["video"]): float("nan") if v[field] is None else float(v[field])
                  for v in videos}
        by_model.setdefault(run["model"], []).append(values)
    out = {}
    for model, seeds in by_model.items():
        keys = sorted(seeds[0])
        if any(sorted(s) != keys for s in seeds):
            raise DataFormatError(f"the seeds of {model} were tested on different videos")
        finite = [k for k in keys if all(np.isfinite(s[k]) for s in seeds)]
        out[model] = {k: float(np.mean([s[k] for s in seeds])) for k in finite}
    return out


@dataclass(frozen=True)
class Ordering:
    """Two models' order in folders A and B (mAP in %, Wilcoxon p of their per-video difference)."""

    table: str
    first: str
    second: str
    diff_a: float
    p_a: float | None
    diff_b: float
    p_b: float | None

    @property
    def held(self) -> bool:
        return bool(np.sign(self.diff_a) == np.sign(self.diff_b))


@dataclass(frozen=True)
class Shift:
    """One model's mAP in A and B and the paired test of B - A over the shared videos
    (``n_videos`` of them; ``n_a``/``n_b``: how many each folder has with a finite AP)."""

    model: str
    map_a: float
    map_b: float
    diff: float
    ci: tuple[float, float]
    p: float | None
    n_videos: int
    n_a: int
    n_b: int


def _paired(x: np.ndarray, y: np.ndarray) -> tuple[float, tuple[float, float], float | None]:
    if len(x) < 2:
        return float(np.mean(x - y) * 100), (float("nan"), float("nan")), None
    t = paired_test(x, y)
    p = None if t.mean_diff == 0 else t.p_value
    return t.mean_diff * 100, (t.ci_low * 100, t.ci_high * 100), p


def compare(a: dict[str, Any], b: dict[str, Any], protocol: str = "steps") -> tuple[list[Ordering], list[Shift]]:
    """Orderings of every table's model pairs in A and B, and each model's shift from A to B.

    Everything is over the videos both folders tested: a shift over a model's shared videos,
    an ordering over the videos both folders tested with both models (so a flip is never the
    work of videos only one folder has). Folders that share no video for a model (another
    world or store) are a :class:`DataFormatError`, not a table of NaN.
    """
    ap_a, ap_b = per_video_ap(a, protocol), per_video_ap(b, protocol)
    shared = [m for m in ap_a if m in ap_b]
    shifts = []
    for model in shared:
        keys = sorted(set(ap_a[model]) & set(ap_b[model]))
        if not keys:
            raise DataFormatError(
                f"the two folders share no tested video for {model} ({len(ap_a[model])} and "
                f"{len(ap_b[model])} videos): compare folders of one world or store"
            )
        x = np.array([ap_b[model][k] for k in keys])
        y = np.array([ap_a[model][k] for k in keys])
        diff, ci, p = _paired(x, y)
        shifts.append(Shift(model, float(y.mean() * 100), float(x.mean() * 100), diff, ci, p,
                            len(keys), len(ap_a[model]), len(ap_b[model])))
    orderings = []
    for table in TABLES:
        rows = [m for m in table_rows(table) if m in shared]
        for first, second in itertools.combinations(rows, 2):
            diffs = []
            keys = sorted(set(ap_a[first]) & set(ap_a[second]) & set(ap_b[first]) & set(ap_b[second]))
            if not keys:
                raise DataFormatError(f"{first} and {second} share no tested video in both folders")
            for ap in (ap_a, ap_b):
                x = np.array([ap[first][k] for k in keys])
                y = np.array([ap[second][k] for k in keys])
                diffs.append(_paired(x, y))
            orderings.append(Ordering(table, first, second, diffs[0][0], diffs[0][2],
                                      diffs[1][0], diffs[1][2]))
    return orderings, shifts


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.001" if value < 1e-3 else f"{value:.3f}"


def compare_markdown(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str,
                     protocol: str = "steps") -> str:
    """The comparison as markdown: per-model shifts, then every ordering, flips first."""
    orderings, shifts = compare(a, b, protocol)
    lines = [f"# {name_a} vs {name_b} ({protocol} protocol)", "",
             f"## Each model: mAP in {name_a} and {name_b}", "",
             f"| model | {name_a} | {name_b} | {name_b} - {name_a} | 95 % CI | Wilcoxon p | videos |",
             "|---|---|---|---|---|---|---|"]
    for s in shifts:
        ci = "n/a" if np.isnan(s.ci[0]) else f"[{s.ci[0]:+.2f}, {s.ci[1]:+.2f}]"
        lines.append(f"| {s.model} | {s.map_a:.2f} | {s.map_b:.2f} | {s.diff:+.2f} | "
                     f"{ci} | {_p(s.p)} | {s.n_videos} |")
    partial = [s for s in shifts if s.n_videos < max(s.n_a, s.n_b)]
    if partial:
        lines += ["", f"Only the videos both folders tested count (e.g. {partial[0].model}: "
                      f"{partial[0].n_a} in {name_a}, {partial[0].n_b} in {name_b}, "
                      f"{partial[0].n_videos} shared); the orderings below too."]
    flips = [o for o in orderings if not o.held]
    lines += ["", f"## Orderings: {len(orderings) - len(flips)} held, {len(flips)} flipped", "",
              f"| table | first | second | first - second in {name_a} | p | "
              f"first - second in {name_b} | p | |", "|---|---|---|---|---|---|---|---|"]
    for o in sorted(orderings, key=lambda o: (o.held, o.table)):
        lines.append(f"| {o.table} | {o.first} | {o.second} | {o.diff_a:+.2f} | {_p(o.p_a)} | "
                     f"{o.diff_b:+.2f} | {_p(o.p_b)} | {'held' if o.held else 'FLIPPED'} |")
    lines += ["", "Differences in AP points (x100) of seed-averaged per-video AP, paired by (user, "
              "video); p: two-sided Wilcoxon signed-rank; CI: paired bootstrap over videos. "
              "Generated by `highlightzoo bench compare`."]
    return "\n".join(lines) + "\n"
