"""Import the PHD-GIFs annotations (CSV) with user-supplied features into a feature store.

CSV columns: ``youtubeId, start, duration, user_id, video_duration, is_last``.
``is_last=True`` rows are the user's target-video highlights, the others the
history; ``video_duration = -1`` means unknown (taken from the features:
``T / rate``). Features come from an HDF5 file (one ``(T, D)`` dataset per video
id, at the root or under ``/features``; or the video summarisation "eccv16"
layout, one group per video holding ``features`` and ``video_name``) or a folder
of ``<video id>.npy`` / ``<video id>.npz`` arrays.

Nothing is dropped silently: :class:`ImportReport` counts the users, segments
and videos lost, per reason, and keeps every dropped CSV line with its reason.
"""

from __future__ import annotations

import math
import numbers
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from highlightzoo.checks import MAX_VIDEO_SECONDS, flag, int_at_least, is_real
from highlightzoo.data.store import DURATION_TOLERANCE_S, StoreWriter
from highlightzoo.data.store_format import VIDEO_COVERAGE, feature_coverage, read_features_info
from highlightzoo.errors import ConfigError, DataFormatError
from highlightzoo.io import CsvLine, output_file, read_arrays, read_csv_lines

COLUMNS = ("youtubeId", "start", "duration", "user_id", "video_duration", "is_last")
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class CsvRow:
    """One highlight of the CSV, with its 1-based line number (header = line 1)."""

    line: int
    video_id: str
    start: float
    end: float
    user_id: str
    video_duration: float | None  # None = unknown (-1 in the CSV)
    is_last: bool


@dataclass
class CsvUser:
    """A user's rows, split into the target video's highlights and the history."""

    user_id: str
    target: list[CsvRow] = field(default_factory=list)
    history: list[CsvRow] = field(default_factory=list)

    @property
    def target_videos(self) -> list[str]:
        return list(dict.fromkeys(r.video_id for r in self.target))


@dataclass
class ImportReport:
    """What an import kept and lost, and why."""

    users_in: int = 0
    users_kept: int = 0
    segments_in: int = 0
    segments_kept: int = 0
    videos_in: int = 0
    videos_kept: int = 0
    users_lost: Counter = field(default_factory=Counter)  # reason -> users
    segments_lost: Counter = field(default_factory=Counter)  # reason -> rows
    videos_lost: Counter = field(default_factory=Counter)  # reason -> videos
    dropped_rows: list[tuple[int, str]] = field(default_factory=list)  # (CSV line, reason)
    dropped_videos: list[tuple[str, str]] = field(default_factory=list)  # (video id, reason)
    splits: dict[str, int] = field(default_factory=dict)
    feature_dim: int | None = None  # the size most feature files agree on

    def summary(self) -> str:
        def fmt(c: Counter) -> str:
            return ", ".join(f"{k}: {v}" for k, v in sorted(c.items())) or "none"

        return (
            f"users {self.users_kept}/{self.users_in} kept (lost: {fmt(self.users_lost)}); "
            f"segments {self.segments_kept}/{self.segments_in} kept (lost: {fmt(self.segments_lost)}); "
            f"videos {self.videos_kept}/{self.videos_in} kept (lost: {fmt(self.videos_lost)})"
        )


def _parse_bool(text: str) -> bool | None:
    return {"true": True, "1": True, "false": False, "0": False}.get(text.strip().lower())


@dataclass
class CsvAnnotations:
    """The users of a CSV, and the malformed lines skipped in lenient mode."""

    users: list[CsvUser]
    bad_rows: list[tuple[int, str]] = field(default_factory=list)  # (line, message)

    @property
    def n_rows(self) -> int:
        return sum(len(u.target) + len(u.history) for u in self.users)


