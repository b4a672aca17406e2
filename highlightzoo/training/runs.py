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
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from highlightzoo.errors import RunFolderError
from highlightzoo.io import atomic_write_text

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
LOG_FILE = "train.log"
CHECKPOINT_DIR = "checkpoints"


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
        raise RunFolderError(f"{what} {str(path)!r} is not valid JSON: {err}") from None


def git_commit() -> str | None:
    """Commit of the checkout the package runs from, with ``+dirty`` if it has local changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def provenance(device: torch.device, device_name: str, seed: int, world_size: int) -> dict[str, Any]:
    """What a reader needs to trust or rerun a result."""
    from highlightzoo import __version__

    return {
        "highlightzoo": __version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": str(device),
        "device_name": device_name,
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
