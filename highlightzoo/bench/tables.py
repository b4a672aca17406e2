"""Tables 1 and 2 of the PR-Net paper, generated from a benchmark's results.json.

Which model belongs to which table comes from the model cards (``card.table``);
the full PR-Net (the reference every row is tested against) closes both
tables. Rows are ordered by the paper's mAP, ascending, the reference last, as
in the paper's Table 1; the floors (no paper number) open Table 1. Every row
of both paper tables is always present: a model without runs shows "not run"
in our columns. A row whose runs did not all stop by patience is marked as not
converged in the table itself. Rows for numbers a baseline's *own* paper
reports (``card.own_paper_map``, e.g. FCSN* and A-VHD* of A-VHD's paper) show
the paper column only. Nothing here is typed by hand: numbers come from
results.json, paper numbers from the cards.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from highlightzoo.bench.results import final_runs
from highlightzoo.bench.stats import ModelSummary, paired_p_value, summarise_model
from highlightzoo.models import get_model_card, list_models

REFERENCE = "prnet"
TABLES = ("table1", "table2")
TITLES = {
    "table1": "Table 1: comparison with the baselines",
    "table2": "Table 2: ablations of PR-Net",
}


def table_rows(table: str) -> list[str]:
    """Model names of one paper table, in display order (paper mAP ascending, reference last)."""
    names = [n for n in list_models() if get_model_card(n).table == table and n != REFERENCE]
    names.sort(key=lambda n: (get_model_card(n).paper_map or 0.0, n))
    return names + [REFERENCE]


def table_models() -> list[str]:
    """Every model of both tables, each once (Table 1 order, then Table 2)."""
    seen: list[str] = []
    for table in TABLES:
        seen += [n for n in table_rows(table) if n not in seen]
    return seen


def baselines() -> list[str]:
    """Table 1's trained rows other than the reference: the baselines PR-Net is compared with
    (the floors are not baselines: they are what every model must beat)."""
    return [n for n in table_rows("table1") if n != REFERENCE and get_model_card(n).trainable]


@dataclass(frozen=True)
class Row:
    """One table row; our columns are None when the model was not run."""

    model: str
    paper_map: float | None
    summary: ModelSummary | None
    rel_best_baseline: float | None
    paper_rel_best_baseline: float | None
    p_vs_reference: float | None
    #: a paper-only row (a number the baseline's own paper reports); no runs
    paper_only: bool = False


def summaries(results: dict[str, Any]) -> dict[str, ModelSummary]:
    """Per-model summaries of every model with at least one finished run."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for run in final_runs(results):
        by_model.setdefault(run["model"], []).append(run)
    return {m: summarise_model(m, sorted(rs, key=lambda r: r["seed"]))
            for m, rs in by_model.items()}


def best_baseline(summ: dict[str, ModelSummary]) -> str | None:
    """The baseline with the highest mAP in these results (None if no baseline ran)."""
    ran = [b for b in baselines() if b in summ]
    return max(ran, key=lambda b: (summ[b].map, b)) if ran else None


def paper_best_baseline() -> str:
    """The baseline with the highest mAP in the paper (A-VHD)."""
    return max(baselines(), key=lambda b: get_model_card(b).paper_map or 0.0)


def _rel(value: float | None, ref: float | None) -> float | None:
    return None if value is None or not ref else (value / ref - 1.0) * 100.0


def build_table(table: str, results: dict[str, Any]) -> list[Row]:
    """The rows of ``table`` computed from ``results``."""
    summ = summaries(results)
    best = best_baseline(summ)
    best_map = summ[best].map if best else None
    paper_best = get_model_card(paper_best_baseline()).paper_map
    ref = summ.get(REFERENCE)
    rows = []
    for name in table_rows(table):
        s = summ.get(name)
        card = get_model_card(name)
        paper = card.paper_map
        own = card.own_paper_map
        if own is not None:
            rows.append(Row(f"{name}*", own, None, None, _rel(own, paper_best), None, paper_only=True))
        rows.append(Row(
            model=name,
            paper_map=paper,
            summary=s,
            rel_best_baseline=_rel(s.map if s else None, best_map),
            paper_rel_best_baseline=_rel(paper, paper_best),
            p_vs_reference=paired_p_value(s, ref) if s and ref and name != REFERENCE else None,
        ))
    return rows


