"""``highlightzoo features``: video files -> a features file (the ``[video]`` extra).

- ``features extract VIDEO_OR_FOLDER... --backbone NAME --out F.h5``
- ``features backbones``: the backbones, their rate and default weights

See docs/your-own-data.md.
"""

from __future__ import annotations

import argparse
import json

from highlightzoo.cli import whole_number
from highlightzoo.features.backbones import BACKBONES
from highlightzoo.features.extract import Extractor, extract_features, videos_to_extract


def register(subparsers) -> None:
    """Add the ``features`` command group."""
    group = subparsers.add_parser("features", help="extract features from video files")
    sub = group.add_subparsers(dest="features_command", metavar="SUBCOMMAND")
    group.set_defaults(func=lambda args: group.print_help() or 1)

    p = sub.add_parser(
        "extract", help="video files or folders -> one (T, D) features dataset per video",
        description="Decode each video as a stream and embed it with a backbone; write an HDF5 "
        "file that `data import-phdgifs --features` reads (video id = file name without its "
        "ending). A file in a folder that cannot be decoded is reported and skipped.",
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER")
    p.add_argument("--backbone", required=True, choices=sorted(BACKBONES),
                   help="see `highlightzoo features backbones`")  # fmt: skip
    p.add_argument("--out", required=True, help="output .h5 (written atomically)")
    p.add_argument("--weights", default="default",
                   help="'default' (torchvision's published weights, downloaded once to torch's "
                        "hub cache), a local state-dict file, or 'none' (seeded random weights, "
                        "for tests)")  # fmt: skip
    p.add_argument("--crop", type=whole_number, default=None,
                   help="input size in pixels (default: the backbone's; smaller is faster and "
                        "is recorded in the file)")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.add_argument("--chunk-steps", type=whole_number, default=32,
                   help="feature steps embedded at a time (bounds memory; default 32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_extract)

    p = sub.add_parser("backbones", help="list the feature backbones")
    p.add_argument("--json", action="store_true", help="print every field as JSON")
    p.set_defaults(func=_backbones)


def _extract(args: argparse.Namespace) -> int:
    videos_to_extract(args.inputs)  # a typo in a path is refused before any weights load
    extractor = Extractor.create(
        args.backbone, args.weights, crop=args.crop, device=args.device,
        chunk_steps=args.chunk_steps, progress=not args.quiet,
    )  # fmt: skip
    report = extract_features(args.inputs, args.out, extractor, progress=not args.quiet)
    print(f"wrote {args.out}: {report.summary()}; {args.backbone} ({extractor.weights}), "
          f"{extractor.rate:g} steps/s, {extractor.spec.feature_dim}-d")  # fmt: skip
    for path, why in report.skipped:
        print(f"  skipped {path}: {why}")
    return 0


def _backbones(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({n: s.to_dict() for n, s in BACKBONES.items()}, indent=2))
        return 0
    for name, spec in BACKBONES.items():
        print(f"{name:12s} {spec.kind:5s} {spec.feature_dim}-d, {spec.rate:g} steps/s, "
              f"{spec.crop}px; weights: {spec.weights}")  # fmt: skip
        print(f"{'':12s} {spec.description}")
    return 0