def read_phdgifs_csv(path: str | os.PathLike, strict: bool = True) -> CsvAnnotations:
    """Parse a PHD-GIFs CSV into users in order of first appearance.

    A malformed row (another number of cells than the header, a non-number, an empty id or
    one holding a NUL, an unknown boolean, a start or duration that is not finite, a time
    beyond :data:`~highlightzoo.checks.MAX_VIDEO_SECONDS`) raises a :class:`DataFormatError`
    naming the file, line and user; with ``strict=False`` it is skipped and listed in
    ``bad_rows``. The file and its header are read by :func:`highlightzoo.io.read_csv_lines`.
    """
    path = str(path)
    users: dict[str, CsvUser] = {}
    bad: list[tuple[int, str]] = []
    for line in read_csv_lines(path, COLUMNS):
        try:
            row = _parse_row(path, line)
        except DataFormatError as err:
            if strict:
                raise
            bad.append((line.line, str(err)))
            continue
        user = users.setdefault(row.user_id, CsvUser(row.user_id))
        (user.target if row.is_last else user.history).append(row)
    return CsvAnnotations(list(users.values()), bad)


def _parse_row(path: str, csv_line: CsvLine) -> CsvRow:
    line, raw = csv_line.line, csv_line.cells
    user = (raw.get("user_id") or "").strip()
    if csv_line.problem:  # an unquoted comma in an id, or a cut line: cells would shift
        raise DataFormatError(f"line {line} {csv_line.problem}", path=path, user=user or None,
                              reason="bad_row")
    try:
        start, dur = float(raw["start"]), float(raw["duration"])
        vdur = float(raw["video_duration"])
    except (TypeError, ValueError) as exc:
        raise DataFormatError(
            f"line {line}: not a number ({exc})", path=path, user=user or None, reason="bad_row"
        ) from exc
    is_last = _parse_bool(raw.get("is_last") or "")
    video = (raw.get("youtubeId") or "").strip()
    problem = (
        "an empty youtubeId" if not video
        else "an empty user_id" if not user
        # HDF5 cannot store a NUL (h5py's ValueError when the store was closed)
        else "an id holding a NUL character" if "\x00" in video + user
        else f"is_last {raw.get('is_last')!r} is not a boolean (True or False)"
        if is_last is None else None
    )
    if problem:
        raise DataFormatError(f"line {line}: {problem}", path=path, user=user or None,
                              reason="bad_row")
    stated = vdur if math.isfinite(vdur) else 0.0
    if not (math.isfinite(start) and math.isfinite(dur)):
        problem = f"start {start} and duration {dur} must be finite seconds"
    elif max(start + dur, stated) > MAX_VIDEO_SECONDS or vdur == math.inf:
        problem = (f"a time beyond {MAX_VIDEO_SECONDS:g} s (24 h): start {start}, duration "
                   f"{dur}, video_duration {vdur}; not seconds of a video")
    if problem:
        raise DataFormatError(f"line {line}: {problem}", path=path, user=user, video=video,
                              reason="bad_row")
    known = vdur > 0 and math.isfinite(vdur)  # -1 (and NaN) = unknown
    return CsvRow(line, video, start, start + dur, user, vdur if known else None, is_last)


def check_fractions(fractions: object) -> tuple[float, ...]:
    """``fractions`` as a tuple of 3 finite numbers >= 0 (train, val, test) with a positive
    sum (any iterable: a NumPy array works), else a :class:`ConfigError`."""
    values = () if isinstance(fractions, str) or not hasattr(fractions, "__iter__") \
        else tuple(fractions)  # fmt: skip
    ok = len(values) == len(SPLIT_NAMES) \
        and all(is_real(f) and 0 <= f < math.inf
                for f in values) and sum(values) > 0  # fmt: skip
    if not ok:
        raise ConfigError("fractions must be 3 finite numbers >= 0 (train, val, test) with a "
                          f"positive sum, got {fractions!r}")
    return tuple(float(f) for f in values)


def split_users(
    user_ids: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[str]]:
    """Deterministic user-level split into train/val/test.

    The assignment depends only on the *set* of ids, ``fractions`` and
    ``seed`` (ids are sorted, then shuffled); sizes are the largest-remainder
    rounding of ``fractions / sum(fractions) * n`` (so ``(8, 1, 1)`` is the default
    split too); each split keeps the input order.
    """
    values = check_fractions(fractions)
    ids = list(dict.fromkeys(str(u) for u in user_ids))
    n, total = len(ids), float(sum(values))
    exact = [f / total * n for f in values]
    sizes = [int(math.floor(x)) for x in exact]
    for k in sorted(range(3), key=lambda k: sizes[k] - exact[k])[: n - sum(sizes)]:
        sizes[k] += 1
    order = np.random.default_rng(int_at_least(seed, 0, "the split seed")).permutation(n)
    shuffled = [sorted(ids)[i] for i in order]
    which: dict[str, str] = {}
    bounds = np.cumsum([0, *sizes])
    for k, name in enumerate(SPLIT_NAMES):
        for u in shuffled[bounds[k] : bounds[k + 1]]:
            which[u] = name
    return {name: [u for u in ids if which[u] == name] for name in SPLIT_NAMES}


