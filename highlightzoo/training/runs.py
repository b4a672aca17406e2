"""Run folders, provenance and the run log.

A run folder holds ``config.json`` (the resolved :class:`TrainConfig`),
``train.log``, ``checkpoints/last.pt`` (to resume), ``checkpoints/best.pt``
(best validation mAP) and, once finished, ``results.json``. A run folder is
never overwritten: an explicit ``--out`` that exists is an error, and an
auto-named folder under ``runs/`` is always fresh.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from highlightzoo.data.store import fingerprint_difference, store_fingerprint
from highlightzoo.errors import ConfigError, DataFormatError, RunFolderError
from highlightzoo.io import atomic_write_text, file_kind_note
from highlightzoo.provenance import environment

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
LOG_FILE = "train.log"
CHECKPOINT_DIR = "checkpoints"


def benchmark_folder_note(path: Path) -> str:
    """A note for messages when ``path`` is a benchmark folder of ``bench tables`` (a
    ``runs/`` folder and a results file, no run config), which a run's command was given;
    else "". A benchmark's runs are the run folders under its ``runs/``."""
    path = Path(path)
    if (path / "runs").is_dir() and (path / RESULTS_FILE).is_file() \
            and not (path / CONFIG_FILE).exists():
        return (f"; it is a benchmark folder of `highlightzoo bench tables`, whose runs are "
                f"the folders in {str(path / 'runs')!r}")
    return ""


def create_run_folder(out: str | None, model: str, seed: int, root: Path = Path("runs")) -> Path:
    """Make a new, empty run folder: ``out`` if given (must not exist), else a fresh one under ``root``."""
    if out is not None:
        path = Path(out)
        if path.exists():
            raise RunFolderError(
                f"run folder {str(path)!r} already exists; runs are never overwritten "
                "(pick another --out, or --resume it)"
            )
        path.mkdir(parents=True)
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = root / f"{model}-s{seed}-{stamp}" if n == 0 else root / f"{model}-s{seed}-{stamp}-{n}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunFolderError(f"could not find a free run folder name under {str(root)!r}")


def write_json(path: Path, data: Any) -> None:
    """Atomic, indented JSON (NaN written as ``NaN``, which Python's json reads back)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, what: str) -> Any:
    """Read a run file, or raise :class:`RunFolderError` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{what} {str(path)!r} does not exist; is this a run folder?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFolderError(f"{what} {str(path)!r} is not valid JSON: {err}"
                             f"{file_kind_note(path, 'text')}") from None


def provenance(device: torch.device, seed: int, world_size: int) -> dict[str, Any]:
    """What a reader needs to trust or rerun a result: :func:`highlightzoo.provenance.environment`
    plus the seed, the number of processes and the time."""
    return {
        **environment(device),
        "world_size": world_size,
        "seed": seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_logger(run_dir: Path | None, *, main: bool) -> logging.Logger:
    """The ``highlightzoo.training`` logger, writing ``train.log`` in the run folder (rank 0 only)."""
    logger = logging.getLogger("highlightzoo.training")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        if getattr(handler, "_highlightzoo_run", False):
            logger.removeHandler(handler)
            handler.close()
    if main and run_dir is not None:
        handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler._highlightzoo_run = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger


def log_to_run_file(logger: logging.Logger, message: str) -> None:
    """Record an error in train.log, if a run log is open (never on the console)."""
    for handler in logger.handlers:
        if getattr(handler, "_highlightzoo_run", False):
            handler.handle(logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, (), None))


def close_logger(logger: logging.Logger) -> None:
    """Detach and close the run's file handler (so a later run gets its own log)."""
    for handler in list(logger.handlers):
        if getattr(handler, "_highlightzoo_run", False):
            logger.removeHandler(handler)
            handler.close()


def pinned_store(
    recorded: str, fingerprint: dict[str, Any] | None, explicit: str | None, what: str
) -> tuple[str, dict[str, Any], str | None]:
    """The store a run's resume or evaluation reads: ``(absolute path, fingerprint, note)``.

    Without ``explicit`` (no ``--data``): the ``recorded`` path, which must still
    hold the content it had (same :func:`~highlightzoo.data.store.store_fingerprint`),
    else a :class:`~highlightzoo.errors.DataFormatError`; a relative path without a
    fingerprint (an older run) is a :class:`~highlightzoo.errors.ConfigError`, since it
    would be read against the current folder. With ``explicit``: that store, and a
    ``note`` saying so when it is not the recorded content. ``what`` names the run
    or checkpoint in messages. See docs/reliability.md.
    """
    if explicit is not None:
        path = os.path.abspath(explicit)
        now = store_fingerprint(path)
        note = None
        if fingerprint is not None and now != fingerprint:
            note = (
                f"note: {what} was trained on store {recorded!r}; using {path!r} as --data asks "
                f"({fingerprint_difference(fingerprint, now)})"
            )
        return path, now, note
    if fingerprint is None and not os.path.isabs(recorded):
        raise ConfigError(
            f"{what} records the relative store path {recorded!r} and no fingerprint (an older "
            "highlightzoo), which would be read against the current folder; name the store with --data"
        )
    try:
        now = store_fingerprint(recorded)
    except DataFormatError as err:
        raise DataFormatError(
            f"cannot reopen the store of {what} ({err.args[0]}); name the store with --data",
            path=recorded, reason=err.reason,
        ) from None
    if fingerprint is not None and now != fingerprint:
        raise DataFormatError(
            f"the store of {what} changed since it was trained ({fingerprint_difference(fingerprint, now)}); "
            "give --data explicitly to use it anyway",
            path=recorded, reason="fingerprint",
        )
    return recorded, now, None
