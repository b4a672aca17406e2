"""Figures of a benchmark (needs the ``plot`` extra: matplotlib).

- ``table1_map.png`` / ``table2_map.png``: mAP per model with both 95 %
  intervals (videos: thick bar, seeds: thin bar) and the paper's mAP as a
  marker (different data: shown for shape, not for equality).
- ``table1_curves.png`` / ``table2_curves.png``: validation mAP against
  optimiser steps per model (mean over the seeds still running at that step,
  band: min to max over them); a dot marks each run's stop, hollow when the
  run hit the step cap (not converged).
- ``score_traces.png``: for the few traced test videos, the ground truth,
  PR-Net's scores and the strongest baseline's scores over time (first seed;
  scores min-max scaled per video, since only their order matters to AP).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from highlightzoo.bench.results import final_runs
from highlightzoo.bench.tables import REFERENCE, TITLES, Row, best_baseline, summaries, table_rows
from highlightzoo.io import atomic_write_bytes


def matplotlib_available() -> bool:
    """True when the ``plot`` extra is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def map_bar_chart(table: str, rows: list[Row], path: Path) -> Path:
    """Bar chart of our mAP with the video and seed intervals, paper mAP as markers."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(rows) + 2), 3.8))
    x = np.arange(len(rows))
    ran = [r.summary is not None for r in rows]
    means = np.array([r.summary.map if r.summary else np.nan for r in rows])
    ax.bar(x[ran], means[ran], color=["#d95f02" if r.model == REFERENCE else "#7570b3"
                                      for r in rows if r.summary], label="ours (mean over seeds)")
    for xi, r in zip(x, rows, strict=True):
        if r.summary is None:
            ax.text(xi, 0, "not run", rotation=90, ha="center", va="bottom", fontsize=8)
            continue
        if r.summary.ci_videos:
            lo, hi = r.summary.ci_videos
            ax.plot([xi, xi], [lo, hi], color="black", lw=3, solid_capstyle="butt")
        if r.summary.ci_seeds:
            lo, hi = r.summary.ci_seeds
            ax.errorbar(xi + 0.15, r.summary.map, yerr=[[r.summary.map - lo], [hi - r.summary.map]],
                        color="grey", lw=1, capsize=3)
    paper = np.array([r.paper_map if r.paper_map is not None else np.nan for r in rows])
    ax.plot(x, paper, "k_", markersize=18, mew=2, label="paper (other data)")
    ax.set_xticks(x, [r.model for r in rows], rotation=35, ha="right")
    ax.set_ylabel("mAP (%)")
    ax.set_title(f"{TITLES[table]}\nblack: 95 % CI over videos, grey: 95 % CI over seeds",
                 fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)
    plt.close(fig)
    return path


def curve_points(runs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, low, high) of the validation mAP over the runs that reached each step."""
    by_step: dict[int, list[float]] = {}
    for run in runs:
        for point in run.get("selection", {}).get("curve", []):
            if point["val_map"] is not None:  # null: a NaN validation, nothing to draw
                by_step.setdefault(int(point["step"]), []).append(float(point["val_map"]))
    steps = np.array(sorted(by_step), dtype=np.int64)
    values = [by_step[int(s)] for s in steps]
    return (steps, np.array([np.mean(v) for v in values]), np.array([min(v) for v in values]),
            np.array([max(v) for v in values]))


def learning_curve_figure(table: str, results: dict[str, Any], path: Path) -> Path | None:
    """Validation mAP against steps for every model of ``table`` that has runs with a curve."""
    runs = final_runs(results)
    models = [m for m in table_rows(table)
              if any(r["model"] == m and r.get("selection", {}).get("curve") for r in runs)]
    if not models:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    cmap = plt.get_cmap("tab20")
    for i, model in enumerate(models):
        mine = [r for r in runs if r["model"] == model]
        steps, mean, low, high = curve_points(mine)
        color = cmap(i % 20)
        style = "-" if model == REFERENCE else ("--" if i % 2 else "-.")
        ax.plot(steps, mean, style, color=color, lw=2 if model == REFERENCE else 1.2, label=model)
        ax.fill_between(steps, low, high, color=color, alpha=0.12)
        for run in mine:
            sel = run["selection"]
            last = sel["curve"][-1] if sel.get("curve") else None
            if last is None or last["val_map"] is None:
                continue
            capped = sel.get("stop_reason") == "cap"
            ax.plot([last["step"]], [last["val_map"]], "o", color=color, ms=5,
                    mfc="white" if capped else color)
    ax.set_xlabel("optimiser steps")
    ax.set_ylabel("validation mAP (%)")
    ax.set_title(f"{TITLES[table]}: validation curves (mean over seeds, band min-max)\n"
                 "dot: where a run stopped (hollow: hit the step cap, not converged)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)
    plt.close(fig)
    return path


def _scaled(values: list[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    span = a.max() - a.min()
    return (a - a.min()) / span if span > 0 else np.zeros_like(a)


def score_trace_figure(results: dict[str, Any], path: Path) -> Path | None:
    """Ground truth, PR-Net and the strongest baseline over time for the traced videos.

    Returns None (and writes nothing) when the results hold no traces, or
    PR-Net or every baseline has not run.
    """
    traces = results.get("traces") or {}
    pairs = traces.get("pairs", [])
    summ = summaries(results)
    best = best_baseline(summ)
    first = {}
    for run in sorted(final_runs(results), key=lambda r: r["seed"]):
        first.setdefault(run["model"], run)
    if not pairs or best is None or REFERENCE not in first:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(pairs), 1, figsize=(9, 2.2 * len(pairs)), squeeze=False)
    for ax, pair in zip(axes[:, 0], pairs, strict=True):
        labels = np.asarray(traces["labels"][pair], dtype=np.float64)
        rate = float(traces.get("rate", {}).get(pair, 1.0))
        t = np.arange(len(labels)) / rate
        ax.fill_between(t, 0, labels, step="mid", color="#1b9e77", alpha=0.3, label="ground truth")
        for model, color in ((REFERENCE, "#d95f02"), (best, "#7570b3")):
            scores = first[model].get("traces", {}).get(pair)
            if scores:
                ax.plot(t, _scaled(scores), color=color, lw=1,
                        label=f"{model} (seed {first[model]['seed']})")
        ax.set_title(pair, fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("scaled score", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)" if traces.get("rate") else "step")
    axes[0, 0].legend(fontsize=7, loc="upper right", ncol=3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path