class FeatureSource:
    """Per-video ``(T, D)`` features from an HDF5 file or a folder of arrays.

    HDF5: a dataset named by the video id (at the root or under ``/features``),
    or a group named by the video id holding ``features``, or the "eccv16"
    summarisation layout (groups ``video_1`` ... with ``features`` and a
    ``video_name`` string, looked up by that name). Folder: ``<id>.npy``, or
    ``<id>.npz`` holding ``features`` or exactly one array.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._h5: h5py.File | None = None
        self._names: dict[str, str] = {}  # eccv16: video_name -> group key
        if self.path.is_dir():
            self._root = None
        elif self.path.is_file():
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as err:
                raise DataFormatError(
                    f"cannot open feature file as HDF5: {err}", path=str(path), reason="not_hdf5"
                ) from err
            self._root = self._h5["features"] if "features" in self._h5 else self._h5
            if not isinstance(self._root, h5py.Group):
                raise DataFormatError(
                    "'/features' is one dataset; expected a group of one dataset per video (or "
                    "datasets named by video id at the root)", path=str(path), reason="feature_dim",
                )  # fmt: skip
            for key, item in self._root.items():
                if isinstance(item, h5py.Group) and "video_name" in item:
                    name = self._video_name(key, item["video_name"])
                    if name in self._names:  # which group holds the video? refuse, never guess
                        raise DataFormatError(
                            f"groups {self._names[name]!r} and {key!r} both have video_name "
                            f"{name!r}", path=str(path), video=name, reason="duplicate_video",
                        )  # fmt: skip
                    self._names[name] = key
        else:
            raise DataFormatError("feature path does not exist", path=str(path), reason="no_file")

    def _video_name(self, key: str, item: object) -> str:
        """The ``video_name`` of eccv16 group ``key``: one string (UTF-8 bytes or text, a scalar
        or a one-item array)."""
        value = None
        if isinstance(item, h5py.Dataset) and item.shape in ((), (1,)):
            value = item[()] if item.shape == () else item[0]
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                value = None
        if not isinstance(value, str):
            raise DataFormatError(
                f"group {key!r}: video_name must be one UTF-8 string, got {item!r}",
                path=str(self.path), reason="malformed_table",
            )  # fmt: skip
        return value

    def get(self, video_id: str) -> np.ndarray | None:
        """(T, D) features of ``video_id``, or None when the source has none.

        An id that is not a plain name (empty, ``.``/``..``, or with ``/``, ``\\`` or
        NUL) has none: it never reaches outside the folder or into HDF5 paths.
        """
        if video_id in ("", ".", "..") or any(c in video_id for c in "/\\\x00"):
            return None
        if self._h5 is None:
            return self._from_folder(video_id)
        array = self._from_h5(video_id)
        return None if array is None else _numeric(array, str(self.path), video_id)

    def duration(self, video_id: str) -> float | None:
        """The ``duration`` attribute (s) of a video's HDF5 dataset (``features extract`` writes it)."""
        if self._h5 is None or video_id not in self._root:
            return None
        value = self._root[video_id].attrs.get("duration")
        ok = isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value) > 0
        return float(value) if ok else None

    def _from_h5(self, video_id: str) -> np.ndarray | None:
        key = video_id if video_id in self._root else self._names.get(video_id)
        if key is None:
            return None
        item = self._root[key]
        if isinstance(item, h5py.Group):
            if not isinstance(item.get("features"), h5py.Dataset):
                raise DataFormatError(
                    f"HDF5 group {key!r} has no 'features' dataset", path=str(self.path),
                    video=video_id, reason="missing_group",
                )  # fmt: skip
            item = item["features"]
        try:
            return item[()]
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise DataFormatError(
                f"cannot read features ({type(err).__name__}: {err})", path=str(self.path),
                video=video_id, reason="unreadable_features",
            ) from None  # fmt: skip

    def _from_folder(self, video_id: str) -> np.ndarray | None:
        npy, npz = self.path / f"{video_id}.npy", self.path / f"{video_id}.npz"
        if not npy.is_file() and not npz.is_file():
            return None
        file = npy if npy.is_file() else npz
        loaded = read_arrays(file, "features", video=video_id, reason="unreadable_features")
        if not isinstance(loaded, dict):
            return _numeric(loaded, str(file), video_id)
        if "features" in loaded:
            return _numeric(loaded["features"], str(file), video_id)
        if len(loaded) == 1:
            return _numeric(next(iter(loaded.values())), str(file), video_id)
        raise DataFormatError(
            f"npz holds arrays {list(loaded)} and none is called 'features'",
            path=str(file), video=video_id, reason="ambiguous_npz",
        )  # fmt: skip

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()


