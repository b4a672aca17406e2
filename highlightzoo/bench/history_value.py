"""History-value report: what each personalized model gains from the user's history.

For every personalized model of a results folder, the paired difference of
its seed-averaged per-video AP to a history-free counterpart (PR-Net vs
PR-Net_G and PR-Net_h0, A-VHD vs FCSN, PHD-GIFs vs Video2GIF) and to the
``history_similarity`` floor (a cosine to the history mean, no learning),
overall and by the user's history size. Definitions (the markdown repeats them):

- per-video AP of a model = mean over its seeds (as in the tables,
  :func:`highlightzoo.bench.tables.summaries`); difference in AP points (x100);
- interval = 95 % percentile bootstrap over videos of the mean difference and
  p = two-sided Wilcoxon signed-rank p, both from
  :func:`highlightzoo.metrics.paired_test` (fixed seed, so reruns are equal);
- history size = the user's *uncapped* number of history segments: the
  ``n_history`` field of each test video record, or, for results written before
  that field existed, the count read from the feature store when one is given;
  without either, only the overall row is reported (the note says so).

See docs/history.md.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from highlightzoo.bench.plots import _pyplot, _save, matplotlib_available
from highlightzoo.bench.results import load_results
from highlightzoo.bench.stats import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, ModelSummary
from highlightzoo.bench.tables import summaries
from highlightzoo.data.store import FeatureStore
from highlightzoo.io import atomic_write_text
from highlightzoo.metrics import paired_test

#: (personalized model, history-free counterpart) pairs, compared when both ran
COUNTERPARTS: tuple[tuple[str, str], ...] = (
    ("prnet", "prnet_g"),
    ("prnet", "prnet_h0"),
    ("avhd", "fcsn"),
    ("phdgifs", "video2gif"),
    ("phdgifs_full", "video2gif"),
)
#: the no-learning history floor every personalized model is also compared with
FLOOR = "history_similarity"
#: history-size bins (inclusive bounds; None = no upper bound), in display order
BINS: tuple[tuple[str, int, int | None], ...] = (
    ("0-1", 0, 1),
    ("2-5", 2, 5),
    ("6-20", 6, 20),
    (">20", 21, None),
)
ALL = "all"


def history_bin(n_history: int) -> str:
    """The label of the :data:`BINS` entry holding ``n_history`` (>= 0)."""
    for label, low, high in BINS:
        if n_history >= low and (high is None or n_history <= high):
            return label
    raise ValueError(f"history size must be >= 0, got {n_history}")


@dataclass(frozen=True)
class Comparison:
    """``model`` minus ``baseline`` on one set of test videos (AP points, x100).

    ``ci_low``/``ci_high``/``p_value`` are None with fewer than 2 videos.
    """

    model: str
    baseline: str
    bin: str
    n_videos: int
    mean_diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    model_map: float
    baseline_map: float


@dataclass
class HistoryValue:
    """The whole report: comparison rows, per-video differences for the figure, notes."""

    rows: list[Comparison] = field(default_factory=list)
    #: (model, baseline) -> list of (history size or None, AP difference in points)
    points: dict[tuple[str, str], list[tuple[int | None, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    history_source: str = "none"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return {
            "rows": [asdict(r) for r in self.rows],
            "notes": list(self.notes),
            "history_source": self.history_source,
        }


def compare_aps(model: str, baseline: str, label: str, a: np.ndarray, b: np.ndarray) -> Comparison:
    """Paired comparison of per-video APs ``a`` (model) and ``b`` (baseline), both in [0, 1]."""
    a, b = np.asarray(a, dtype=np.float64) * 100.0, np.asarray(b, dtype=np.float64) * 100.0
    low = high = p = None
    if a.size >= 2:
        test = paired_test(a, b, seed=BOOTSTRAP_SEED, n_resamples=BOOTSTRAP_SAMPLES)
        low, high = test.ci_low, test.ci_high
        p = None if math.isnan(test.p_value) else test.p_value
    return Comparison(
        model=model,
        baseline=baseline,
        bin=label,
        n_videos=int(a.size),
        mean_diff=float((a - b).mean()) if a.size else math.nan,
        ci_low=low,
        ci_high=high,
        p_value=p,
        model_map=float(a.mean()) if a.size else math.nan,
        baseline_map=float(b.mean()) if b.size else math.nan,
    )


def record_history_counts(results: Mapping[str, Any]) -> dict[str, int]:
    """(user/video) -> ``n_history`` from the test records that carry it (any run)."""
    counts: dict[str, int] = {}
    for run in results.get("runs", []):
        for v in run.get("test", {}).get("videos", []):
            if v.get("n_history") is not None:
                counts.setdefault(f"{v['user']}/{v['video']}", int(v["n_history"]))
    return counts


def store_history_counts(store_path: str | Path, keys: Sequence[str]) -> dict[str, int]:
    """(user/video) -> the user's uncapped history segment count, from a feature store.

    Segments on the evaluated video itself are not history (as in the data
    pipeline), so they are not counted.
    """
    store = FeatureStore(store_path, strict=False, check_features=False)
    counts = {}
    try:
        known = set(store.users())
        for key in keys:
            user, video = key.split("/", 1)
            if user in known:
                counts[key] = sum(h.video_id != video for h in store.user(user).history)
    finally:
        store.close()
    return counts


def comparisons_to_make(
    summ: Mapping[str, ModelSummary], results: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """The (model, baseline) pairs of this results dict: counterparts, then each
    personalized model (card ``uses_history``) against :data:`FLOOR`, when both ran."""
    pairs = [(m, b) for m, b in COUNTERPARTS if m in summ and b in summ]
    if FLOOR in summ:
        cards = {r["model"]: r.get("card", {}) for r in results.get("runs", [])}
        personal = sorted(
            m for m in summ if m != FLOOR and cards.get(m, {}).get("uses_history", False)
        )
        pairs += [(m, FLOOR) for m in personal]
    return pairs


def history_value(results: Mapping[str, Any], store_path: str | Path | None = None) -> HistoryValue:
    """The history-value report of a bench ``results`` dict (see the module docstring).

    ``store_path``: the world's feature store, used only when the test records
    have no ``n_history`` field (results written before it existed).
    """
    summ = summaries(dict(results))
    report = HistoryValue()
    pairs = comparisons_to_make(summ, results)
    if not pairs:
        report.notes.append(
            "no personalized model ran together with its history-free counterpart or "
            f"`{FLOOR}`: nothing to compare"
        )
        return report
    counts = record_history_counts(results)
    if counts:
        report.history_source = "results (n_history per test video)"
    elif store_path is not None:
        keys = sorted({k for s in summ.values() for k in s.per_video_ap})
        counts = store_history_counts(store_path, keys)
        report.history_source = f"feature store {Path(store_path).name}"
    else:
        report.notes.append(
            "the test records have no `n_history` and no feature store was given: "
            "history-size bins are skipped, only the overall difference is reported"
        )
    for model, baseline in pairs:
        a, b = summ[model].per_video_ap, summ[baseline].per_video_ap
        if sorted(a) != sorted(b):
            report.notes.append(
                f"`{model}` and `{baseline}` were evaluated on different test videos "
                f"({len(a)} vs {len(b)}): not compared"
            )
            continue
        keys = sorted(a)
        x, y = np.array([a[k] for k in keys]), np.array([b[k] for k in keys])
        report.rows.append(compare_aps(model, baseline, ALL, x, y))
        sizes = [counts.get(k) for k in keys]
        report.points[(model, baseline)] = [
            (s, float(d)) for s, d in zip(sizes, (x - y) * 100.0, strict=True)
        ]
        if not counts:
            continue
        missing = sum(s is None for s in sizes)
        if missing:
            report.notes.append(
                f"{missing} test videos of `{model}` have no history count: left out of the bins"
            )
        labels = np.array([history_bin(s) if s is not None else "" for s in sizes])
        for label, _low, _high in BINS:
            chosen = labels == label
            if chosen.any():
                report.rows.append(compare_aps(model, baseline, label, x[chosen], y[chosen]))
    return report


# --------------------------------------------------------------------------- writing


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "<0.001" if value < 1e-3 else f"{value:.3f}"


CSV_COLUMNS = (
    "model", "baseline", "history_bin", "n_videos", "mean_diff", "ci_low", "ci_high",
    "wilcoxon_p", "model_map", "baseline_map",
)  # fmt: skip


def history_value_csv(report: HistoryValue) -> str:
    """CSV twin of the markdown table (AP points; empty = undefined)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in report.rows:
        writer.writerow([
            r.model, r.baseline, r.bin, r.n_videos, _num(r.mean_diff, 4), _num(r.ci_low, 4),
            _num(r.ci_high, 4), "" if r.p_value is None else f"{r.p_value:.6g}",
            _num(r.model_map, 4), _num(r.baseline_map, 4),
        ])  # fmt: skip
    return buf.getvalue()