CSV_COLUMNS = (
    "model", "paper_map", "lr", "converged", "n_seeds", "map", "ci_videos_low", "ci_videos_high",
    "ci_seeds_low", "ci_seeds_high", "map_other_protocol", "rel_vs_best_baseline_pct",
    "paper_rel_vs_best_baseline_pct", "nmsd", "hit_at_k", "wilcoxon_p_vs_prnet", "n_videos",
    "paper_only",
)


def _lrs(s: ModelSummary | None) -> str:
    """The final runs' learning rate(s); none for a floor (nothing is trained)."""
    if s is None or not get_model_card(s.model).trainable:
        return ""
    return "/".join(f"{lr:g}" for lr in s.lrs)


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table_csv(rows: Sequence[Row]) -> str:
    """CSV twin of the markdown table (plain numbers, empty = not available)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        s = r.summary
        writer.writerow([
            r.model, _num(r.paper_map), _lrs(s), s.n_converged if s else "", s.n_seeds if s else "",
            _num(s.map if s else None, 4),
            _num(s.ci_videos[0] if s and s.ci_videos else None, 4),
            _num(s.ci_videos[1] if s and s.ci_videos else None, 4),
            _num(s.ci_seeds[0] if s and s.ci_seeds else None, 4),
            _num(s.ci_seeds[1] if s and s.ci_seeds else None, 4),
            _num(s.map_other if s else None, 4),
            _num(r.rel_best_baseline, 2), _num(r.paper_rel_best_baseline, 2),
            _num(s.nmsd if s else None, 4), _num(s.hit if s else None, 4),
            "" if r.p_vs_reference is None else f"{r.p_vs_reference:.6g}",
            s.n_videos if s else "", int(r.paper_only),
        ])
    return buf.getvalue()


def _interval(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f} %"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "<0.001" if value < 1e-3 else f"{value:.3f}"


def _protocols(summ: dict[str, ModelSummary]) -> tuple[str, str]:
    """(primary, other) protocol names of these results."""
    primary = next(iter(summ.values())).protocol if summ else "avhd"
    return primary, ("steps" if primary == "avhd" else "avhd")


def table_markdown(table: str, rows: Sequence[Row], results: dict[str, Any]) -> str:
    """The markdown table with its footnotes (definitions, rules, seeds, videos)."""
    summ = summaries(results)
    best = best_baseline(summ)
    hit_k = results["preset"]["eval"]["hit_k"]
    primary, other = _protocols(summ)
    head = (f"| model | paper mAP | lr | converged | mAP ({primary}) | 95 % CI (videos) | "
            f"95 % CI (seeds) | mAP ({other}) | vs best baseline | paper: vs best baseline | "
            f"nMSD (lower better) | hit@{hit_k} | Wilcoxon p vs {REFERENCE} |")
    lines = [f"# {TITLES[table]}", "", head, "|" + "---|" * 13]
    top = max((r.summary.map for r in rows if r.summary), default=None)
    for r in rows:
        s = r.summary
        if r.paper_only:
            cells = [r.model, _num(r.paper_map), "", "", "paper only", "", "", "", "",
                     _signed(r.paper_rel_best_baseline), "", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        if s is None:
            cells = [r.model, _num(r.paper_map), "", "", "not run", "", "", "", "",
                     _signed(r.paper_rel_best_baseline), "", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        name = r.model if s.converged else f"{r.model} (NOT CONVERGED)"
        conv = f"{s.n_converged}/{s.n_seeds}"
        mean = f"**{s.map:.2f}**" if s.map == top else f"{s.map:.2f}"
        cells = [name, _num(r.paper_map), _lrs(s), conv, mean, _interval(s.ci_videos),
                 _interval(s.ci_seeds), _num(s.map_other), _signed(r.rel_best_baseline),
                 _signed(r.paper_rel_best_baseline), _num(s.nmsd), _num(s.hit),
                 _p(r.p_vs_reference)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_footnotes(results, best, summ)]
    return "\n".join(lines) + "\n"


def _overrides_text(preset: dict[str, Any]) -> str:
    """The preset's per-model ``create_model`` overrides as a footnote clause ("" when none)."""
    items = [
        f"{model} {key}={value}"
        for model, overrides in sorted(preset.get("model_overrides", {}).items())
        for key, value in sorted(overrides.items())
    ]
    return f"model overrides (create_model arguments): {', '.join(items)}; " if items else ""


