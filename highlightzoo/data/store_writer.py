"""Writing a feature store: :class:`StoreWriter`, atomic (a temp file renamed on a clean close).

Videos are written as they come (bounded memory); user and split tables on
close. The temp file and the rename go through :mod:`highlightzoo.io`, the one
place for atomic writes. The format is in :mod:`highlightzoo.data.store_format`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from highlightzoo import __version__
from highlightzoo.checks import int_at_least
from highlightzoo.data.store_format import (
    FEATURES_INFO_SHAPE,
    FORMAT_NAME,
    FORMAT_VERSION,
    STR_DTYPE,
    HistorySegment,
    UserRecord,
    VideoEntry,
    video_dataset_name,
)
from highlightzoo.errors import ConfigError, DataFormatError, WriteError
from highlightzoo.io import commit_temp_file, new_temp_file
from highlightzoo.shapes import shape_problem


class StoreWriter:
    """Write a feature store atomically: a temp file next to ``path``, renamed on close.

    Use as a context manager; on an exception the temp file is removed and
    ``path`` is untouched. Videos are written as they come (bounded memory);
    user and split tables are written on close. HDF5 object timestamps are
    off, so the same calls give the same bytes.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        feature_dim: int,
        *,
        source: str = "",
        generator_config: dict | None = None,
        dtype: str = "float32",
        compression: str | None = None,
        chunk_steps: int = 256,
        features_info: dict | None = None,
    ) -> None:
        if dtype not in ("float32", "float16"):
            raise ConfigError(f"dtype must be float32 or float16, got {dtype!r}")
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, numbers.Integral) or feature_dim < 1:
            raise ConfigError(f"feature_dim must be an int >= 1, got {feature_dim!r}")
        # every argument checked before the temp file exists: h5py refused a compression of
        # "x" or chunks of 0 steps at the first video, and a generator_config that is not JSON
        # failed after the temp file was made, leaving it behind
        if compression not in (None, "gzip", "lzf"):
            raise ConfigError(f"compression must be None, 'gzip' or 'lzf', got {compression!r}")
        chunk_steps = int_at_least(chunk_steps, 1, "chunk_steps")
        if not isinstance(source, str):
            raise ConfigError(f"source must be a text, got {source!r}")
        config_text = _json_text(generator_config, "generator_config")
        info_text = _json_text(features_info, "features_info")
        problem = features_info and shape_problem(features_info, FEATURES_INFO_SHAPE, "features_info")
        if problem:  # the reader would refuse the store it wrote
            raise ConfigError(f"features_info is malformed: {problem}")
        self.path = Path(path)
        self.feature_dim = int(feature_dim)
        self.dtype, self.compression, self.chunk_steps = dtype, compression, chunk_steps
        self._videos: dict[str, VideoEntry] = {}
        self._users: list[UserRecord] = []
        self._user_ids: set[str] = set()
        self._splits: dict[str, list[str]] = {}
        self._f: h5py.File | None = None
        self._tmp = new_temp_file(self.path)  # WriteError naming the path if we cannot write
        try:
            self._f = h5py.File(self._tmp, "w", track_order=False)
        except OSError as err:
            self._tmp.unlink(missing_ok=True)
            raise WriteError(f"cannot write feature store {str(self.path)!r}: {err}") from err
        self._f.attrs["format"] = FORMAT_NAME
        self._f.attrs["format_version"] = FORMAT_VERSION
        self._f.attrs["feature_dim"] = self.feature_dim
        self._f.attrs["source"] = source
        self._f.attrs["generator_config"] = config_text
        self._f.attrs["created_with"] = f"highlightzoo {__version__}"
        if info_text:  # how the features were made (backbone, rate, ...; docs/your-own-data.md)
            self._f.attrs["features"] = info_text
        self._vgroup = self._f.create_group("videos")

    # ------------------------------------------------------------------ writing
    def add_video(
        self, video_id: str, features: np.ndarray, rate: float, duration: float | None = None
    ) -> None:
        """Store a video's (T, D) features once; ``duration`` defaults to ``T / rate``."""
        video_id = self._id(video_id, "video id", video=video_id)
        feats = np.asarray(features)
        if feats.ndim != 2 or feats.shape[1] != self.feature_dim or feats.shape[0] < 1:
            raise DataFormatError(
                f"features have shape {feats.shape}, expected (T>=1, {self.feature_dim})",
                path=str(self.path), video=video_id, reason="feature_dim",
            )  # fmt: skip
        if not _positive(rate):  # a store that the reader would reject is never written
            raise DataFormatError(
                f"feature rate {rate!r} is not a positive number of steps per second",
                path=str(self.path), video=video_id, reason="nonpositive_rate",
            )  # fmt: skip
        if duration is not None and not _positive(duration):
            raise DataFormatError(
                f"video duration {duration!r} s is not positive", path=str(self.path),
                video=video_id, reason="nonpositive_duration",
            )  # fmt: skip
        if video_id in self._videos:
            raise DataFormatError(
                "video added twice", path=str(self.path), video=video_id, reason="duplicate_video"
            )
        duration = feats.shape[0] / rate if duration is None else float(duration)
        name = video_dataset_name(video_id)
        chunks = (min(self.chunk_steps, feats.shape[0]), self.feature_dim)
        self._vgroup.create_dataset(
            name, data=feats.astype(self.dtype, copy=False), chunks=chunks,
            compression=self.compression, track_times=False,
        )  # fmt: skip
        self._videos[video_id] = VideoEntry(name, float(rate), duration, int(feats.shape[0]))

    def has_video(self, video_id: str) -> bool:
        return video_id in self._videos

    def add_user(
        self,
        user_id: str,
        target_video: str,
        target_segments: Sequence[Sequence[float]] | np.ndarray,
        history: Iterable[Sequence[Any]] = (),
    ) -> None:
        """Add a user: target highlights ``(start, end)`` s and history ``(video, start, end)``."""
        user_id = self._id(user_id, "user id", user=user_id)
        target_video = self._id(target_video, "target video id", user=user_id)
        if user_id in self._user_ids:
            raise DataFormatError(
                "user added twice", path=str(self.path), user=user_id, reason="duplicate_user"
            )
        try:  # (start, end) pairs and (video, start, end) triples of numbers, else named
            segs = np.asarray(target_segments, dtype=np.float64)
            if segs.size and (segs.ndim != 2 or segs.shape[1] != 2):
                raise ValueError(f"shape {segs.shape}")
            segs = segs.reshape(-1, 2)
            hist = [HistorySegment(self._id(v, "history video id", user=user_id), float(s),
                                   float(e)) for v, s, e in history]
        except DataFormatError:
            raise
        except (TypeError, ValueError) as err:
            raise DataFormatError(
                f"target_segments must be (start, end) pairs and history (video, start, end) "
                f"triples of seconds ({err})", path=str(self.path), user=user_id,
                reason="malformed_segment",
            ) from None
        self._users.append(UserRecord(str(user_id), str(target_video), segs, hist))
        self._user_ids.add(str(user_id))

    def set_split(self, name: str, user_ids: Iterable[str]) -> None:
        """Name a user split (users may be added before or after)."""
        self._splits[self._id(name, "split name")] = [self._id(u, "user id", user=u)
                                                      for u in user_ids]

    def _id(self, value: object, what: str, **where: object) -> str:
        """``value`` as the id text stored (ints and NumPy strings are taken, as ``str``), else a
        :class:`DataFormatError`: an empty id, or one holding a NUL (HDF5 cannot store it; h5py
        raised its own ``ValueError`` when the store was closed), cannot be read back."""
        text = str(value) if isinstance(value, (str, np.str_, numbers.Integral)) else None
        if not text or "\x00" in text:
            raise DataFormatError(
                f"{what} must be a non-empty text without NUL characters, got {value!r}",
                path=str(self.path), reason="bad_id",
                **{k: str(v) for k, v in where.items()},
            )
        return text

    # ------------------------------------------------------------------ closing
    def close(self) -> Path:
        """Write the tables, close, and atomically move the file to ``path``."""
        if self._f is None:
            return self.path
        try:
            self._write_tables()
            self._f.close()
            self._f = None
        except BaseException as err:
            self.abort()
            if isinstance(err, OSError) and not isinstance(err, WriteError):
                raise WriteError(f"cannot write feature store {str(self.path)!r}: {err}") from err
            raise
        commit_temp_file(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far (the temp file is removed)."""
        if self._f is not None:
            try:
                self._f.close()
            finally:
                self._f = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write_tables(self) -> None:
        f = self._f
        vi = f.create_group("video_index")
        vids = list(self._videos)
        _put(vi, "ids", vids, STR_DTYPE)
        _put(vi, "dataset", [self._videos[v].dataset for v in vids], STR_DTYPE)
        _put(vi, "rate", [self._videos[v].rate for v in vids], np.float64)
        _put(vi, "duration", [self._videos[v].duration for v in vids], np.float64)
        _put(vi, "n_steps", [self._videos[v].n_steps for v in vids], np.int64)
        ug = f.create_group("users")
        users = self._users
        _put(ug, "ids", [u.user_id for u in users], STR_DTYPE)
        _put(ug, "target_video", [u.target_video for u in users], STR_DTYPE)
        _put(ug, "target_ptr", _ptr(len(u.target_segments) for u in users), np.int64)
        tseg = [u.target_segments for u in users]
        _put(ug, "target_segments", np.concatenate(tseg) if tseg else np.zeros((0, 2)), np.float64)
        _put(ug, "history_ptr", _ptr(len(u.history) for u in users), np.int64)
        hist = [h for u in users for h in u.history]
        _put(ug, "history_video", [h.video_id for h in hist], STR_DTYPE)
        hseg = np.array([(h.start, h.end) for h in hist], dtype=np.float64).reshape(-1, 2)
        _put(ug, "history_segments", hseg, np.float64)
        sg = f.create_group("splits")
        for name, ids in sorted(self._splits.items()):
            _put(sg, name, ids, STR_DTYPE)


def _json_text(value: dict | None, name: str) -> str:
    """``value`` as sorted JSON text ("" for None or empty), else a :class:`ConfigError`: an
    object JSON cannot hold, or NaN, which the store's strict reader refuses."""
    if value is None or value == {}:
        return ""
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a dict of plain data, got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be plain JSON data without NaN: {err}") from None


def _positive(value: object) -> bool:
    """A finite number > 0 (bools and non-numbers are not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(float(value)) and float(value) > 0


def _ptr(sizes: Iterator[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(list(sizes), dtype=np.int64)]).astype(np.int64)


def _put(group: h5py.Group, name: str, data: Any, dtype: Any) -> None:
    arr = np.asarray(data, dtype=object if dtype is STR_DTYPE else dtype)
    if dtype is STR_DTYPE and arr.size == 0:
        arr = np.zeros((0,), dtype=object)
    group.create_dataset(name, data=arr, dtype=dtype, track_times=False)
