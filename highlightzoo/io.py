"""Atomic file writes (a temp file in the same folder, fsync, then ``os.replace``),
:func:`folder_lock` (one writer per run or benchmark folder), and :func:`read_arrays`, the one
reader of NumPy ``.npy``/``.npz`` files.

The one place for "nothing written is left half-done": checkpoints, results
files, tables, figures and feature stores all go through here, so an
interrupted write never leaves a partial file under the final name.

A temp file is named ``.<name>.<host>.<pid>.<random>.tmp`` next to its target.
A write killed hard (``kill -9``, power loss) cannot remove its temp file, so
the next write to the same target removes the temp files whose writer process
(same host) no longer runs, and :func:`temp_files_of` lists the others
(``highlightzoo data info`` names them). Finished files get the usual mode of
a new file under the process umask (``0o666 & ~umask``), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import re
import socket
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from highlightzoo.errors import DataFormatError, RunFolderError, WriteError

#: this host's name as it appears in temp file names (letters, digits and '-')
HOST_TAG = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + ``os.replace``.

    Any OS failure (no permission, disk full) is a :class:`WriteError` naming
    ``path``; the old file, if any, is then unchanged and no temp file is left.
    """
    path = Path(path)
    tmp = new_temp_file(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise WriteError(f"cannot write {str(path)!r}: {err}") from err
        raise
    commit_temp_file(tmp, path)


def commit_temp_file(tmp: Path, path: Path) -> None:
    """Publish a finished temp file (from :func:`new_temp_file`): fsync it, then ``os.replace``.

    For writers that fill the temp file themselves (HDF5 stores). On failure
    ``tmp`` is removed, ``path`` is unchanged, and an OS error is a
    :class:`WriteError` naming ``path``.
    """
    try:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise WriteError(f"cannot write {str(path)!r}: {err}") from err
        raise


def new_temp_file(path: Path) -> Path:
    """Create an empty temp file for ``path`` (same folder, usual mode); stale ones are removed first.

    Makes the parent folder if needed. OS failures, and a ``path`` that is a folder, are a
    :class:`WriteError` naming ``path``.
    """
    path = output_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(path)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{HOST_TAG}.{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
        os.close(fd)
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0600
    except OSError as err:
        raise WriteError(f"cannot write {str(path)!r}: {err}") from err
    return Path(tmp)


def output_file(path: str | os.PathLike) -> Path:
    """``path`` as a file to write, a :class:`WriteError` when it is a folder: found otherwise
    only by the final rename, after all the work (writers that read a lot first check early)."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"cannot write {str(path)!r}: it is a folder; name a file in it")
    return path


def output_folder(path: str | os.PathLike, *, make: bool = True) -> Path:
    """``path`` as an existing folder, made (with its parents) if needed; a :class:`WriteError`
    naming it when it is a file or cannot be made (the folder a command writes into).
    ``make=False``: only the check that it is not a file (a command that checks its
    arguments before it writes anything)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WriteError(f"cannot write into {str(path)!r}: it is a file, not a folder")
    if not make:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(f"cannot make the folder {str(path)!r}: {err}") from err
    return path


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file under the current umask."""
    return 0o666 & ~_umask()


def temp_files_of(path: Path) -> list[Path]:
    """Temp files of writes to ``path`` that are still there (running or interrupted), sorted."""
    path = Path(path)
    prefix = f".{path.name}."
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    return sorted(
        p for p in entries if p.name.startswith(prefix) and p.name.endswith(".tmp") and p.is_file()
    )


def is_stale_temp_file(tmp: Path, path: Path) -> bool:
    """True when ``tmp`` is our temp file for ``path`` and its writer (this host) is gone."""
    rest = Path(tmp).name[len(f".{Path(path).name}.") :].split(".")
    if len(rest) != 4 or not rest[1].isdigit() or rest[3] != "tmp":
        return False  # another naming scheme: we cannot tell, keep it
    return _writer_gone(rest[0], int(rest[1]))


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Delete temp files left by killed writes to ``path`` (see :func:`is_stale_temp_file`)."""
    removed = []
    for tmp in temp_files_of(path):
        if is_stale_temp_file(tmp, path):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _writer_gone(host: str, pid: int) -> bool:
    """Whether the process ``pid`` of ``host`` that wrote a temp or lock file no longer runs;
    False for another host, whose processes cannot be seen from here."""
    return host == HOST_TAG and not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or an absurd pid): leave it
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic text write (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: what a damaged, truncated or foreign ``.npy``/``.npz`` raises inside ``np.load``
_ARRAY_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def read_arrays(path: str | os.PathLike, what: str, *, video: str | None = None,
                reason: str = "unreadable") -> np.ndarray | dict[str, np.ndarray]:
    """The array of a ``.npy`` file, or the arrays of a ``.npz`` by name (read at once).

    Never unpickles (an object array is refused like a corrupt file). Any failure to read
    (missing, truncated, empty, not NumPy, a damaged zip member) is a
    :class:`DataFormatError` saying what was being read and naming the file (and
    ``video``), never ``zipfile``'s or ``EOFError``'s traceback.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {name: loaded[name] for name in loaded.files}
        return loaded
    except _ARRAY_READ_ERRORS as err:
        raise DataFormatError(f"cannot read {what} ({type(err).__name__}: {err})",
                              path=str(path), video=video, reason=reason) from None


#: the first bytes of the files the package reads, and what a file that starts so is
_FILE_SIGNATURES = (
    (b"\x89HDF\r\n\x1a\n", "hdf5", "an HDF5 file (a feature store or a features file)"),
    (b"PK\x03\x04", "zip", "a zip file (a PyTorch checkpoint or an .npz)"),
    (b"\x93NUMPY", "npy", "a NumPy .npy file"),
)


def file_kind_note(path: str | os.PathLike, expected: str) -> str:
    """``"; it is an HDF5 file (...)"`` when ``path`` starts like a kind of file the package
    reads other than ``expected`` ("hdf5", "zip", "npy", "text"), else "": for the message of
    a file given in another's place (a store as a checkpoint said "would need pickled code";
    a checkpoint as a store, h5py's "file signature not found")."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return ""
    for magic, kind, text in _FILE_SIGNATURES:
        if head.startswith(magic):
            return "" if kind == expected else f"; it is {text}"
    return ""


_EXTRA_CELLS = "\x00extra cells"  # where csv.DictReader puts a line's cells past the header's


@dataclass(frozen=True)
class CsvLine:
    """One data line of a CSV: its line number in the file (the header is line 1; blank lines
    are skipped but counted), its cells by column name, and what is wrong with its shape
    (``"has 7 cells, the header 6"``) or None."""

    line: int
    cells: dict[str, str]
    problem: str | None


def read_csv_lines(path: str | os.PathLike, columns: Sequence[str], what: str = "CSV"
                   ) -> list[CsvLine]:
    """The data lines of a CSV whose header names at least ``columns`` (read at once).

    The header and the file are checked here, for every CSV the package reads: a missing or
    unreadable file, one that is not UTF-8 text, a missing column or a column named twice (the
    last one's cells would be read under the name) is a :class:`DataFormatError` naming the
    file and ``what`` it is. A UTF-8 byte-order mark (spreadsheet exports write one) is read
    past. A line with another number of cells than the header (an unquoted comma, a cut line)
    is returned with its ``problem``, so that a lenient reader can count it and go on.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, restkey=_EXTRA_CELLS)
            names = list(reader.fieldnames or [])
            missing = [c for c in columns if c not in names]
            if missing:
                raise DataFormatError(f"{what} lacks column(s) {missing}; its header: {names}",
                                      path=str(path), reason="missing_column")
            repeated = sorted({c for c in names if names.count(c) > 1})
            if repeated:
                raise DataFormatError(f"{what} header names column(s) {repeated} more than once",
                                      path=str(path), reason="repeated_column")
            lines = []
            for raw in reader:
                extra = raw.pop(_EXTRA_CELLS, None) or []
                cells = len(names) + len(extra) - sum(v is None for v in raw.values())
                problem = None if cells == len(names) else (
                    f"has {cells} cells, the header {len(names)}")
                lines.append(CsvLine(reader.line_num, raw, problem))
    except (OSError, UnicodeDecodeError, csv.Error) as err:  # missing, unreadable, not text
        raise DataFormatError(f"cannot read {what} ({type(err).__name__}: {err})"
                              f"{file_kind_note(path, 'text')}", path=str(path),
                              reason="unreadable_csv") from None
    return lines


#: the file that marks a run or benchmark folder as in use (:func:`folder_lock`)
LOCK_FILE = ".highlightzoo.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``folder`` for this process while the block runs (``what``: the command, for the
    message). Two processes training or benchmarking into one folder would each rewrite the
    other's checkpoints and results; the second is a :class:`RunFolderError` naming the holder.

    The lock is a file made with ``O_EXCL`` holding host and process id. One left by a process
    of this host that no longer runs (``kill -9``) is taken over; one of another host is only
    named, since its process cannot be seen from here.
    """
    lock = Path(folder) / LOCK_FILE
    mine = f"{HOST_TAG} {os.getpid()} {what}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, default_file_mode())
        except FileExistsError:
            holder = _lock_holder(lock)
            if holder is not None and _writer_gone(holder[0], holder[1]):
                lock.unlink(missing_ok=True)  # its process was killed: take it over
                continue
            who = (f"process {holder[1]} on {holder[0]} ({holder[2]})" if holder
                   else "another process")
            raise RunFolderError(
                f"{str(folder)!r} is in use by {who}; wait for it to end, or, if it no longer "
                f"runs, delete {str(lock)!r}") from None
        except OSError as err:
            raise WriteError(f"cannot lock {str(folder)!r}: {err}") from err
        with os.fdopen(fd, "w") as fh:
            fh.write(mine + "\n")
        break
    try:
        yield
    finally:
        holder = _lock_holder(lock)
        if holder is not None and holder[:2] == (HOST_TAG, os.getpid()):
            lock.unlink(missing_ok=True)


def _lock_holder(lock: Path) -> tuple[str, int, str] | None:
    """``(host, pid, what)`` written in a lock file; None when it cannot be read."""
    try:
        host, pid, what = lock.read_text(encoding="utf-8").strip().split(" ", 2)
        return host, int(pid), what
    except (OSError, ValueError):
        return None