def _numeric(array: np.ndarray, path: str, video_id: str) -> np.ndarray:
    """``array`` if it holds real numbers; strings, objects and complex are unreadable features."""
    if np.asarray(array).dtype.kind not in "fiu":
        raise DataFormatError(
            f"features have dtype {np.asarray(array).dtype}, expected real numbers", path=path,
            video=video_id, reason="unreadable_features",
        )  # fmt: skip
    return array


def import_phdgifs(
    csv_path: str | os.PathLike,
    features: str | os.PathLike,
    rate: float | None,
    out_path: str | os.PathLike,
    *,
    split_seed: int = 0,
    fractions: Sequence[float] | None = None,
    test_csv: str | os.PathLike | None = None,
    val_users: float | None = None,
    dtype: str = "float32",
    strict: bool = True,
    progress: bool = True,
) -> ImportReport:
    """Build a feature store from a PHD-GIFs CSV and a feature file/folder.

    ``rate`` is the features' steps per second (C3D every 16 frames at 30 fps:
    1.875); None takes the rate a ``features extract`` file states, else
    1.875 (a stated rate that differs from ``rate`` is an error). A rate at which the
    features do not cover their videos' stated durations (median outside
    :data:`RATE_COVERAGE`) is a :class:`ConfigError` naming the likely rate. With one CSV
    users are split with :func:`split_users` by ``fractions`` (default 80/10/10); with
    ``test_csv`` (the official ``training.csv`` + ``testing.csv``) ``csv_path`` gives the
    training users, ``test_csv`` exactly the test users, and :func:`official_splits` draws
    ``val_users`` (default 0.1) of the training users for validation. Each of the two split
    options belongs to one mode: given in the other it is an error, not ignored. Rows whose
    video has no features, or whose span lies outside the video or is empty, are always
    dropped and reported; ``strict`` only governs malformed CSV lines (raise,
    or skip and report with ``strict=False``). Returns the report.
    """
    if test_csv is None and val_users is not None:
        raise ConfigError("--val-users (val_users) applies to an official --train/--test "
                          "import only; one CSV's users are split by fractions (80/10/10 "
                          "unless fractions= is given)")
    if test_csv is not None and fractions is not None:
        raise ConfigError("fractions split one CSV's users; with test_csv (--train/--test) the "
                          "test users are the test CSV's and val_users sets the validation share")
    fractions = check_fractions((0.8, 0.1, 0.1) if fractions is None else fractions)
    val_users = check_val_users(0.1 if val_users is None else val_users)
    strict, progress = flag(strict, "strict"), flag(progress, "progress")
    output_file(out_path)
    info = _features_info(features)
    rate = _resolve_rate(rate, info, features)
    table = read_phdgifs_csv(csv_path, strict=strict)
    test_ids: set[str] | None = None
    if test_csv is not None:
        test_table = read_phdgifs_csv(test_csv, strict=strict)
        _check_disjoint(table, test_table, csv_path, test_csv)
        test_ids = {u.user_id for u in test_table.users}
        table = CsvAnnotations(table.users + test_table.users, table.bad_rows + test_table.bad_rows)
    users = table.users
    if table.n_rows + len(table.bad_rows) == 0:
        raise DataFormatError(
            "CSV has a header but no data rows; nothing written", path=str(csv_path),
            reason="empty_csv",
        )  # fmt: skip
    report = ImportReport(users_in=len(users), segments_in=table.n_rows + len(table.bad_rows))
    if table.bad_rows:
        report.segments_lost["bad_row"] += len(table.bad_rows)
    report.dropped_rows += [(line, "bad_row") for line, _ in table.bad_rows]
    source = FeatureSource(features)
    try:
        videos = _load_videos(users, source, rate, report, progress, strict)
        kept = _filter_users(users, videos, report)
        if not videos and users:
            raise DataFormatError(
                f"no video of the CSV has usable features ({report.summary()}); nothing written",
                path=str(features), reason="no_features",
            )  # fmt: skip
        if not kept:  # never replace a store at out_path with an empty one
            raise DataFormatError(
                f"the import would keep no user ({report.summary()}); nothing written, "
                f"{str(out_path)!r} untouched", path=str(csv_path), reason="no_users",
            )  # fmt: skip
        dim = report.feature_dim
        used = {r.video_id for u in kept for r in (*u.target, *u.history)}
        report.videos_kept = len(used)
        unused = len({v for v in videos if v not in used})
        if unused:  # had features, but every row using them was dropped
            report.videos_lost["unused_after_filtering"] += unused
        if test_ids is None:
            splits = split_users([u.user_id for u in kept], fractions, split_seed)
            how = f"split_seed {split_seed}, fractions {list(fractions)}"
        else:
            splits = official_splits(
                [u.user_id for u in kept if u.user_id not in test_ids],
                [u.user_id for u in kept if u.user_id in test_ids], val_users, split_seed,
            )  # fmt: skip
            how = f"test users of {Path(test_csv).name}, val_users {val_users:g}, split_seed {split_seed}"
        report.splits = {k: len(v) for k, v in splits.items()}
        source_text = f"phd-gifs import of {Path(csv_path).name} (rate {rate} steps/s, {how})"
        if info is not None and info.get("feature_dim") not in (None, dim):
            info = None  # the file's own description does not fit the features kept
        with StoreWriter(out_path, dim, source=source_text, dtype=dtype, features_info=info) as w:
            for vid in sorted(used):
                feats, dur = videos[vid]
                w.add_video(vid, feats, rate, dur)
            for u in kept:
                w.add_user(
                    u.user_id, u.target[0].video_id, [(r.start, r.end) for r in u.target],
                    [(r.video_id, r.start, r.end) for r in u.history],
                )  # fmt: skip
            for name, ids in splits.items():
                w.set_split(name, ids)
    finally:
        source.close()
    return report


