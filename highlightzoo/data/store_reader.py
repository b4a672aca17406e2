"""Reading a feature store: :class:`FeatureStore` (validated on open, features read lazily)
and the store's content fingerprint.

:class:`FeatureStore` reads the small index tables eagerly, validates
everything on open (docs/data-format.md, "Validation on open") and reads
features lazily; its HDF5 handle is opened per process, so a store (or a
dataset holding one) can be pickled into DataLoader workers. The format
itself is in :mod:`highlightzoo.data.store_format`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from highlightzoo.checks import flag, is_real
from highlightzoo.data.store_format import (
    DURATION_TOLERANCE_S,
    FEATURES_ATTR,
    FEATURES_FORMAT,
    FINGERPRINT_ATTRS,
    FORMAT_NAME,
    FORMAT_VERSION,
    REQUIRED_GROUPS,
    STANDARD_SPLITS,
    HistorySegment,
    UserRecord,
    VideoEntry,
    features_info_of,
    text_of,
)
from highlightzoo.errors import DataFormatError
from highlightzoo.io import file_kind_note

#: Steps read at a time when scanning features for NaN/Inf on open.
SCAN_CHUNK_STEPS = 1 << 16
#: what an open computes and keeps (see :func:`_validated_state`)
_STATE_FIELDS = (
    "metadata", "feature_dim", "_videos", "_duplicate_videos", "_splits", "_fingerprint",
    "_users", "_all_user_ids",
)
#: validated opens of this process, newest last: (path, file identity, options) -> state
_VALIDATED: dict[tuple, dict[str, Any]] = {}
#: how many validated stores a process remembers
VALIDATED_CACHE_SIZE = 8
#: a file modified this recently (ns) is not remembered: a change within one filesystem
#: timestamp tick could leave its size and modification time as they were
RECENT_CHANGE_NS = 2_000_000_000
log = logging.getLogger("highlightzoo.data")


@dataclass
class StoreReport:
    """What a lenient open skipped, and why (``strict=False``)."""

    path: str
    n_users: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # user id -> reason
    problems: list[str] = field(default_factory=list)  # one message per skipped user

    @property
    def counts(self) -> dict[str, int]:
        """Number of skipped users per reason tag."""
        return dict(Counter(self.skipped.values()))

    def summary(self) -> str:
        if not self.skipped:
            return f"{self.path}: all {self.n_users} users valid"
        parts = ", ".join(f"{r}: {n}" for r, n in sorted(self.counts.items()))
        return f"{self.path}: skipped {len(self.skipped)} of {self.n_users} users ({parts})"


def _strings(ds: h5py.Dataset) -> list[str]:
    values = ds[()]
    if np.ndim(values) != 1:
        raise DataFormatError(
            f"table {ds.name} has shape {np.shape(values)}, expected a 1-D list of ids",
            path=ds.file.filename, reason="malformed_table",
        )  # fmt: skip
    return [text_of(s) for s in values]


def not_a_store(format_attr: Any, path: str) -> DataFormatError:
    """The error for an HDF5 file that is not a feature store; a features file of
    ``highlightzoo features extract`` gets told how to make a store from it."""
    hint = ""
    if _same_text(format_attr, FEATURES_FORMAT):
        hint = ("; it is a features file of `highlightzoo features extract`: make a store of it "
                "with `highlightzoo data import-phdgifs CSV --features FILE` "
                "(docs/your-own-data.md)")
    return DataFormatError(
        f"not a highlightzoo feature store (no '{FORMAT_NAME}' format attribute){hint}",
        path=path, reason="format_version",
    )


def open_store_file(path: str) -> h5py.File:
    """``path`` opened read-only as HDF5, or a :class:`DataFormatError` naming it: reason
    ``"missing"`` when there is no such file, ``"not_hdf5"`` when HDF5 cannot open it."""
    if not os.path.exists(path):
        raise DataFormatError("no such feature store", path=path, reason="missing")
    if os.path.isdir(path):  # h5py's message held its C buffer's address
        raise DataFormatError("a folder, not a feature store (an .h5 file)", path=path,
                              reason="not_hdf5")
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"cannot open as HDF5: {exc}{file_kind_note(path, 'hdf5')}",
                              path=path, reason="not_hdf5") from exc


class FeatureStore:
    """Lazy, validated reader of a feature store file.

    ``strict=True`` raises one :class:`DataFormatError` for the first problem
    found; ``strict=False`` skips the users that a problem touches, records
    them in :attr:`report` and logs a summary. File-level problems (not HDF5,
    wrong format version, missing groups) raise in both modes.
    ``check_features=False`` skips the NaN/Inf scan (for trusted files).
    """

    def __init__(
        self, path: str | os.PathLike, strict: bool = True, *, check_features: bool = True
    ) -> None:
        self.path = str(path)
        # "no" is truthy: a string would silently mean strict / checked
        self.strict = strict = flag(strict, "strict")
        check_features = flag(check_features, "check_features")
        self._handle: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}
        self._pid: int | None = None
        self.report = StoreReport(self.path)
        key = _open_key(self.path, strict, check_features)
        state = _VALIDATED.get(key) if key is not None else None
        if state is None and key is not None and not check_features:
            state = _VALIDATED.get(key[:-1] + (True,))  # a full validation covers a lighter one
        if state is None:
            self._load_and_validate(check_features)
            if _trusted_unchanged(key, _open_key(self.path, strict, check_features)):
                _remember(key, self._state())
        else:
            self._restore(state)

    # ----------------------------------------------------------------- public API
    @property
    def splits(self) -> list[str]:
        """Names of the user splits in the file, sorted."""
        return sorted(self._splits)

    def users(self, split: str | None = None) -> list[str]:
        """Valid user ids of ``split`` in stored order (all users when ``split`` is None)."""
        if split is None:
            return list(self._users)
        if not isinstance(split, str) or split not in self._splits:  # a list: "unhashable"
            raise DataFormatError(
                f"no split {split!r}; the file has {self.splits}", path=self.path, reason="no_split"
            )
        return [u for u in self._splits[split] if u in self._users]

    def user(self, user_id: str) -> UserRecord:
        """The annotations of a valid user."""
        try:
            return self._users[user_id]
        except (KeyError, TypeError):  # TypeError: an id of a kind no dict key has (a list)
            why = self.report.skipped.get(user_id) if isinstance(user_id, str) else None
            msg = f"user skipped on open ({why})" if why else "no such user"
            raise DataFormatError(msg, path=self.path, user=user_id, reason="no_user") from None

    @property
    def videos(self) -> list[str]:
        """Ids of every video stored in the file."""
        return list(self._videos)

    def video_rate(self, video_id: str) -> float:
        """Feature steps per second of a video."""
        return self._video(video_id).rate

    def video_duration(self, video_id: str) -> float:
        """Duration of a video in seconds."""
        return self._video(video_id).duration

    def video_length(self, video_id: str) -> int:
        """Number of feature steps of a video (no feature read)."""
        return self._video(video_id).n_steps

    def video_features(
        self, video_id: str, start: int | None = None, stop: int | None = None
    ) -> np.ndarray:
        """(T, D) float32 features of a video, or only steps ``start:stop``.

        The h5py dataset handle of each video is kept per process: looking it up
        by name costs more than reading a short slice.
        """
        ds = self._datasets.get(video_id) if self._pid == os.getpid() else None
        if ds is None:
            ds = self._file()["videos"][self._video(video_id).dataset]
            self._datasets[video_id] = ds
        return ds[slice(start, stop)].astype(np.float32, copy=False)

    def __len__(self) -> int:
        return len(self._users)

    def close(self) -> None:
        """Close this process's file handle (reopened on the next read)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle, self._pid, self._datasets = None, None, {}

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None  # each process opens its own handle
        state["_datasets"] = {}
        return state

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ internals
    def _file(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._datasets = {}
        return self._handle

    def _video(self, video_id: str) -> VideoEntry:
        try:
            return self._videos[video_id]
        except (KeyError, TypeError):
            raise DataFormatError(
                "no such video in the store", path=self.path, video=str(video_id),
                reason="no_video",
            ) from None

    def _fail(self, err: DataFormatError, users: Iterable[str]) -> None:
        """Raise in strict mode; else mark ``users`` skipped for ``err.reason``."""
        if self.strict:
            raise err
        for u in users:
            if u not in self.report.skipped:
                self.report.skipped[u] = err.reason
                self.report.problems.append(str(err))

    def _state(self) -> dict[str, Any]:
        """What validation computed, for later opens of the unchanged file in this process."""
        state = {name: getattr(self, name) for name in _STATE_FIELDS}
        state["report"] = (self.report.n_users, dict(self.report.skipped), list(self.report.problems))
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        """Take a remembered validation (copies, so no two instances share a mutable table)."""
        for name in _STATE_FIELDS:
            value = state[name]
            if name == "_splits":
                value = {split: list(users) for split, users in value.items()}
            elif isinstance(value, dict | set):
                value = value.copy()
            setattr(self, name, value)
        n_users, skipped, problems = state["report"]
        self.report.n_users, self.report.skipped, self.report.problems = (
            n_users, dict(skipped), list(problems)
        )
        if self.report.skipped:
            log.warning("%s", self.report.summary())

    def _load_and_validate(self, check_features: bool) -> None:
        with open_store_file(self.path) as f:
            try:
                self._check_header(f)
                self._videos = self._read_video_index(f)
                records = self._read_users(f)
                self._splits = self._read_splits(f)
                bad_videos = self._check_videos(f, check_features)
                self._fingerprint = _fingerprint(f, self.path)
            except DataFormatError:
                raise
            except (KeyError, ValueError, TypeError, IndexError, AttributeError, OSError) as exc:
                # an untrusted file can be malformed in more ways than we name: still one typed error
                raise DataFormatError(
                    f"malformed feature store ({type(exc).__name__}: {exc})", path=self.path,
                    reason="malformed_table",
                ) from exc  # fmt: skip
        self._check_users(records, bad_videos)
        self._check_splits()
        self.report.n_users = len({r.user_id for r in records})
        if self.report.skipped:
            log.warning("%s", self.report.summary())

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this store's content (see :func:`store_fingerprint`), as read on open."""
        return dict(self._fingerprint)

    def _check_header(self, f: h5py.File) -> None:
        attrs = f.attrs
        version, dim = _header_numbers(attrs, self.path)
        missing = [g for g in REQUIRED_GROUPS if g not in f]
        if missing:
            raise DataFormatError(
                f"missing group(s) {missing}", path=self.path, reason="missing_group"
            )
        self.metadata: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": version,
            "feature_dim": dim,
            "source": text_of(attrs.get("source", "")),
            "created_with": text_of(attrs.get("created_with", "")),
        }
        text = text_of(attrs.get("generator_config", ""))
        try:
            self.metadata["generator_config"] = json.loads(text) if text else None
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"generator_config attribute is not JSON: {exc}", path=self.path,
                reason="malformed_table",
            ) from None  # fmt: skip
        # how the features were made (optional): runs record it and predict compares it
        self.metadata["features"] = features_info_of(attrs.get(FEATURES_ATTR), self.path)
        self.feature_dim: int = self.metadata["feature_dim"]

    def _read_video_index(self, f: h5py.File) -> dict[str, VideoEntry]:
        g = f["video_index"]
        try:
            ids, names = _strings(g["ids"]), _strings(g["dataset"])
            rate, dur, n = g["rate"][()], g["duration"][()], g["n_steps"][()]
        except KeyError as exc:
            raise DataFormatError(
                f"video_index lacks a table: {exc}", path=self.path, reason="missing_group"
            ) from exc
        tables = {"ids": ids, "dataset": names, "rate": rate, "duration": dur, "n_steps": n}
        self._same_lengths("video_index", tables)
        for name, kinds in (("rate", "fiu"), ("duration", "fiu"), ("n_steps", "iu")):
            self._numeric(f"video_index/{name}", tables[name], kinds)
        self._duplicate_videos = {v for v, c in Counter(ids).items() if c > 1}
        return {
            vid: VideoEntry(name, float(r), float(d), int(t))
            for vid, name, r, d, t in zip(ids, names, rate, dur, n, strict=True)
        }

    def _same_lengths(self, group: str, tables: dict[str, Any]) -> None:
        """One row per item in every 1-D table of a group (else a truncated or padded table)."""
        lengths = {k: len(v) for k, v in tables.items()}
        bad_dims = [k for k, v in tables.items() if isinstance(v, np.ndarray) and v.ndim != 1]
        if bad_dims or len(set(lengths.values())) > 1:
            raise DataFormatError(
                f"{group} tables must be 1-D with one row per item; lengths {lengths}"
                + (f", not 1-D: {bad_dims}" if bad_dims else ""),
                path=self.path, reason="malformed_table",
            )  # fmt: skip

    def _numeric(self, name: str, array: np.ndarray, kinds: str) -> None:
        if np.asarray(array).dtype.kind not in kinds:
            raise DataFormatError(
                f"table {name} has dtype {np.asarray(array).dtype}, expected "
                f"{'integers' if kinds == 'iu' else 'numbers'}",
                path=self.path, reason="malformed_table",
            )  # fmt: skip

    def _pointer(self, name: str, ptr: np.ndarray, n_items: int, n_rows: int) -> None:
        """A CSR pointer: n_items + 1 ints, from 0, never decreasing, ending at the table's length."""
        self._numeric(f"users/{name}", ptr, "iu")
        ok = (
            ptr.ndim == 1 and len(ptr) == n_items + 1 and int(ptr[0]) == 0
            and int(ptr[-1]) == n_rows and bool(np.all(np.diff(ptr) >= 0))
        )  # fmt: skip
        if not ok:
            raise DataFormatError(
                f"users/{name} must rise from 0 to {n_rows} in {n_items + 1} non-decreasing "
                f"entries (one per user, plus one); it has {len(ptr)} entries, first/last "
                f"{ptr[:1].tolist()}/{ptr[-1:].tolist()}"
                + ("" if bool(np.all(np.diff(ptr) >= 0)) else ", and decreases"),
                path=self.path, reason="malformed_table",
            )  # fmt: skip

    def _segments(self, name: str, table: np.ndarray) -> np.ndarray:
        """A (S, 2) table of (start, end) seconds."""
        self._numeric(f"users/{name}", table, "fiu")
        if table.size == 0:
            return np.zeros((0, 2), dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != 2:
            raise DataFormatError(
                f"users/{name} has shape {table.shape}, expected (segments, 2)", path=self.path,
                reason="malformed_table",
            )  # fmt: skip
        return table.astype(np.float64)

    def _read_users(self, f: h5py.File) -> list[UserRecord]:
        g = f["users"]
        try:
            ids, targets = _strings(g["ids"]), _strings(g["target_video"])
            t_ptr, t_seg = g["target_ptr"][()], g["target_segments"][()]
            h_ptr, h_seg = g["history_ptr"][()], g["history_segments"][()]
            h_vid = _strings(g["history_video"])
        except KeyError as exc:
            raise DataFormatError(
                f"users lacks a table: {exc}", path=self.path, reason="missing_group"
            ) from exc
        self._same_lengths("users", {"ids": ids, "target_video": targets})
        t_seg, h_seg = self._segments("target_segments", t_seg), self._segments("history_segments", h_seg)
        if len(h_vid) != len(h_seg):
            raise DataFormatError(
                f"users/history_video has {len(h_vid)} rows but users/history_segments has "
                f"{len(h_seg)}", path=self.path, reason="malformed_table",
            )  # fmt: skip
        self._pointer("target_ptr", t_ptr, len(ids), len(t_seg))
        self._pointer("history_ptr", h_ptr, len(ids), len(h_seg))
        records = []
        for i, uid in enumerate(ids):
            hs, he = int(h_ptr[i]), int(h_ptr[i + 1])
            history = [
                HistorySegment(h_vid[j], float(h_seg[j, 0]), float(h_seg[j, 1]))
                for j in range(hs, he)
            ]
            segs = t_seg[int(t_ptr[i]) : int(t_ptr[i + 1])].astype(np.float64)
            records.append(UserRecord(uid, targets[i], segs, history))
        return records

    def _check_videos(self, f: h5py.File, check_features: bool) -> dict[str, DataFormatError]:
        """Per-video problems (dim, length, duration, rate, NaN/Inf), by video id."""
        bad: dict[str, DataFormatError] = {}
        group = f["videos"]
        for vid, v in self._videos.items():

            def problem(msg: str, reason: str, vid: str = vid) -> None:
                bad[vid] = DataFormatError(msg, path=self.path, video=vid, reason=reason)

            if vid in self._duplicate_videos:
                problem("video id is listed more than once in video_index", "duplicate_video")
                continue
            if v.dataset not in group or not isinstance(group[v.dataset], h5py.Dataset):
                problem("video listed in video_index has no feature dataset", "missing_video")
                continue
            ds = group[v.dataset]
            if ds.dtype.kind not in "fiu":
                problem(f"features have dtype {ds.dtype}, expected numbers", "feature_dim")
            elif ds.ndim != 2 or ds.shape[1] != self.feature_dim:
                problem(
                    f"features have shape {ds.shape}, expected (T, {self.feature_dim})",
                    "feature_dim",
                )
            elif ds.shape[0] != v.n_steps or v.n_steps < 1:
                problem(f"features have {ds.shape[0]} steps, index says {v.n_steps}", "n_steps")
            elif not (v.duration > 0 and math.isfinite(v.duration)):
                problem(f"video duration {v.duration} is not positive", "nonpositive_duration")
            elif not (v.rate > 0 and math.isfinite(v.rate)):
                problem(f"feature rate {v.rate} is not positive", "nonpositive_rate")
            elif check_features and not _all_finite(ds):
                problem("features contain NaN or Inf", "nan_features")
        return bad

    def _read_splits(self, f: h5py.File) -> dict[str, list[str]]:
        splits = {}
        for name, item in f["splits"].items():
            if not isinstance(item, h5py.Dataset):
                raise DataFormatError(
                    f"split {name!r} is not a list of user ids", path=self.path,
                    reason="malformed_table",
                )  # fmt: skip
            splits[name] = _strings(item)
        return splits

    def _check_splits(self) -> None:
        """Each split lists known users once; no user is in two of train/val/test (a leak)."""
        owner: dict[str, str] = {}
        for name, ids in sorted(self._splits.items()):
            for uid, count in Counter(ids).items():
                if count > 1:
                    self._fail(DataFormatError(
                        f"split {name!r} lists the user {count} times", path=self.path,
                        user=uid, reason="duplicate_user",
                    ), [uid])  # fmt: skip
                if uid not in self._all_user_ids:
                    self._fail(DataFormatError(
                        f"split {name!r} lists a user that is not in users/ids", path=self.path,
                        user=uid, reason="unknown_user",
                    ), [uid])  # fmt: skip
                if name in STANDARD_SPLITS:
                    if uid in owner:
                        self._fail(DataFormatError(
                            f"user is in both split {owner[uid]!r} and split {name!r}",
                            path=self.path, user=uid, reason="split_overlap",
                        ), [uid])  # fmt: skip
                    owner[uid] = name
        for uid in list(self._users):
            if uid in self.report.skipped:
                del self._users[uid]

    def _check_users(self, records: list[UserRecord], bad_videos: dict) -> None:
        """Check every user; keep the valid ones in :attr:`_users`."""
        self._users: dict[str, UserRecord] = {}
        self._all_user_ids = {rec.user_id for rec in records}
        for uid, count in Counter(rec.user_id for rec in records).items():
            if count > 1:  # which record is meant is ambiguous: never pick one silently
                self._fail(DataFormatError(
                    f"user id is listed {count} times in users/ids", path=self.path, user=uid,
                    reason="duplicate_user",
                ), [uid])  # fmt: skip
        for rec in records:
            if rec.user_id in self.report.skipped:
                continue
            err = self._user_problem(rec, bad_videos)
            if err is None:
                self._users[rec.user_id] = rec
            else:
                self._fail(err, [rec.user_id])

    def _user_problem(self, rec: UserRecord, bad_videos: dict) -> DataFormatError | None:
        uid, path = rec.user_id, self.path
        if not rec.target_video or len(rec.target_segments) == 0:
            return DataFormatError(
                "user has no target video or no target highlight", path=path, user=uid,
                video=rec.target_video or None, reason="no_target",
            )  # fmt: skip
        spans = [(rec.target_video, float(s), float(e)) for s, e in rec.target_segments]
        spans += [(h.video_id, h.start, h.end) for h in rec.history]
        for vid, s, e in spans:
            if vid not in self._videos:
                return DataFormatError(
                    "segment refers to a video that is not in the store", path=path, user=uid,
                    video=vid, reason="missing_video",
                )  # fmt: skip
            if vid in bad_videos:
                src = bad_videos[vid]
                return DataFormatError(
                    f"{src.args[0].split(' [')[0]}", path=path, user=uid, video=vid,
                    reason=src.reason,
                )  # fmt: skip
            if not (math.isfinite(s) and math.isfinite(e)) or e - s <= 0:
                what = "a negative or zero duration" if math.isfinite(s - e) else "no finite end"
                return DataFormatError(
                    f"segment [{s}, {e}] s has {what}", path=path,
                    user=uid, video=vid, reason="nonpositive_duration",
                )  # fmt: skip
            dur = self._videos[vid].duration
            if s < 0 or s >= dur or e > dur + DURATION_TOLERANCE_S:
                return DataFormatError(
                    f"segment [{s}, {e}] s lies outside the video (duration {dur} s)",
                    path=path, user=uid, video=vid, reason="segment_outside_video",
                )  # fmt: skip
        return None


def _header_numbers(attrs: h5py.AttributeManager, path: str) -> tuple[int, int]:
    """``(format_version, feature_dim)`` of a store's root attributes, else the
    :class:`DataFormatError` that says which one is wrong (not a store, another version,
    not an int)."""
    version = attrs.get("format_version")
    if not _same_text(attrs.get("format"), FORMAT_NAME) or version is None:
        raise not_a_store(attrs.get("format"), path)
    if not _is_int(version):
        raise DataFormatError(f"format_version attribute {version!r} is not an int", path=path,
                              reason="format_version")
    if int(version) != FORMAT_VERSION:
        raise DataFormatError(
            f"format version {int(version)} is not supported (this reader reads {FORMAT_VERSION})",
            path=path, reason="format_version",
        )  # fmt: skip
    dim = attrs.get("feature_dim")
    if not _is_int(dim) or int(dim) < 1:
        raise DataFormatError(f"feature_dim attribute {dim!r} is not an int >= 1", path=path,
                              reason="format_version")
    return int(version), int(dim)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and is_real(value)  # a bool is not a version


def _same_text(value: object, text: str) -> bool:
    """Whether an HDF5 attribute is the string ``text`` (an array or a number is not)."""
    return isinstance(value, (str, bytes)) and text_of(value) == text


def _open_key(path: str, strict: bool, check_features: bool) -> tuple | None:
    """Identity of a file as opened (path as given, device, inode, size, modification time in
    ns) and the open's options; None when it cannot be stat'ed (the open then reports why)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, strict, check_features)


def _trusted_unchanged(before: tuple | None, after: tuple | None) -> bool:
    """True when the file did not change while it was validated and was last modified long
    enough ago that a later change must show in its identity."""
    return (
        before is not None and before == after
        and time.time_ns() - before[4] > RECENT_CHANGE_NS
    )


def _remember(key: tuple, state: dict[str, Any]) -> None:
    _VALIDATED.pop(key, None)
    _VALIDATED[key] = state
    while len(_VALIDATED) > VALIDATED_CACHE_SIZE:
        del _VALIDATED[next(iter(_VALIDATED))]


def forget_validated_stores() -> None:
    """Make the next open of every store validate it again (tests, or a file changed within
    one filesystem timestamp tick)."""
    _VALIDATED.clear()


def store_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """What identifies a store's content, read cheaply (no feature is read).

    ``format_version`` and ``feature_dim`` (checked as an open checks them), ``n_users``
    and ``n_videos`` (as stored, valid or not) plus ``index_sha256``: SHA-256 of the root attributes
    that say what the store holds and of every table under ``/video_index``,
    ``/users`` and ``/splits`` (ids, rates, durations, lengths, segments,
    splits). Two stores with equal fingerprints have the same users, videos,
    segments and splits; features are not hashed (a regenerated store with the
    same index and other features is not told apart). Runs record it so that
    resuming or evaluating on another store is an error (docs/reliability.md).
    """
    path = str(path)
    with open_store_file(path) as f:
        try:
            return _fingerprint(f, path)
        except DataFormatError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, AttributeError, OSError) as exc:
            raise DataFormatError(
                f"malformed feature store ({type(exc).__name__}: {exc})", path=path,
                reason="malformed_table",
            ) from exc  # fmt: skip


def fingerprint_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A short text of what differs between two fingerprints, e.g. ``n_users 12 -> 11``."""
    parts = []
    for key in sorted({*old, *new}):
        a, b = old.get(key), new.get(key)
        if a != b:
            if key == "index_sha256":
                a, b = str(a)[:12], str(b)[:12]
            parts.append(f"{key} {a} -> {b}")
    return ", ".join(parts) or "same fingerprint"


def _fingerprint(f: h5py.File, path: str) -> dict[str, Any]:
    version, dim = _header_numbers(f.attrs, path)
    digest = hashlib.sha256()
    for name in FINGERPRINT_ATTRS:
        digest.update(f"{name}={text_of(f.attrs.get(name, ''))}\n".encode())
    for group in ("video_index", "users", "splits"):
        if group not in f:
            raise DataFormatError(f"missing group(s) {[group]}", path=path, reason="missing_group")
        for name in sorted(f[group]):
            item = f[group][name]
            if not isinstance(item, h5py.Dataset):
                digest.update(f"{group}/{name} group\n".encode())
                continue
            digest.update(f"{group}/{name} {item.shape}\n".encode())
            digest.update(_table_bytes(item))
    counts = {
        g: len(f[g]["ids"]) if "ids" in f[g] and isinstance(f[g]["ids"], h5py.Dataset) else 0
        for g in ("users", "video_index")
    }
    return {
        "format_version": version,
        "feature_dim": dim,
        "n_users": counts["users"],
        "n_videos": counts["video_index"],
        "index_sha256": digest.hexdigest(),
    }


def _table_bytes(ds: h5py.Dataset) -> bytes:
    """A dtype-independent byte form of a table: strings joined, numbers as float64/int64."""
    values = np.asarray(ds[()])
    if values.dtype.kind in "OSU":
        return "\x00".join(text_of(v) for v in values.reshape(-1)).encode("utf-8", "replace")
    if values.dtype.kind == "f":
        return np.ascontiguousarray(values, dtype=np.float64).tobytes()
    if values.dtype.kind in "iub":
        return np.ascontiguousarray(values, dtype=np.int64).tobytes()
    return values.tobytes()


def _all_finite(ds: h5py.Dataset) -> bool:
    """True when a dataset holds no NaN/Inf; reads it in bounded chunks."""
    for start in range(0, ds.shape[0], SCAN_CHUNK_STEPS):
        if not np.isfinite(ds[start : start + SCAN_CHUNK_STEPS]).all():
            return False
    return True
