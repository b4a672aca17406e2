"""Figures of a benchmark (needs the ``plot`` extra: matplotlib).

- ``table1_map.png`` / ``table2_map.png``: mAP per model with both 95 %
  intervals (videos: thick bar, seeds: thin bar) and the paper's mAP as a
  marker (different data: shown for shape, not for equality).
- ``score_traces.png``: for the few traced test videos, the ground truth,
  PR-Net's scores and the strongest baseline's scores over time (first seed;
  scores min-max scaled per video, since only their order matters to AP).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from highlightzoo.bench.tables import REFERENCE, TITLES, Row, best_baseline, summaries
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
    for run in sorted(results["runs"], key=lambda r: r["seed"]):
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