def check_val_users(val_users: object) -> float:
    """``val_users`` as a float: a count (an integer >= 1) or a fraction in [0, 1)."""
    ok = is_real(val_users) \
        and math.isfinite(val_users) and val_users >= 0 \
        and (val_users < 1 or val_users == int(val_users))  # fmt: skip
    if not ok:
        raise ConfigError("--val-users must be a count (an integer >= 1) or a fraction in [0, 1), "
                          f"got {val_users!r}")
    return float(val_users)


def official_splits(
    train_ids: Sequence[str], test_ids: Sequence[str], val_users: float = 0.1, seed: int = 0
) -> dict[str, list[str]]:
    """Splits of the official CSVs: ``test`` = ``test_ids``; ``val`` drawn from ``train_ids``.

    ``val_users``: a count (an integer >= 1) or a fraction of the training
    users (0 <= x < 1, rounded to the nearest count). The draw depends only on
    the *set* of training ids and ``seed`` (sorted, then permuted); each split
    keeps the input order. The paper: 9,478 train / 750 val / 675 test users.
    """
    train = list(dict.fromkeys(str(u) for u in train_ids))
    n = len(train)
    value = check_val_users(val_users)
    count = int(value) if value >= 1 else int(round(value * n))
    if count >= n:
        raise ConfigError(f"--val-users {val_users:g} leaves no training user ({n} users in the training CSV)")
    order = np.random.default_rng(seed).permutation(n)
    chosen = {sorted(train)[i] for i in order[:count]}
    return {
        "train": [u for u in train if u not in chosen],
        "val": [u for u in train if u in chosen],
        "test": list(dict.fromkeys(str(u) for u in test_ids)),
    }