def _footnotes(results: dict[str, Any], best: str | None, summ: dict[str, ModelSummary]) -> list[str]:
    preset = results["preset"]
    n_videos = sorted({s.n_videos for s in summ.values()})
    seeds = results["seeds"]
    world = results["world"]
    primary, other = _protocols(summ)
    prov = results["provenance"]
    planned = len(seeds) * len(results.get("models", []))
    done = sum(s.n_seeds for m, s in summ.items() if m in results.get("models", []))
    partial = (
        f" **INCOMPLETE: {done} of the {planned} planned final runs are in results.json** "
        f"(seeds per model: {sorted({s.n_seeds for s in summ.values()})}); rerunning the same "
        "`bench tables` command on this folder runs the rest."
        if done < planned else ""
    )
    return [
        f"Preset `{preset['name']}`: {_data_text(world, preset)}; {_rules(preset)}; "
        f"{_overrides_text(preset)}training seeds {seeds}; test videos per model {n_videos}; "
        f"device `{prov.get('device')}` ({prov.get('device_name', '?')}, "
        f"{prov.get('threads', '?')} threads per run).{partial}",
        "",
        "converged: runs stopped by patience / runs (a floor has nothing to train and counts as "
        "converged); a row marked NOT CONVERGED had at least one run stopped by the step cap, "
        "so its validation mAP may still have been rising. lr: the learning rate of the final "
        "runs (chosen per model on the validation users when the preset sweeps a grid; the "
        "sweep runs are in results.json).",
        "",
        f"mAP ({primary}): the primary AP protocol, mAP ({other}) the other one "
        "(docs/evaluation.md, \"Protocols\"). "
        "mAP: mean over training seeds and test (user, video) pairs of the per-video AP, in %. "
        "95 % CI (videos): percentile bootstrap (2,000 resamples) over test videos of the "
        "seed-averaged per-video AP. 95 % CI (seeds): Student-t interval over the per-seed mAPs. "
        f"vs best baseline: relative change of mAP vs the best baseline in these results "
        f"(`{best}`); the paper column does the same with the paper's numbers. "
        f"Wilcoxon p: two-sided signed-rank test vs `{REFERENCE}` on the seed-averaged per-video "
        "APs, paired by (user, video). nMSD and hit@k: means over seeds and videos, in %.",
        "",
        "Bold: the highest mAP of the table. "
        "Generated by `highlightzoo bench report` from results.json; paper numbers from the "
        "model cards (PR-Net paper, its own PHD-GIFs subset with C3D features; not the same data).",
    ]


def _data_text(world: dict[str, Any], preset: dict[str, Any]) -> str:
    """What the runs trained and tested on: the preset's world, or a store given with ``--data``."""
    if "store" not in world:
        return f"world `{world.get('preset', preset['world'])}` (key `{world['key']}`)"
    fp = world.get("fingerprint") or {}
    feats = world.get("features") or {}
    made = f", features {feats.get('backbone')} ({feats.get('weights')})" if feats else ""
    return (f"store `{world['store']}` ({world.get('path')}; source \"{world.get('source', '')}\"{made}; "
            f"fingerprint `{str(fp.get('index_sha256', world['key']))[:16]}`, {fp.get('n_users', '?')} "
            f"users, {fp.get('n_videos', '?')} videos)")


def _rules(preset: dict[str, Any]) -> str:
    """The training rules of a preset dict (also of results made before step budgets)."""
    if preset.get("max_steps") is None and preset.get("epochs") is not None and "lr_grid" not in preset:
        return (f"{preset['epochs']} epochs, batch {preset['batch_size']} users, lr {preset['lr']}, "
                f"patience {preset['patience']} epochs, clip {preset['clip_len']} steps")
    budget = f"cap {preset['max_steps']} steps" if preset.get("max_steps") else f"{preset['epochs']} passes"
    grid = preset.get("lr_grid") or []
    lrs = ("lr chosen on validation from " + "/".join(f"{x:g}" for x in grid)) if grid else f"lr {preset['lr']:g}"
    return (f"{budget}, validation every {preset.get('eval_every') or 'pass'} steps, patience "
            f"{preset['patience']} validations after {preset.get('min_steps', 0)} steps (min_delta "
            f"{preset.get('min_delta', 0):g}), batch {preset['batch_size']} clips of {preset['clip_len']} "
            f"steps ({preset.get('sampling', 'last_video')}), {lrs}")
