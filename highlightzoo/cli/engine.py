"""``highlightzoo train | evaluate | predict``: the training and inference engine on the command line.

Every failure the user can fix (bad checkpoint, existing run folder, bad
arrays, bad config) is a :class:`~highlightzoo.errors.HighlightZooError`, which
``highlightzoo.cli.main`` prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from highlightzoo.cli import whole_number
from highlightzoo.device import PRECISIONS
from highlightzoo.errors import ConfigError, DataFormatError
from highlightzoo.features.backbones import get_backbone_spec
from highlightzoo.features.extract import features_mismatch
from highlightzoo.features.for_run import extractor_for_run, history_from_csv, history_from_files
from highlightzoo.features.video import require_video_file
from highlightzoo.inference import Detector, as_features
from highlightzoo.io import read_arrays
from highlightzoo.models.registry import list_models
from highlightzoo.training import TrainConfig
from highlightzoo.training.checkpoint import load_checkpoint, resolve_checkpoint_path
from highlightzoo.training.config import parse_override
from highlightzoo.training.evaluation import evaluate_checkpoint
from highlightzoo.training.resume import resume_overrides
from highlightzoo.training.runs import read_json


class _LazyChoices:
    """Model-name choices read from the registry only when argparse checks a value.

    Keeps ``highlightzoo --help`` from importing every model, while ``--model``
    still only accepts registered names (plugins included).
    """

    def __contains__(self, name: object) -> bool:
        return name in list_models()

    def __iter__(self):
        return iter(list_models())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``evaluate`` and ``predict``."""
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_predict(subparsers)


# --------------------------------------------------------------------------- train


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model, select it on validation users, test it",
        description=(
            "Train a registered model on a feature store: a budget in optimiser steps, validation "
            "mAP every --eval-every steps, early stopping (--patience validations, not before "
            "--min-steps) and best checkpoint on validation users only, final test evaluation in "
            "RUN/results.json. Runs under torchrun unchanged (DistributedDataParallel)."
        ),
    )
    p.add_argument("--model", choices=_LazyChoices(), metavar="MODEL",
                   help="registered model name (see `highlightzoo list-models`)")
    p.add_argument("--data", help="feature store (.h5) with train/val/test splits")
    p.add_argument("--config", type=Path, help="TrainConfig JSON (e.g. a run's config.json); flags override it")
    p.add_argument("--out", help="run folder to create (must not exist; default: a fresh runs/<model>-s<seed>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder from its last checkpoint")
    p.add_argument("--epochs", type=whole_number, help="budget in passes over the training samples, if no --max-steps")
    p.add_argument("--max-steps", type=whole_number, help="budget cap in optimiser steps")
    p.add_argument("--eval-every", type=whole_number, help="validate every N steps (default: once per pass)")
    p.add_argument("--patience", type=whole_number, help="early stopping: validations without a better validation mAP")
    p.add_argument("--min-steps", type=whole_number, help="never stop early before this many steps")
    p.add_argument("--min-delta", type=float, help="an improvement must exceed this many mAP points")
    p.add_argument("--sampling", choices=("leave_one_out", "last_video"),
                   help="training samples: every annotated video (default) or the last one per user")
    p.add_argument("--protocol", choices=("avhd", "steps"),
                   help="AP of validation and test: A-VHD reference protocol (default) or per step")
    p.add_argument("--history-order", choices=("stored", "reversed"),
                   help="history segments newest first as stored (default; a cap keeps the most "
                        "recent) or reversed (a cap keeps the oldest)")
    p.add_argument("--seed", type=whole_number)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", choices=PRECISIONS, help="bf16 = bf16 autocast, CUDA only")
    p.add_argument("--batch-size", type=whole_number, help="users per optimiser step (per process)")
    p.add_argument("--eval-batch-size", type=whole_number, help="whole videos per evaluation batch")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--clip-len", type=whole_number, help="training clip length in steps (paper: 256)")
    p.add_argument("--history-cap", help="'card' (the model card's cap, default), 'none' (all) or an int")
    p.add_argument("--num-workers", type=whole_number, help="DataLoader worker processes")
    p.add_argument("--max-train-users", type=whole_number, help="train on the first N training users only")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model override for create_model, value read as JSON (repeatable)")
    p.add_argument("--cuda-graphs", action="store_const", const=True,
                   help="replay training steps whose batch shapes repeat as CUDA graphs "
                        "(CUDA, one process; docs/training.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages (train.log is still written)")
    p.set_defaults(func=run_train)