def _check_disjoint(train: CsvAnnotations, test: CsvAnnotations, train_path, test_path) -> None:
    """Users in both CSVs would leak test users into training: an error naming them."""
    test_ids = {u.user_id for u in test.users}
    both = [u.user_id for u in train.users if u.user_id in test_ids]
    if both:
        shown = ", ".join(repr(u) for u in both[:5]) + (f" and {len(both) - 5} more" if len(both) > 5 else "")
        raise DataFormatError(
            f"{len(both)} user(s) are in both the training CSV and the test CSV "
            f"{str(test_path)!r}: {shown}", path=str(train_path), user=both[0], reason="overlapping_users",
        )  # fmt: skip


#: the features' steps per second when neither ``--rate`` nor the features file says
DEFAULT_RATE = 1.875


def _features_info(features: str | os.PathLike) -> dict | None:
    """How an HDF5 features file was made (``features extract`` writes it), or None."""
    if not Path(features).is_file():
        return None

    return read_features_info(features)


def _resolve_rate(rate: float | None, info: dict | None, features) -> float:
    """``rate``, else the features file's stated rate, else :data:`DEFAULT_RATE`; checked."""
    stated = None if info is None else info.get("rate")
    if rate is None:
        rate = stated if stated is not None else DEFAULT_RATE
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (
        math.isfinite(rate) and rate > 0
    ):
        raise ConfigError(f"--rate must be a finite number of feature steps per second > 0, got {rate!r}")
    if stated is not None and not math.isclose(float(rate), float(stated), rel_tol=1e-6):
        raise ConfigError(
            f"--rate {rate:g} contradicts the rate {stated:g} steps/s that features file "
            f"{str(features)!r} states ({info.get('backbone')}); drop --rate"
        )
    return float(rate)


def _load_videos(
    users, source, rate, report, progress, strict: bool = True
) -> dict[str, tuple[np.ndarray, float]]:
    """Features and duration of every CSV video that has features and is sane.

    The feature size is the one most files agree on (a tie is an error), so one
    odd file never decides it. An unreadable file raises in ``strict`` mode and
    is a counted, named skip otherwise; every lost video is in ``report.dropped_videos``.
    """
    durations: dict[str, float | None] = {}
    for u in users:
        for r in (*u.target, *u.history):
            durations.setdefault(r.video_id, r.video_duration)
            if durations[r.video_id] is None:
                durations[r.video_id] = r.video_duration
    report.videos_in = len(durations)
    def lose(vid: str, reason: str) -> None:
        report.videos_lost[reason] += 1
        report.dropped_videos.append((vid, reason))

    loaded: dict[str, np.ndarray] = {}
    for vid in tqdm(durations, desc="features", disable=not progress, unit="video"):
        try:
            feats = source.get(vid)
        except DataFormatError as err:
            if strict:
                raise
            lose(vid, err.reason)
            continue
        if feats is None:
            lose(vid, "no_features")
            continue
        feats = np.asarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[0] < 1:
            lose(vid, "feature_dim")
            continue
        loaded[vid] = feats
    dims = Counter(f.shape[1] for f in loaded.values())
    ranked = dims.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        raise DataFormatError(
            f"feature files disagree on the feature size ({dict(dims)} videos per size) and no "
            "size is the most common; nothing written", path=str(source.path),
            reason="feature_dim",
        )  # fmt: skip
    report.feature_dim = ranked[0][0] if ranked else None
    out: dict[str, tuple[np.ndarray, float]] = {}
    for vid, feats in loaded.items():
        if feats.shape[1] != report.feature_dim:
            lose(vid, "feature_dim")
        elif not np.isfinite(feats).all():
            lose(vid, "nan_features")
        else:
            out[vid] = (feats, durations[vid] or source.duration(vid) or feats.shape[0] / rate)
    stated = {v: durations[v] or source.duration(v) for v in out}
    _check_rate_fits(out, stated, rate, source.path)
    for vid in _short_or_long(out, stated, rate):  # one truncated file: its labels would be lost
        lose(vid, "length_mismatch")
        del out[vid]
    return out


