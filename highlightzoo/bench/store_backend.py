"""``bench tables --data STORE``: the benchmark on a feature store you bring (no world is built).

:class:`StoreBackend` is the real backend with one change: its "world" is the
given store, keyed by the store's content fingerprint
(:func:`highlightzoo.data.store.store_fingerprint`), so a benchmark folder
resumes on the same store and refuses another one. The world probes read a
synthetic generator's latents, which a real store has not: they are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from highlightzoo.bench.backend import TrainerBackend
from highlightzoo.bench.presets import BenchPreset
from highlightzoo.bench.protocol import World
from highlightzoo.data.store import FeatureStore
from highlightzoo.data.store_format import STANDARD_SPLITS
from highlightzoo.errors import ConfigError


def store_world(path: str | os.PathLike) -> World:
    """A :class:`World` for an existing store: path, key = its fingerprint's index hash, info.

    ``info`` names the store (``store``: file name, ``path``: absolute path),
    its ``source`` attribute, its ``features`` description when it has one,
    and the full ``fingerprint``. The store must have train, val and test users.
    """
    path = Path(path).resolve()
    with FeatureStore(path, check_features=False) as store:
        missing = [s for s in STANDARD_SPLITS if s not in store.splits or not store.users(s)]
        if missing:
            raise ConfigError(
                f"bench tables --data needs users in the splits {list(STANDARD_SPLITS)}; "
                f"{str(path)!r} has none in {missing}"
            )
        fingerprint = store.fingerprint()
        info: dict[str, Any] = {
            "store": path.name,
            "path": str(path),
            "source": store.metadata.get("source", ""),
            "features": store.metadata.get("features"),
            "fingerprint": fingerprint,
        }
    return World(path=path, key=fingerprint["index_sha256"][:16], info=info)


class StoreBackend(TrainerBackend):
    """Train and test on a given store; everything else as :class:`TrainerBackend`."""

    def __init__(self, store: str | os.PathLike) -> None:
        self.store = Path(store)

    def build_world(
        self, preset: BenchPreset, *, replay: Path | None, cache_dir: Path, quiet: bool
    ) -> World:
        if replay is not None:
            raise ConfigError("--data and --replay exclude each other: --data names the store to use")
        return store_world(self.store)

    def probes(self, world: World, replay: Path | None) -> dict[str, Any] | None:
        """None: the probes need a synthetic world's latents (docs/history.md)."""
        return None
