"""Attention diagnostics of a trained PR-Net: does it read the history, and does that pay?

From the explanation outputs PR-Net already gives (``ModelOutput.extras``), per
test video:

- ``entropy``: mean over the video's steps of the entropy of the history
  attention ``a^u_i`` (Eq. 3) over the user's real history segments, divided by
  ``log N`` (0 = every step attends to one segment, 1 = uniform attention,
  i.e. the mean history); undefined with fewer than 2 history segments;
- ``user_share``: the share of steps where the user branch outweighs the
  generic one in Eq. 5 (``q^c1 > q^c2``, extras ``user_weight`` >
  ``generic_weight``);
- ``ap``: the step AP of the video (:func:`highlightzoo.metrics.average_precision`).

Their relation to AP is the Spearman rank correlation over test videos. The
figure follows the paper's Fig. 7: for a few test videos, the attention over
the history segments at each step, the degrees ``l`` and ``b`` (Eq. 6-7), the
user weight and the ground truth. See docs/history.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from highlightzoo import metrics
from highlightzoo.batch import Batch, model_name
from highlightzoo.bench.plots import _pyplot, _save, matplotlib_available
from highlightzoo.checks import int_at_least
from highlightzoo.data.dataset import HighlightDataset, collate
from highlightzoo.data.store import FeatureStore
from highlightzoo.device import resolve_device
from highlightzoo.errors import ConfigError
from highlightzoo.io import atomic_write_text, output_folder
from highlightzoo.metrics.uncertainty import scipy_stats
from highlightzoo.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    resolve_checkpoint_path,
)
from highlightzoo.training.config import TrainConfig

DIAGNOSTICS = ("entropy", "user_share")


def attention_entropy(attention: np.ndarray, segment_mask: np.ndarray) -> float | None:
    """Mean over steps of the normalised entropy of ``attention`` (T, N) over real segments.

    ``segment_mask`` (N,) bool. Each step's row is renormalised over the real
    segments; entropy in nats divided by ``log N_real``. None when fewer than 2
    real segments (no choice to make) or no step.
    """
    a = np.asarray(attention, dtype=np.float64)[:, np.asarray(segment_mask, dtype=bool)]
    n = a.shape[1]
    if n < 2 or a.shape[0] == 0:
        return None
    a = a / np.clip(a.sum(axis=1, keepdims=True), 1e-300, None)
    logs = np.log(np.where(a > 0, a, 1.0))
    return float((-(a * logs).sum(axis=1) / math.log(n)).mean())


def user_share(user_weight: np.ndarray, generic_weight: np.ndarray) -> float:
    """Share of steps where the user branch outweighs the generic one (``q^c1 > q^c2``)."""
    u, g = np.asarray(user_weight), np.asarray(generic_weight)
    return float(np.mean(u > g)) if u.size else math.nan


@dataclass
class VideoDiagnostics:
    """One test video: history size, AP and the attention diagnostics."""

    user: str
    video: str
    n_history: int
    ap: float
    entropy: float | None
    user_share: float


@dataclass
class AttentionReport:
    """Per-video diagnostics, their Spearman correlation with AP, and traces for the figure."""

    model: str
    split: str = "test"
    videos: list[VideoDiagnostics] = field(default_factory=list)
    correlation: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    traces: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "split": self.split,
            "n_videos": len(self.videos),
            "mean": {name: _mean([getattr(v, name) for v in self.videos]) for name in DIAGNOSTICS},
            "correlation_with_ap": self.correlation,
            "videos": [asdict(v) for v in self.videos],
        }


def _mean(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(real)) if real else None


def spearman(x: list[float | None], y: list[float]) -> dict[str, float | int | None]:
    """Spearman rho and two-sided p of ``x`` vs ``y`` over the pairs where ``x`` is defined."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if a is not None and not math.isnan(a)]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return {"rho": None, "p": None, "n": len(pairs)}
    res = scipy_stats().spearmanr([a for a, _ in pairs], [b for _, b in pairs])
    return {"rho": float(res.statistic), "p": float(res.pvalue), "n": len(pairs)}


