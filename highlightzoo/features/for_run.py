"""Features for a trained run straight from video files (``predict --video``).

The run records how its store's features were made (backbone, weights, crop,
rate: the ``features`` entry of its checkpoint); :func:`extractor_for_run`
rebuilds that extractor, and refuses a backbone that differs, naming both.
History clips come as whole files (:func:`history_from_files`) or as a CSV of
``video, start, end`` rows (:func:`history_from_csv`): each history video is
extracted once and its rows become segments of it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from highlightzoo.data.labels import segment_steps
from highlightzoo.errors import ConfigError, DataFormatError
from highlightzoo.features.backbones import get_backbone_spec
from highlightzoo.features.extract import Extractor, features_mismatch
from highlightzoo.io import read_csv_lines


def run_weights(info: dict[str, Any], given: str | None) -> str:
    """The ``--weights`` value that rebuilds the run's backbone weights.

    Random (``none``) and published (``default``) weights are rebuilt from
    their identifier; a run made with a local file needs ``given`` (the same
    file: its SHA-256 prefix is checked by the caller through the identifier).
    """
    ident = str(info.get("weights", ""))
    spec = get_backbone_spec(str(info.get("backbone")))
    if given is not None:
        return given
    if ident.startswith("none"):
        return "none"
    if ident == spec.weights:
        return "default"
    raise ConfigError(
        f"the run's features were made with the weights {ident!r}; give that file with --weights PATH"
    )


def extractor_for_run(
    info: dict[str, Any] | None,
    *,
    backbone: str | None = None,
    weights: str | None = None,
    device: str = "cpu",
    progress: bool = False,
    feature_dim: int | None = None,
) -> Extractor:
    """The extractor that made the run's features (``info``), or the one asked for if it agrees.

    A run without ``info`` (features made elsewhere) needs ``backbone``, whose feature width
    must be the model's ``feature_dim`` (when given); a ``backbone`` other than the run's is
    refused with a message naming both, as are weights whose identifier differs from the
    run's. Both checks come before any weights load.
    """
    if info is None:
        if backbone is None:
            raise ConfigError(
                "this run's store does not say how its features were made; name the backbone with "
                "--backbone (it must be the one its features came from)"
            )
        width = get_backbone_spec(backbone).feature_dim
        if feature_dim is not None and width != feature_dim:
            raise ConfigError(
                f"backbone {backbone!r} gives {width}-d features, but the model takes "
                f"{feature_dim}-d: its features came from another backbone"
            )
        return Extractor.create(backbone, weights or "default", device=device, progress=progress)
    wanted = {**info, "backbone": backbone} if backbone else info
    if backbone:
        spec = get_backbone_spec(backbone)
        wanted = {**wanted, "feature_dim": spec.feature_dim, "rate": spec.rate}
    problem = features_mismatch(info, wanted)
    if problem:
        raise ConfigError(f"refused: {problem}; use the run's backbone {info.get('backbone')!r}")
    crop = (info.get("preprocessing") or {}).get("crop")
    extractor = Extractor.create(
        str(info["backbone"]), run_weights(info, weights), crop=crop, device=device, progress=progress
    )
    if extractor.weights != info.get("weights"):
        raise ConfigError(
            f"refused: the model was trained on features from weights {info.get('weights')!r}, "
            f"--weights gives {extractor.weights!r}"
        )
    return extractor


def history_from_files(
    extractor: Extractor, paths: list[str | os.PathLike]
) -> tuple[list[np.ndarray], list[int]]:
    """Each file is one whole history clip, of its own history video."""
    segments = [extractor.extract(p)[0] for p in paths]
    return segments, list(range(len(segments)))


def history_from_csv(extractor: Extractor, path: str | os.PathLike) -> tuple[list[np.ndarray], list[int]]:
    """History segments from a CSV of ``video, start, end`` rows (seconds; header row required).

    ``video`` is a file path, relative to the CSV's folder unless absolute. A segment's
    steps are chosen by :func:`highlightzoo.data.labels.segment_steps`, the rule training
    took the history segments of a store with (steps whose midpoint lies in the segment, at
    least one), so a model sees a history as it was trained to; rows of one file share its
    history-video index, numbered in order of first appearance.
    """
    path = Path(path)
    cache: dict[Path, tuple[np.ndarray, float]] = {}
    owner: dict[Path, int] = {}
    segments: list[np.ndarray] = []
    owners: list[int] = []
    for csv_line in read_csv_lines(path, ("video", "start", "end"), "history CSV"):
        line, row = csv_line.line, csv_line.cells
        if csv_line.problem:
            raise DataFormatError(f"line {line} {csv_line.problem}", path=str(path))
        if not row["video"].strip():  # Path("") would name the CSV's own folder
            raise DataFormatError(f"line {line}: the video cell is empty", path=str(path))
        file = Path(row["video"])
        file = file if file.is_absolute() else path.parent / file
        try:
            start, end = float(row["start"]), float(row["end"])
        except (TypeError, ValueError):
            raise DataFormatError(f"line {line}: start/end are not numbers", path=str(path)) from None
        if file not in cache:
            cache[file] = extractor.extract(file)
            owner[file] = len(owner)
        feats, duration = cache[file]
        if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start < end or start >= duration:
            raise DataFormatError(
                f"line {line}: segment [{start}, {end}] s is empty or outside the video ({duration:.2f} s)",
                path=str(path), video=str(file),
            )  # fmt: skip
        first, stop = segment_steps(start, end, extractor.rate, len(feats))
        segments.append(feats[first:stop])
        owners.append(owner[file])
    return segments, owners