#: The features of a video may cover this range of its stated duration (median over the
#: videos) at the import's rate. Extractors drop a partial last clip and PHD-GIFs rounds
#: durations to whole seconds (its videos last 30 s or more), so a right rate gives about 1;
#: a wrong one gives its ratio to the right one (1.875 for features at 1 step/s: 1.875;
#: C3D clips of 16 frames at 25 instead of 30 fps: 1.2).
RATE_COVERAGE = (0.9, 1.1)
def _short_or_long(videos: dict[str, tuple[np.ndarray, float]],
                   stated: dict[str, float | None], rate: float) -> list[str]:
    """Videos whose features cover a share of their stated duration outside
    :data:`~highlightzoo.data.store_format.VIDEO_COVERAGE` (dropped as ``length_mismatch``:
    a truncated feature file would leave every label past its end out of reach)."""
    lo, hi = VIDEO_COVERAGE
    return [vid for vid, d in stated.items()
            if d and not lo <= feature_coverage(len(videos[vid][0]), rate, d) <= hi]


def _check_rate_fits(videos: dict[str, tuple[np.ndarray, float]],
                     stated: dict[str, float | None], rate: float, features: Path) -> None:
    """Refuse a rate at which the features do not cover their videos' stated durations.

    A wrong rate (1.875 was the silent default) moves every label: step ``i`` of a video is
    read as ``[i / rate, (i + 1) / rate)`` seconds. Only videos with a stated duration (CSV
    or features file) count; the median keeps one truncated video from deciding.
    """
    known = {vid: (len(videos[vid][0]), d) for vid, d in stated.items() if d}
    if not known:
        return
    cover = {vid: feature_coverage(steps, rate, d) for vid, (steps, d) in known.items()}
    median = float(np.median(list(cover.values())))
    if RATE_COVERAGE[0] <= median <= RATE_COVERAGE[1]:
        return
    vid = min(cover, key=lambda v: abs(cover[v] - median))
    steps, d = known[vid]
    likely = float(np.median([s / d for s, d in known.values()]))
    raise ConfigError(
        f"at {rate:g} steps/s the features of {features} cover {median:.0%} of their videos' "
        f"stated durations (median of {len(known)} videos; e.g. {vid!r}: {steps} steps = "
        f"{steps / rate:.1f} s of a {d:g} s video), outside {RATE_COVERAGE[0]:.0%}-"
        f"{RATE_COVERAGE[1]:.0%}: every label would be misplaced. The features' rate looks "
        f"like {likely:.3g} steps/s: give it with --rate (rate=), or check the durations; "
        f"nothing written"
    )


def _filter_users(users: list[CsvUser], videos: dict, report: ImportReport) -> list[CsvUser]:
    """Drop rows whose video is missing or whose span is impossible; drop users left without a target."""
    kept: list[CsvUser] = []
    for u in users:

        def ok(r: CsvRow) -> bool:
            reason = _row_problem(r, videos)
            if reason:
                report.segments_lost[reason] += 1
                report.dropped_rows.append((r.line, reason))
            return reason is None

        if len(u.target_videos) > 1:
            reason = "several_target_videos"
        elif not u.target:
            reason = "no_target"
        else:
            target = [r for r in u.target if ok(r)]
            history = [r for r in u.history if ok(r)]
            if target:
                kept.append(CsvUser(u.user_id, target, history))
                report.segments_kept += len(target) + len(history)
                continue
            reason = "target_lost"
            report.segments_lost["user_lost"] += len(history)
            report.dropped_rows += [(r.line, "user_lost") for r in history]
            report.users_lost[reason] += 1
            continue
        report.users_lost[reason] += 1
        rows = (*u.target, *u.history)
        report.segments_lost["user_lost"] += len(rows)
        report.dropped_rows += [(r.line, "user_lost") for r in rows]
    report.users_kept = len(kept)
    report.dropped_rows.sort()
    return kept


def _row_problem(r: CsvRow, videos: dict) -> str | None:
    if r.video_id not in videos:
        return "video_without_features"
    if not r.end - r.start > 0:
        return "nonpositive_duration"
    dur = videos[r.video_id][1]
    if r.start < 0 or r.start >= dur or r.end > dur + DURATION_TOLERANCE_S:
        return "segment_outside_video"
    return None