def history_value_markdown(report: HistoryValue) -> str:
    """The report as a markdown table with its definitions."""
    lines = [
        "# What history adds: personalized models vs their history-free counterparts",
        "",
        "| model | vs | history segments | videos | mAP model | mAP vs | difference "
        "| 95 % CI | Wilcoxon p |",
        "|" + "---|" * 9,
    ]
    for r in report.rows:
        ci = "n/a" if r.ci_low is None else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        lines.append(
            f"| {r.model} | {r.baseline} | {r.bin} | {r.n_videos} | {_num(r.model_map)} | "
            f"{_num(r.baseline_map)} | {r.mean_diff:+.2f} | {ci} | {_p(r.p_value)} |"
        )
    lines += [
        "",
        "Difference: mean over test (user, video) pairs of model AP minus counterpart AP, in AP "
        "points, each AP averaged over the training seeds. 95 % CI: percentile bootstrap over "
        f"videos ({BOOTSTRAP_SAMPLES:,} resamples); Wilcoxon p: two-sided signed-rank test on the "
        "paired per-video APs. History segments: the user's uncapped history size "
        f"(source: {report.history_source}). `{FLOOR}` is the no-learning floor (a cosine to the "
        "history mean). Generated by `highlightzoo bench report` from results.json; see "
        "docs/history.md.",
    ]
    if report.notes:
        lines += ["", *[f"Note: {n}." for n in report.notes]]
    return "\n".join(lines) + "\n"


