"""The feature store's format (version 1): names, limits and the record types shared by
:mod:`highlightzoo.data.store_reader` and :mod:`highlightzoo.data.store_writer`.

Layout (described in ``docs/data-format.md``)::

    /                     attrs: format, format_version, feature_dim, source,
                                 generator_config (JSON, "" when not synthetic),
                                 created_with
    /videos/<quoted id>   (T, D) float32|float16, chunked, one per video (stored once)
    /video_index/         ids, dataset (name under /videos), rate, duration, n_steps
    /users/               ids, target_video, target_ptr (U+1), target_segments (S, 2),
                          history_ptr (U+1), history_video (H,), history_segments (H, 2)
    /splits/<name>        user ids of the split (train, val, test, ...)

Segments are ``(start, end)`` in seconds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import h5py
import numpy as np

from highlightzoo.errors import DataFormatError
from highlightzoo.shapes import NUMBER, OrNull, Where, shape_problem, strict_json

FORMAT_NAME = "highlightzoo-features"
#: the ``format`` attribute of a features file of ``highlightzoo features extract`` (not a store)
FEATURES_FORMAT = "highlightzoo-video-features"
#: root attribute (JSON) naming how the features were made; copied into stores and runs
FEATURES_ATTR = "features"
FORMAT_VERSION = 1
#: A segment may end this many seconds after its video's stated duration
#: (PHD-GIFs rounds video durations to whole seconds; 9 of 20,488 rows of
#: testing.csv end up to 1 s past the rounded duration).
DURATION_TOLERANCE_S = 1.0
#: HDF5 groups every store has
REQUIRED_GROUPS = ("videos", "video_index", "users", "splits")
#: no user may be in two of these splits (that would leak test users into training)
STANDARD_SPLITS = ("train", "val", "test")
#: root attributes that say what a store holds (``created_with`` is left out: same data, same id)
FINGERPRINT_ATTRS = ("format", "format_version", "feature_dim", "source", "generator_config")
#: The share of its duration a video's features may cover (``n_steps / rate / duration``):
#: outside it, the features are truncated or of another video. The import drops such a
#: video (``length_mismatch``) and ``data info`` counts them.
VIDEO_COVERAGE = (0.5, 2.0)
#: HDF5 type of id tables and string attributes
STR_DTYPE = h5py.string_dtype("utf-8")


class HistorySegment(NamedTuple):
    """One history highlight: the video it is in and its span in seconds."""

    video_id: str
    start: float
    end: float


@dataclass(frozen=True)
class UserRecord:
    """One user's annotations: a target video with its highlights, and the history."""

    user_id: str
    target_video: str
    target_segments: np.ndarray  # (K, 2) float64 seconds
    history: list[HistorySegment]

    @property
    def history_videos(self) -> list[str]:
        """Distinct history video ids in order of first appearance."""
        return list(dict.fromkeys(h.video_id for h in self.history))


@dataclass(frozen=True)
class VideoEntry:
    """Where a video's features are and what they are: HDF5 name, rate, duration, length."""

    dataset: str
    rate: float
    duration: float
    n_steps: int


def feature_coverage(n_steps: int, rate: float, duration: float) -> float:
    """The share of a ``duration`` s video that ``n_steps`` feature steps at ``rate`` cover
    (step ``i`` spans ``[i / rate, (i + 1) / rate)``): about 1 when the features fit it."""
    return n_steps / rate / duration


def video_dataset_name(video_id: str) -> str:
    """The HDF5 name of a video's features: the id, percent-quoted (no '/' or leading '.')."""
    name = quote(video_id, safe="-_~")
    return name if not name.startswith(".") else "%2E" + name[1:]


def text_of(value: Any) -> str:
    """An HDF5 string attribute or table value as ``str`` (bytes decoded as UTF-8)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


#: What the package reads of a ``features`` description (``Extractor.info()`` writes it): the
#: import takes its rate, ``predict`` compares backbone, size and rate, and re-extracts with its
#: weights and crop. Other keys are kept as they are.
FEATURES_INFO_SHAPE = {
    "backbone?": OrNull(str), "kind?": OrNull(str), "weights?": OrNull(str),
    "rate?": OrNull(Where(NUMBER, lambda r: math.isfinite(r) and r > 0, "a number > 0")),
    "feature_dim?": OrNull(Where(int, lambda d: d >= 1, "an int >= 1")),
    "preprocessing?": OrNull({"crop?": OrNull(NUMBER)}),
}


def features_info_of(value: Any, path: str) -> dict[str, Any] | None:
    """A ``features`` attribute as the description it holds (None when absent or empty), else a
    :class:`DataFormatError` naming the file: not a JSON object, or a known key of the wrong
    kind (a rate of ``"2"`` was reported as a bad ``--rate``; an array was a traceback)."""
    if value is None:
        return None
    if not isinstance(value, (str, bytes)):
        raise DataFormatError(f"the {FEATURES_ATTR!r} attribute must be a JSON text, got "
                              f"{type(value).__name__}", path=path, reason="malformed_table")
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        info = strict_json(text) if text else None
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise DataFormatError(f"the {FEATURES_ATTR!r} attribute is not JSON ({err})", path=path,
                              reason="malformed_table") from None
    problem = None if info is None else shape_problem(info, FEATURES_INFO_SHAPE, FEATURES_ATTR)
    if problem:
        raise DataFormatError(f"the features description is malformed: {problem}", path=path,
                              reason="malformed_table")
    return info


def read_features_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``features`` attribute of an HDF5 features file or store (None when absent), checked
    by :func:`features_info_of`."""
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get(FEATURES_ATTR)
    except (OSError, ValueError):
        return None
    return features_info_of(value, str(path))


def features_mismatch(expected: dict[str, Any] | None, given: dict[str, Any] | None) -> str | None:
    """A sentence naming both sides when two feature descriptions differ in backbone, size or rate.

    None when they agree, or when either side is unknown (features made elsewhere).
    """
    if not expected or not given:
        return None
    keys = ("backbone", "feature_dim", "rate")
    diff = [k for k in keys if expected.get(k) != given.get(k)]
    if not diff:
        return None

    def name(info: dict[str, Any]) -> str:
        return f"{info.get('backbone')} ({info.get('feature_dim')}-d, {info.get('rate')} steps/s)"

    return f"the model was trained on {name(expected)} features, these are {name(given)} features"