# Flags that map one-to-one to TrainConfig fields.
_TRAIN_FIELDS = (
    "model", "data", "out", "epochs", "patience", "seed", "device", "precision", "batch_size",
    "eval_batch_size", "lr", "weight_decay", "clip_len", "num_workers", "max_train_users",
    "max_steps", "eval_every", "min_steps", "min_delta", "sampling", "protocol", "history_order",
    "cuda_graphs",
)


def _history_cap(text: str) -> int | str | None:
    if text == "card":
        return "card"
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--history-cap must be 'card', 'none' or an int, got {text!r}") from None


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields set on the command line."""
    given = {k: getattr(args, k) for k in _TRAIN_FIELDS if getattr(args, k) is not None}
    if args.history_cap is not None:
        given["history_cap"] = _history_cap(args.history_cap)
    if args.set:
        given["model_overrides"] = dict(parse_override(s) for s in args.set)
    return given


def run_train(args: argparse.Namespace) -> int:
    from highlightzoo.training.trainer import train  # the training loop only when training

    given = _given(args)
    if args.resume:
        if args.config:
            raise ConfigError("--resume uses the run's own config; drop --config")
        result = train(None, args.quiet, resume=args.resume, overrides=resume_overrides(given, args.resume))
    else:
        base: dict[str, Any] = {}
        if args.config:
            base = read_json(args.config, "training config")
            base.pop("out", None)
        if "model_overrides" in given:
            given["model_overrides"] = {**base.get("model_overrides", {}), **given["model_overrides"]}
        merged = {**base, **given}
        missing = [f"--{k}" for k in ("model", "data") if k not in merged]
        if missing:
            raise ConfigError(f"train needs {' and '.join(missing)} (or --resume RUN)")
        result = train(TrainConfig.from_dict(merged), args.quiet)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    sel = result.selection
    tested = (
        f"test mAP {result.test.map:.3f} ({result.test.n_pairs} videos, protocol "
        f"{result.config.protocol})" if result.test is not None else "no test split read"
    )
    print(f"{tested}; best step {sel.best_step} of {sel.steps_run}, stopped by {sel.stop_reason}; "
          f"run folder: {result.run_dir}")
    return 0


# --------------------------------------------------------------------------- evaluate


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a run's best checkpoint (or a checkpoint file) on a split",
        description=(
            "Score whole videos of a split with a checkpoint, exactly as training's final test "
            "does (same history cap, batch size and metrics): mAP, user mAP, CI, nMSD, hit@k."
        ),
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT", help="run folder (uses checkpoints/best.pt) or .pt file")
    p.add_argument("--data", help="feature store (default: the one the run was trained on)")
    p.add_argument("--split", default="test", help="user split to evaluate (default: test)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto, ...")
    p.add_argument("--batch-size", type=whole_number, help="whole videos per batch (default: the run's)")
    p.add_argument("--json", action="store_true", help="print the full result (per-video records) as JSON")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument(
        "--protocol", choices=("avhd", "steps"),
        help="AP protocol of the headline mAP (docs/evaluation.md); both are computed "
        "(default: the run's protocol, 'steps' for older runs)",
    )  # fmt: skip
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    payload = load_checkpoint(resolve_checkpoint_path(args.checkpoint))
    model = payload["model_card"].get("name")
    result = evaluate_checkpoint(
        payload,
        data=args.data,
        split=args.split,
        device=args.device,
        batch_size=args.batch_size,
        progress=args.progress,
        protocol=args.protocol,
    )
    if args.json:
        print(json.dumps({"model": model, "checkpoint": payload["path"], **result.to_dict()}, indent=2))
    else:
        print(
            f"{model} ({payload['path']}) {args.split}, protocol {result.protocol}: "
            f"mAP {result.map:.3f} (95% CI {result.ci_text()}), "
            f"user mAP {result.user_map:.3f}, nMSD {result.nmsd:.4f}, hit@{result.hit_k} "
            f"{result.hit:.3f}; {result.n_pairs} videos, {result.n_skipped} skipped; "
            + ", ".join(f"mAP[{p}] {v:.3f}" for p, v in result.map_by_protocol.items())
        )
    return 0


# --------------------------------------------------------------------------- predict


def _add_predict(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="top-k highlights of one video for one user's history",
        description=(
            "Score a video for a user history and print the top-k segments in seconds with "
            "explanations. Either a video file (--video; needs the [video] extra: features are "
            "extracted with the run's backbone) with history clips as files (--history a.mp4 ...) "
            "or as a CSV of video,start,end rows (--history-csv), or precomputed features: a "
            "(T x D) .npy (--video-features) with a history .npz (one (L_j x D) array per history "
            "segment, in saved order; optional int array 'history_video' giving each segment's "
            "history-video index)."
        ),
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run folder")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", type=Path, help="a video file (see docs/your-own-data.md)")
    source.add_argument("--video-features", type=Path, help="(T, D) float array, .npy")
    p.add_argument("--history", type=Path, nargs="+",
                   help="history: video files (with --video), or one .npz of segment features "
                        "(with --video-features); omit: empty history")  # fmt: skip
    p.add_argument("--history-csv", type=Path,
                   help="with --video: history segments as video,start,end rows (seconds; paths "
                        "relative to the CSV)")  # fmt: skip
    p.add_argument("--rate", type=float,
                   help="feature steps per second of --video-features (with --video: the run's)")
    p.add_argument("--backbone", help="backbone of the features (default: the run's; another one is refused)")
    p.add_argument("--weights", help="backbone weights for --video (default: the run's; a file if "
                                     "the run used one)")  # fmt: skip
    p.add_argument("--top-k", type=whole_number, default=5)
    p.add_argument("--explain-top", type=whole_number, default=3, help="history segments listed per chosen segment")
    p.add_argument("--device", default="cpu")
    p.add_argument("--window-steps", type=whole_number, default=4096,
                   help="score longer videos in windows of this many steps (0: whole video)")
    p.add_argument("--json", action="store_true", help="print JSON (scores, segments, explanations)")
    p.set_defaults(func=run_predict)


HISTORY_VIDEO_KEY = "history_video"


def load_video_features(path: Path, dim: int | None = None) -> torch.Tensor:
    """The (T, D) features of a .npy file (no pickles), checked as ``Detector.predict``
    checks them (``dim``: the model's feature dim); errors name the file."""
    array = read_arrays(path, "video features")
    if not isinstance(array, np.ndarray):
        raise DataFormatError("expected one array in a .npy file", path=str(path))
    return as_features(array, dim, "video features", str(path))


def load_history(
    path: Path | None, dim: int | None = None
) -> tuple[list[torch.Tensor], list[int] | None]:
    """History segments of a .npz, in saved order, each checked as ``Detector.predict``
    checks them (errors name the file and the array), and the optional ``history_video``
    array."""
    if path is None:
        return [], None
    arrays = read_arrays(path, "history segments")
    if not isinstance(arrays, dict):
        raise DataFormatError("expected a .npz of history segments, got one array (a .npy)",
                              path=str(path))
    owners = arrays.pop(HISTORY_VIDEO_KEY, None)
    segments = [as_features(array, dim, f"history segment {name!r}", str(path))
                for name, array in arrays.items()]
    if owners is not None:  # kept as stored: Detector.predict refuses non-integers, never truncates
        owners = np.asarray(owners).reshape(-1).tolist()
    return segments, owners


def _run_features(checkpoint: str) -> dict[str, Any] | None:
    """How the run's store features were made (its checkpoint's ``features``), or None."""
    return load_checkpoint(resolve_checkpoint_path(checkpoint)).get("features")


def _check_declared_backbone(args: argparse.Namespace) -> None:
    """``--backbone`` with ``--video-features`` says where the .npy came from: it must be the run's.
    (``--rate`` alone is checked against the run's features by ``Detector.predict``.)"""
    if args.backbone is None:
        return

    spec = get_backbone_spec(args.backbone)
    declared = {"backbone": spec.name, "feature_dim": spec.feature_dim, "rate": args.rate}
    problem = features_mismatch(_run_features(args.checkpoint), declared)
    if problem:
        raise ConfigError(f"refused: {problem}")


def _features_from_videos(
    args: argparse.Namespace, feature_dim: int | None
) -> tuple[np.ndarray, list, list[int], float]:
    """``--video`` (+ ``--history`` files / ``--history-csv``) -> features with the run's backbone."""
    if args.history and args.history_csv:
        raise ConfigError("give history clips with --history or --history-csv, not both")
    for path in (args.video, *(args.history or [])):  # before any weights load
        require_video_file(path)
    if args.history_csv is not None and not Path(args.history_csv).is_file():
        raise DataFormatError("history CSV does not exist", path=str(args.history_csv))
    extractor = extractor_for_run(
        _run_features(args.checkpoint), backbone=args.backbone, weights=args.weights,
        device=args.device, feature_dim=feature_dim,
    )
    if args.rate is not None and not np.isclose(args.rate, extractor.rate):
        raise ConfigError(f"--rate {args.rate:g} differs from the backbone's {extractor.rate:g} steps/s; drop it")
    video, _ = extractor.extract(args.video)
    if args.history_csv is not None:
        segments, owners = history_from_csv(extractor, args.history_csv)
    else:
        segments, owners = history_from_files(extractor, list(args.history or []))
    return video, segments, owners, extractor.rate


def run_predict(args: argparse.Namespace) -> int:
    detector = Detector.from_checkpoint(
        args.checkpoint, device=args.device, window_steps=args.window_steps or None
    )
    if args.video is not None:
        video, segments, owners, args.rate = _features_from_videos(args, detector.feature_dim)
    else:
        if args.history_csv is not None:
            raise ConfigError("--history-csv lists history clips in video files, so it needs "
                              "--video; with --video-features give --history H.npz")
        if args.history and len(args.history) > 1:
            raise ConfigError("--video-features takes one history .npz; video files need --video")
        if args.weights is not None:  # it would be ignored: nothing is extracted
            raise ConfigError("--weights are the backbone's, used to extract --video; "
                              "--video-features are features already")
        if args.rate is None:
            raise ConfigError("--video-features needs --rate (feature steps per second)")
        _check_declared_backbone(args)
        video = load_video_features(args.video_features, detector.feature_dim)
        segments, owners = load_history(args.history[0] if args.history else None,
                                        detector.feature_dim)
    prediction = detector.predict(
        video, segments, args.rate, args.top_k, history_video=owners, explain_top=args.explain_top
    )
    if args.json:
        json.dump(prediction.to_dict(), sys.stdout)
        print()
        return 0
    print(f"{prediction.model}: {len(video)} steps at {args.rate:g} steps/s, {len(segments)} history segments")
    for rank, seg in enumerate(prediction.segments, start=1):
        line = f"{rank}. {seg.start_s:8.2f}s - {seg.end_s:8.2f}s  score {seg.score:.4f}"
        if prediction.explanations is not None:
            e = prediction.explanations[rank - 1]
            if e.user_weight is not None:
                line += f"  user/generic weight {e.user_weight:.2f}/{e.generic_weight:.2f}"
            if e.history:
                line += "  attends " + ", ".join(f"#{j} ({w:.2f})" for j, w in e.history)
        print(line)
    return 0