def history_value_figure(report: HistoryValue, path: Path) -> Path | None:
    """Per comparison: each video's AP difference against its history size, bin means with CIs.

    Returns None (writes nothing) when no history sizes are known.
    """
    pairs = [p for p, pts in report.points.items() if any(s is not None for s, _ in pts)]
    if not pairs:
        return None
    plt = _pyplot()
    cols = min(3, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (model, baseline) in zip(axes.flat, pairs, strict=False):
        pts = [(s, d) for s, d in report.points[(model, baseline)] if s is not None]
        sizes = np.array([s for s, _ in pts], dtype=np.float64)
        diffs = np.array([d for _, d in pts])
        ax.scatter(sizes + 1, diffs, s=6, alpha=0.4, color="#7570b3", label="one test video")
        ax.axhline(0.0, color="black", lw=0.8)
        for r in report.rows:
            if (r.model, r.baseline) != (model, baseline) or r.bin == ALL:
                continue
            low, high = next((lo, hi) for lab, lo, hi in BINS if lab == r.bin)
            in_bin = sizes[(sizes >= low) & (sizes <= (high if high is not None else np.inf))]
            x = float(np.exp(np.log(in_bin + 1).mean()))
            err = (
                None if r.ci_low is None else [[r.mean_diff - r.ci_low], [r.ci_high - r.mean_diff]]
            )
            ax.errorbar(x, r.mean_diff, yerr=err, fmt="o", color="#d95f02", capsize=3,
                        label="bin mean, 95 % CI")  # fmt: skip
        ax.set_xscale("log")
        ticks = [t for t in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
                 if sizes.min() <= t < 2.5 * sizes.max()]  # fmt: skip
        ax.set_xticks([t + 1 for t in ticks], [str(t) for t in ticks])
        ax.set_xlim((sizes.min() + 1) / 1.3, (sizes.max() + 1) * 1.3)
        ax.minorticks_off()
        for _label, low, _high in BINS[1:]:
            ax.axvline(low + 0.5, color="grey", lw=0.6, ls=":")  # bin edges
        ax.set_xlabel("history segments (log scale of n + 1)", fontsize=8)
        ax.set_ylabel("AP difference (points)", fontsize=8)
        ax.set_title(f"{model} - {baseline}", fontsize=9)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.flat[0].legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def write_history_value(
    folder: str | Path,
    results: Mapping[str, Any] | None = None,
    *,
    store_path: str | Path | None = None,
    plots: bool = True,
) -> list[Path]:
    """Write ``history_value.md``/``.csv`` (and ``history_value.png`` with matplotlib) into
    ``folder`` from ``results`` (default: the folder's results.json); return the paths."""
    folder = Path(folder)
    results = load_results(folder) if results is None else results
    report = history_value(results, store_path)
    written = []
    for suffix, text in ((".md", history_value_markdown(report)),
                         (".csv", history_value_csv(report))):  # fmt: skip
        path = folder / f"history_value{suffix}"
        atomic_write_text(path, text)
        written.append(path)
    if plots and matplotlib_available():
        figure = history_value_figure(report, folder / "history_value.png")
        if figure is not None:
            written.append(figure)
    return written
