"""``highlightzoo bench``: regenerate the PR-Net paper's Tables 1 and 2, and inspect results.

``bench tables`` trains and evaluates every model of both tables per seed
(resumable) and writes results.json, tables and plots; ``bench report DIR``
regenerates the tables and plots from an existing results.json; ``bench
compare`` puts two results folders side by side; ``bench attention`` and
``bench probes`` write the history diagnostics of docs/history.md; ``bench
presets`` lists the presets. The logic lives in :mod:`highlightzoo.bench`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from highlightzoo.bench.attention import attention_diagnostics, write_attention_diagnostics
from highlightzoo.bench.compare import compare_markdown
from highlightzoo.bench.presets import PRESETS, get_preset
from highlightzoo.bench.report import embed_table, readme_block, write_report
from highlightzoo.bench.results import load_results
from highlightzoo.bench.runner import run_tables
from highlightzoo.bench.world_probes import all_preset_probes, write_world_probes
from highlightzoo.cli import whole_number
from highlightzoo.data.synthetic import WORLD_PRESETS
from highlightzoo.errors import ConfigError
from highlightzoo.io import atomic_write_text


def _tables(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset)
    if args.epochs is not None:  # e.g. time 2 passes of `paper` and extrapolate to 150
        preset = dataclasses.replace(preset, epochs=args.epochs, max_steps=None)
    if args.max_steps is not None:
        preset = dataclasses.replace(preset, max_steps=args.max_steps)
    if args.model_override:
        preset = preset.with_model_overrides(args.model_override)
        unused = [o for o in args.model_override
                  if args.models and o.partition(".")[0].strip() not in args.models]
        if unused:  # it would be recorded in the preset (and named in the footnote), not used
            raise ConfigError(f"--model-override {unused[0]} is for a model that is not among "
                              f"--models ({' '.join(args.models)})")
    path = run_tables(
        preset,
        Path(args.out),
        seeds=args.seeds,
        models=args.models,
        replay=Path(args.replay) if args.replay else None,
        device=args.device,
        cache_dir=Path(args.cache) if args.cache else None,
        quiet=args.quiet,
        backend=_store_backend(args.data),
        report=not args.no_report,
        jobs=args.jobs,
    )
    print(path)
    return 0


def _store_backend(data: str | None):
    """The backend of ``--data STORE`` (None: the preset's synthetic world)."""
    if data is None:
        return None
    from highlightzoo.bench.store_backend import StoreBackend  # loads the trainer: only here

    return StoreBackend(data)


def _report(args: argparse.Namespace) -> int:
    if args.readme:  # before the report is rewritten: a typo in the path is not a traceback
        readme_block(Path(args.readme), Path(args.dir))
    for path in write_report(Path(args.dir), plots=not args.no_plots):
        print(path)
    if args.readme:
        print(embed_table(Path(args.readme), Path(args.dir)))
    return 0


def _compare(args: argparse.Namespace) -> int:
    a, b = Path(args.a), Path(args.b)
    text = compare_markdown(load_results(a), load_results(b), a.name, b.name, args.protocol)
    if args.out:
        atomic_write_text(Path(args.out), text)
        print(args.out)
    else:
        print(text, end="")
    return 0


def _attention(args: argparse.Namespace) -> int:
    report = attention_diagnostics(
        args.run, data=args.data, split=args.split, device=args.device, trace_videos=args.trace_videos
    )
    for path in write_attention_diagnostics(Path(args.out), report, plots=not args.no_plots):
        print(path)
    return 0


def _probes(args: argparse.Namespace) -> int:
    results = all_preset_probes(seed=args.seed, presets=tuple(args.worlds) if args.worlds else None)
    for path in write_world_probes(Path(args.out), results):
        print(path)
    return 0


def _presets(args: argparse.Namespace) -> int:
    for name, preset in PRESETS.items():
        print(f"{name}: {preset.target}")
        if args.verbose:
            print(json.dumps(preset.to_dict(), indent=1, sort_keys=True))
    return 0


def register(subparsers) -> None:
    """Add ``bench tables``, ``bench report`` and ``bench presets``."""
    bench = subparsers.add_parser("bench", help="regenerate the paper's Tables 1 and 2")
    sub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")

    tables = sub.add_parser(
        "tables",
        help="sweep lr, train + evaluate every model of both tables per seed; write results, tables, plots",
        description="Choose each model's learning rate on the validation users (when the preset "
        "has a grid), then train and evaluate every model of the PR-Net paper's Tables 1 and 2 "
        "with each seed on the preset's synthetic world, and write DIR/results.json, "
        "table1/2.md/.csv and plots. Rerunning with the same DIR resumes finished runs.",
    )
    tables.add_argument(
        "--preset", choices=sorted(PRESETS), default="quick",
        help="how big a world and how much training: quick (a <= 20 min CPU demonstration, rows "
             "may not converge), converged (the fair comparison: lr sweep, every run to "
             "convergence; about 1 h 50 min on 2 CPU cores), standard (converged on one H100/H200), paper "
             "(the paper's scale); `bench presets -v` shows every field (default: quick)",
    )  # fmt: skip
    tables.add_argument("--seeds", type=whole_number, default=None,
                        help="number of training seeds, 0..N-1 (default: the preset's)")
    tables.add_argument("--models", nargs="+", default=None,
                        help="only these models (default: every model of both tables)")
    tables.add_argument("--replay", default=None, metavar="CSV",
                        help="replay the user/segment structure of a PHD-GIFs CSV (synthetic features)")
    tables.add_argument("--data", default=None, metavar="STORE",
                        help="run on this feature store (train/val/test splits, e.g. from `data "
                             "import-phdgifs`) instead of the preset's world; the preset gives the "
                             "training rules, the tables name the store")  # fmt: skip
    tables.add_argument("--out", required=True, metavar="DIR", help="benchmark folder (resumable)")
    tables.add_argument("--device", default=None, help="override the preset's device (cpu, cuda)")
    tables.add_argument("--epochs", type=whole_number, default=None,
                        help="override the budget with N passes (recorded in results.json; for timing)")
    tables.add_argument("--max-steps", type=whole_number, default=None,
                        help="override the preset's step cap (recorded in results.json; for timing)")
    tables.add_argument("--model-override", action="append", default=[], metavar="MODEL.KEY=VALUE",
                        help="a create_model argument for one model, e.g. "
                             "prnet.history_context=video:16 (repeatable; recorded in the preset and "
                             "named in the table footnote)")
    tables.add_argument("--jobs", type=whole_number, default=None,
                        help="runs at once, each in its own process with cpu_count/jobs torch "
                             "threads (default: one per core, at most 4, on CPU; 1 on CUDA). "
                             "The thread count is recorded: float results can differ with it")
    tables.add_argument("--cache", default=None, metavar="DIR",
                        help="world cache (default $HIGHLIGHTZOO_CACHE/worlds or ~/.cache/highlightzoo/worlds)")
    tables.add_argument("--no-report", action="store_true", help="skip tables/plots at the end")
    tables.add_argument("--quiet", action="store_true", help="no progress display")
    tables.set_defaults(func=_tables)

    report = sub.add_parser("report", help="regenerate tables and plots from DIR/results.json")
    report.add_argument("dir", metavar="DIR")
    report.add_argument("--no-plots", action="store_true")
    report.add_argument("--readme", default=None, metavar="MD",
                        help="also copy DIR/table1.md into this file's generated-table block")
    report.set_defaults(func=_report)

    comp = sub.add_parser(
        "compare", help="which model orderings held or flipped between two results folders",
        description="Compare two benchmark folders tested on the same videos: each model's mAP "
        "shift and every pair's ordering in each, with paired Wilcoxon tests (one AP protocol).",
    )
    comp.add_argument("a", metavar="DIR_A")
    comp.add_argument("b", metavar="DIR_B")
    comp.add_argument("--protocol", choices=("steps", "avhd"), default="steps",
                      help="AP protocol to compare under (both folders must have it; default steps)")
    comp.add_argument("--out", default=None, metavar="MD", help="write the markdown here")
    comp.set_defaults(func=_compare)

    att = sub.add_parser(
        "attention", help="attention diagnostics of a trained PR-Net run (entropy, user share, AP)",
        description="Per test video of a trained PR-Net: the entropy of the history attention "
        "(Eq. 3), the share of steps where the user branch outweighs the generic one (Eq. 5) and "
        "their Spearman correlation with AP; writes attention_<model>.json/.md and a Fig. 7 style "
        "figure (docs/history.md).",
    )
    att.add_argument("run", metavar="RUN", help="a run folder (its best checkpoint) or a checkpoint file")
    att.add_argument("--out", required=True, metavar="DIR", help="folder for the report files")
    att.add_argument("--data", default=None, metavar="STORE", help="feature store (default: the run's)")
    att.add_argument("--split", choices=("train", "val", "test"), default="test",
                     help="users to diagnose (default test)")
    att.add_argument("--device", default="cpu")
    att.add_argument("--trace-videos", type=whole_number, default=3, metavar="N",
                     help="videos drawn in the figure (default 3)")
    att.add_argument("--no-plots", action="store_true")
    att.set_defaults(func=_attention)

    probes = sub.add_parser(
        "probes", help="each synthetic world's personal signal: mAP of probes on its latent variables",
        description="For each synthetic world preset (generated in memory, nothing read from "
        "disk), the test users' mAP of three non-learned probes that read the generator's hidden "
        "variables: generic appeal only, the user's interest topics only, both (docs/history.md); "
        "writes world_probes.json/.md.",
    )
    probes.add_argument("--out", required=True, metavar="DIR", help="folder for the report files")
    probes.add_argument("--seed", type=whole_number, default=0, help="world seed (default 0)")
    probes.add_argument("--worlds", nargs="+", choices=sorted(WORLD_PRESETS), default=None,
                        help="only these world presets (default: every one)")
    probes.set_defaults(func=_probes)

    presets = sub.add_parser("presets", help="list the benchmark presets")
    presets.add_argument("--verbose", "-v", action="store_true", help="print every field")
    presets.set_defaults(func=_presets)
    bench.set_defaults(func=lambda _args: bench.print_help() or 1)