@torch.no_grad()
def diagnose(
    model: nn.Module, dataset, *, batch_size: int = 8, trace_videos: int = 3
) -> AttentionReport:
    """Diagnostics of ``model`` (a PR-Net) on every item of an eval-mode ``dataset``.

    Videos without a positive step are left out (no AP). The first
    ``trace_videos`` videos with at least 2 history segments keep their
    per-step traces for :func:`attention_figure`.
    """
    model.eval()
    name = model_name(model)
    report = AttentionReport(model=name)
    device = next(iter(model.parameters()), torch.zeros(())).device
    for start in range(0, len(dataset), batch_size):
        batch: Batch = collate(
            [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        )
        out = model(batch.to(device))
        for key in ("user_weight", "generic_weight"):
            out.require(key, "attention diagnostics (a PR-Net model)")
        extras = {k: v.float().cpu().numpy() for k, v in out.extras.items()}
        scores = out.scores.float().cpu().numpy()
        seg_mask = batch.history_segment_mask.numpy()
        for i in range(len(batch)):
            t = int(batch.video_mask[i].sum())
            labels = (batch.labels[i, :t].numpy() > 0.5).astype(np.int64)
            if not labels.any():
                continue
            attention = extras.get("attention")
            entropy = (
                None if attention is None else attention_entropy(attention[i, :t], seg_mask[i])
            )
            diag = VideoDiagnostics(
                user=batch.user_ids[i],
                video=batch.video_ids[i],
                n_history=int(seg_mask[i].sum()),
                ap=float(metrics.average_precision(labels, scores[i, :t])),
                entropy=entropy,
                user_share=user_share(
                    extras["user_weight"][i, :t], extras["generic_weight"][i, :t]
                ),
            )
            report.videos.append(diag)
            if attention is not None and diag.n_history >= 2 and len(report.traces) < trace_videos:
                report.traces.append({
                    "user": diag.user, "video": diag.video, "rate": float(batch.rate[i]),
                    "labels": labels, "attention": attention[i, :t][:, seg_mask[i]],
                    "l": extras["l"][i, :t], "b": extras.get("b", np.zeros((len(batch), t)))[i, :t],
                    "user_weight": extras["user_weight"][i, :t], "ap": diag.ap,
                })  # fmt: skip
    aps = [v.ap for v in report.videos]
    for name_ in DIAGNOSTICS:
        report.correlation[name_] = spearman([getattr(v, name_) for v in report.videos], aps)
    return report


def attention_diagnostics(
    checkpoint: str | Path,
    *,
    data: str | Path | None = None,
    split: str = "test",
    device: str = "cpu",
    batch_size: int = 8,
    trace_videos: int = 3,
) -> AttentionReport:
    """:func:`diagnose` for a run folder's best checkpoint (or a checkpoint file) on its store.

    ``data``: the feature store (default: the one the run recorded). The
    history cap and label rule are the run's, as in ``highlightzoo evaluate``.
    """
    trace_videos = int_at_least(trace_videos, 0, "--trace-videos")  # -1 silently traced none
    batch_size = int_at_least(batch_size, 1, "batch_size")
    device = resolve_device(device)
    payload = load_checkpoint(resolve_checkpoint_path(checkpoint))
    config = TrainConfig.from_dict(payload["config"])
    store = FeatureStore(data or config.data)
    model = model_from_checkpoint(payload, feature_dim=int(store.feature_dim))
    if not hasattr(model, "attention") or not hasattr(model, "history_embedding"):
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} holds model {payload['model_card'].get('name')!r}; "
            "attention diagnostics need a PR-Net"
        )
    cap = payload.get(
        "history_cap", config.resolved_history_cap(payload["model_card"].get("history_cap"))
    )
    dataset = HighlightDataset(
        store, split, mode="eval", history_cap=cap, clip_len=config.clip_len,
        min_fraction=config.min_fraction, seed=config.seed,
        history_context=getattr(model, "history_context_steps", None),
    )  # fmt: skip
    report = diagnose(model.to(device), dataset, batch_size=batch_size, trace_videos=trace_videos)
    report.split = split
    return report


