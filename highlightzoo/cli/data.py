"""``highlightzoo data``: make, import and inspect feature stores.

- ``data synth``: generate a synthetic world (preset, seed) into a store
- ``data replay``: keep a PHD-GIFs CSV's structure, synthesise the features
- ``data import-phdgifs``: a PHD-GIFs CSV + your features into a store
- ``data info``: statistics of a store
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from highlightzoo.cli import whole_number
from highlightzoo.data.phdgifs import import_phdgifs
from highlightzoo.data.stats import store_statistics
from highlightzoo.data.store import FeatureStore
from highlightzoo.data.store_format import VIDEO_COVERAGE
from highlightzoo.data.synthetic import WORLD_PRESETS, synthesize, synthesize_replay
from highlightzoo.errors import ConfigError, DataFormatError
from highlightzoo.io import is_stale_temp_file, temp_files_of


def register(subparsers) -> None:
    """Add the ``data`` command group."""
    data = subparsers.add_parser("data", help="make, import and inspect feature stores")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda args: data.print_help() or 1)

    p = sub.add_parser("synth", help="generate a synthetic world into a feature store")
    p.add_argument("--preset", default="tiny", choices=sorted(WORLD_PRESETS),
                   help="world size: tiny (tests), quick (CPU benchmark), standard (GPU "
                        "benchmark), paper (the paper's 9,478/750/675 users); default tiny")  # fmt: skip
    p.add_argument("--seed", type=whole_number, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--out", required=True, help="output .h5 path (written atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    p = sub.add_parser("replay", help="PHD-GIFs CSV structure with synthetic features")
    p.add_argument("csv", help="PHD-GIFs CSV (e.g. testing.csv)")
    p.add_argument("--preset", default="quick", choices=sorted(WORLD_PRESETS),
                   help="preset whose feature parameters to use (its user counts are "
                        "ignored); default quick")  # fmt: skip
    p.add_argument("--seed", type=whole_number, default=0, help="random seed of the features and split")
    p.add_argument("--out", required=True, help="output .h5 path (written atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_replay)

    p = sub.add_parser("import-phdgifs", help="import a PHD-GIFs CSV with your own features")
    p.add_argument(
        "csv", nargs="?", default=None,
        help="one PHD-GIFs CSV (youtubeId,start,duration,user_id,video_duration,is_last), its "
             "users split 80/10/10; or give --train and --test instead",
    )  # fmt: skip
    p.add_argument("--train", metavar="CSV", help="the official training CSV (training.csv)")
    p.add_argument("--test", metavar="CSV",
                   help="the official test CSV (testing.csv): its users are exactly the test split")
    p.add_argument("--val-users", type=float, default=None, metavar="N_OR_FRACTION",
                   help="with --train/--test: validation users drawn from the training users, a "
                        "count (e.g. 750, the paper's) or a fraction (default 0.1), seeded by "
                        "--split-seed")  # fmt: skip
    p.add_argument("--features", required=True,
                   help="HDF5 file with one (T, D) dataset per video id (at the root or under "
                        "/features), or one group per video with 'features' (the eccv16 "
                        "summarisation layout, matched by its 'video_name'), or a folder of "
                        "<video id>.npy / <video id>.npz")  # fmt: skip
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="feature steps per second (default: the rate a `features extract` file states, "
             "else 1.875: C3D every 16 frames at 30 fps)",
    )
    p.add_argument("--out", required=True, help="output .h5 path (written atomically)")
    p.add_argument(
        "--split-seed",
        type=whole_number,
        default=0,
        help="seed of the 80/10/10 train/val/test user split (default 0)",
    )
    p.add_argument("--float16", action="store_true", help="store features as float16")
    p.add_argument("--lenient", action="store_true",
                   help="skip malformed CSV lines and unreadable feature files (reported) "
                        "instead of failing; videos without features or of another feature "
                        "size are always skipped and reported")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_import)

    p = sub.add_parser("info", help="statistics of a feature store")
    p.add_argument("store", help="a highlightzoo .h5 feature store")
    p.add_argument(
        "--lenient",
        action="store_true",
        help="skip invalid users (reported) instead of failing on the first problem",
    )
    p.add_argument(
        "--no-feature-check",
        action="store_true",
        help="skip the NaN/Inf scan of all features on open (faster on big files)",
    )
    p.add_argument(
        "--min-fraction",
        type=float,
        default=0.5,
        help="label rule: a step is positive when highlights cover this share of it",
    )
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=_info)


def _synth(args: argparse.Namespace) -> int:
    report = synthesize(args.preset, args.seed, args.out, progress=not args.quiet)
    print(f"wrote {args.out}: {report.summary()}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    report = synthesize_replay(
        args.csv, args.seed, args.out, config=args.preset, progress=not args.quiet
    )
    print(f"wrote {args.out}: {report.summary()}")
    for line, reason in report.dropped_rows:
        print(f"  dropped CSV line {line}: {reason}")
    return 0


def _import(args: argparse.Namespace) -> int:
    if args.csv and (args.train or args.test):
        raise ConfigError("give one CSV, or --train and --test, not both")
    if not args.csv and not (args.train and args.test):
        raise ConfigError("import-phdgifs needs a CSV, or both --train CSV and --test CSV")
    report = import_phdgifs(
        args.csv or args.train, args.features, args.rate, args.out, split_seed=args.split_seed,
        test_csv=args.test, val_users=args.val_users,
        dtype="float16" if args.float16 else "float32", strict=not args.lenient,
        progress=not args.quiet,
    )  # fmt: skip
    print(f"wrote {args.out}: {report.summary()}; splits {report.splits}")
    shown = report.dropped_videos[:DROPPED_SHOWN]
    for video, reason in shown:
        print(f"  dropped video {video!r}: {reason}")
    if len(report.dropped_videos) > len(shown):
        print(f"  ... and {len(report.dropped_videos) - len(shown)} more dropped videos")
    return 0


#: dropped videos listed by ``data import-phdgifs`` (all are counted in its summary line)
DROPPED_SHOWN = 20


def _temp_file_notes(store: str) -> list[str]:
    """One line per temp file next to ``store`` left by a write to it (killed or running)."""
    notes = []
    for tmp in temp_files_of(Path(store)):
        size = tmp.stat().st_size / 1e6
        why = (
            "left by an interrupted write (its process is gone); the next write to this store "
            "removes it, or delete it" if is_stale_temp_file(tmp, Path(store))
            else "of a write that may still be running (or from another host or tool)"
        )  # fmt: skip
        notes.append(f"temp file {str(tmp)!r} ({size:.1f} MB) {why}")
    return notes


def _info(args: argparse.Namespace) -> int:
    notes = _temp_file_notes(args.store)
    try:
        store = FeatureStore(
            args.store, strict=not args.lenient, check_features=not args.no_feature_check
        )
    except DataFormatError as err:
        if not notes:
            raise
        raise DataFormatError(f"{err.args[0]}; also found {'; '.join(notes)}", reason=err.reason) from None
    stats = store_statistics(store, args.min_fraction)
    if store.report.skipped:
        print(store.report.summary())
    if args.json:
        print(json.dumps({**stats, "temp_files": notes}, indent=2))
        return 0
    for note in notes:
        print(f"note: {note}")
    print(f"{stats['file']}  ({stats['metadata']['source']}, D={stats['metadata']['feature_dim']})")
    print(f"users per split: {stats['users_per_split']}  videos: {stats['videos']}  "
          f"steps: {stats['steps']}")  # fmt: skip
    for key in ("history_segments_per_user", "history_videos_per_user",
                "target_segments_per_user", "segment_duration_s", "video_duration_s",
                "feature_coverage", "target_coverage"):  # fmt: skip
        d = stats[key]
        print(f"{key:28s} min {d['min']:.3g}  median {d['median']:.3g}  mean {d['mean']:.3g}  "
              f"p90 {d['p90']:.3g}  max {d['max']:.3g}")  # fmt: skip
    print(f"positive:unlabeled (target videos) 1:{stats['positive_to_unlabeled']:.1f}; "
          f"(all annotated videos) 1:{stats['annotated_positive_to_unlabeled']:.1f}; "
          f"users without a positive step: {stats['users_without_positive_step']}")  # fmt: skip
    if stats["videos_feature_coverage_off"]:
        lo, hi = VIDEO_COVERAGE
        print(f"note: the features of {stats['videos_feature_coverage_off']} videos cover less "
              f"than {lo:.0%} or more than {hi:.0%} of their stated duration (n_steps / rate / "
              f"duration): truncated features, or a wrong rate or duration")
    return 0