def attention_markdown(report: AttentionReport) -> str:
    """A short markdown summary: means and Spearman correlations with AP."""
    d = report.to_dict()

    def num(v: float | None, fmt: str = ".3f") -> str:
        return "n/a" if v is None else format(v, fmt)

    lines = [
        f"# Attention diagnostics of `{report.model}` on {d['n_videos']} {report.split} videos",
        "",
        "| diagnostic | mean | Spearman rho with AP | p | videos |",
        "|---|---|---|---|---|",
    ]
    for name in DIAGNOSTICS:
        c = report.correlation.get(name, {})
        lines.append(
            f"| {name} | {num(d['mean'][name])} | {num(c.get('rho'))} | {num(c.get('p'))} "
            f"| {c.get('n', 0)} |"
        )
    lines += [
        "",
        "entropy: mean over steps of the entropy of the history attention a^u (Eq. 3) over the "
        "user's history segments, divided by log N (1 = uniform, the mean history; 0 = one "
        "segment); videos with < 2 history segments left out. user_share: share of steps with "
        "q^c1 > q^c2 (Eq. 5), the user branch outweighing the generic one. AP: step AP of the "
        "video. See docs/history.md.",
    ]
    return "\n".join(lines) + "\n"


def attention_figure(report: AttentionReport, path: Path) -> Path | None:
    """Fig. 7 style: per traced video, attention over history segments by step, then
    ``l``, ``b``, the user weight and the ground truth. None when nothing was traced."""
    if not report.traces:
        return None
    plt = _pyplot()
    k = len(report.traces)
    fig, axes = plt.subplots(2, k, figsize=(4.5 * k, 5.0), squeeze=False,
                             gridspec_kw={"height_ratios": [1.2, 1.0]}, sharex="col")  # fmt: skip
    for col, tr in enumerate(report.traces):
        t = np.arange(len(tr["labels"])) / tr["rate"]
        top, bottom = axes[0, col], axes[1, col]
        att = np.asarray(tr["attention"]).T  # (N, T)
        image = top.imshow(att, aspect="auto", origin="lower", cmap="viridis", vmin=0.0, vmax=1.0,
                           interpolation="nearest",
                           extent=(t[0], t[-1] + 1 / tr["rate"], -0.5, att.shape[0] - 0.5))  # fmt: skip
        top.set_ylabel("history segment", fontsize=8)
        top.set_yticks(range(att.shape[0]))
        fig.colorbar(image, ax=top, fraction=0.04, pad=0.01, label="attention a^u")
        top.set_title(f"{tr['user']}/{tr['video']} (AP {100 * tr['ap']:.1f})", fontsize=8)
        bottom.fill_between(t, 0, tr["labels"], step="mid", color="#1b9e77", alpha=0.3,
                            label="ground truth")  # fmt: skip
        for key, color, label in (
            ("l", "#d95f02", "l (highlight)"),
            ("b", "#7570b3", "b (non-highlight)"),
        ):
            v = np.asarray(tr[key], dtype=np.float64)
            span = v.max() - v.min()
            bottom.plot(t, (v - v.min()) / span if span > 0 else v * 0, color=color, lw=1,
                        label=label)  # fmt: skip
        bottom.plot(t, tr["user_weight"], color="black", lw=0.8, ls="--", label="user weight q^c1")
        bottom.set_ylim(-0.05, 1.05)
        bottom.set_xlabel("time (s)", fontsize=8)
    axes[1, 0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def write_attention_diagnostics(
    folder: str | Path, report: AttentionReport, *, plots: bool = True
) -> list[Path]:
    """Write ``attention_<model>.json``/``.md`` (and ``.png`` with matplotlib) into ``folder``."""
    folder = output_folder(folder)
    stem = folder / f"attention_{report.model}"
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    atomic_write_text(paths[0], json.dumps(report.to_dict(), indent=1, sort_keys=True) + "\n")
    atomic_write_text(paths[1], attention_markdown(report))
    if plots and matplotlib_available():
        figure = attention_figure(report, stem.with_suffix(".png"))
        if figure is not None:
            paths.append(figure)
    return paths
