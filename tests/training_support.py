"""Shared helpers of the engine tests: a tiny feature store with a learnable signal.

(No tests here; the engine test modules import from it.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from highlightzoo.data.store import StoreWriter

FEATURE_DIM = 8
RATE = 2.0


def write_tiny_store(
    path: Path,
    *,
    feature_dim: int = FEATURE_DIM,
    users: tuple[int, int, int] = (8, 4, 4),
    steps: tuple[int, int] = (40, 90),
    seed: int = 0,
    no_positive_test_user: bool = True,
) -> Path:
    """A store with train/val/test users; highlights carry a topic direction plus a generic boost.

    Each user likes one of 3 topics; a target video mixes shots of all topics
    and the highlight lies in a shot of the user's topic, so history matters.
    With ``no_positive_test_user`` one extra test user's target highlight is
    shorter than half a step, so it has no positive step (evaluation must skip
    and count it).
    """
    rng = np.random.default_rng(seed)
    topics = rng.random((3, feature_dim)).astype(np.float32)
    names = {"train": users[0], "val": users[1], "test": users[2]}
    with StoreWriter(path, feature_dim, source="engine-tests") as w:
        splits: dict[str, list[str]] = {k: [] for k in names}
        for split, count in names.items():
            for u in range(count):
                uid = f"{split}-u{u}"
                topic = u % 3
                history = []
                for h in range(u % 4):  # 0..3 history segments (cold start included)
                    vid = f"{uid}-h{h}"
                    feats = rng.random((12, feature_dim)).astype(np.float32) * 0.3
                    feats[2:8] += topics[topic]
                    w.add_video(vid, feats, RATE)
                    history.append((vid, 1.0, 4.0))
                n = int(rng.integers(*steps))
                feats = rng.random((n, feature_dim)).astype(np.float32) * 0.3
                shot = n // 3
                for k in range(3):
                    feats[k * shot : (k + 1) * shot] += 0.5 * topics[(topic + k) % 3]
                first = int(rng.integers(2, shot - 6))
                feats[first : first + 5] += topics[topic]
                vid = f"{uid}-target"
                w.add_video(vid, feats, RATE)
                w.add_user(uid, vid, [(first / RATE, (first + 5) / RATE)], history)
                splits[split].append(uid)
        if no_positive_test_user:
            feats = rng.random((30, feature_dim)).astype(np.float32)
            w.add_video("test-empty-target", feats, RATE)
            w.add_user("test-empty", "test-empty-target", [(3.0, 3.1)], [])
            splits["test"].append("test-empty")
        for split, ids in splits.items():
            w.set_split(split, ids)
    return path


# Size-only overrides that keep the FCN baselines (4096-channel fc layers at width 1) quick
# on a CPU; the same for both, as in the benchmark presets.
SMALL = {"fcsn": {"width_mult": 0.0625}, "avhd": {"width_mult": 0.0625}}


def write_fresh_checkpoint(path: Path, model: str, data: Path, feature_dim: int = FEATURE_DIM) -> Path:
    """A checkpoint of an untrained model, in the trainer's format (fast; no training)."""
    import torch

    import highlightzoo as hz
    from highlightzoo.training.checkpoint import save_checkpoint
    from highlightzoo.training.config import TrainConfig

    torch.manual_seed(0)
    net = hz.create_model(model, feature_dim=feature_dim, **SMALL.get(model, {}))
    config = TrainConfig(model=model, data=str(data), model_overrides=SMALL.get(model, {}))
    save_checkpoint(
        path,
        {
            "model_state": net.state_dict(),
            "build_args": dict(net.build_args),
            "model_card": net.card.to_dict(),
            "config": config.to_dict(),
            "history_cap": config.resolved_history_cap(net.card.history_cap),
        },
    )
    return path


#: ``set_at``'s value that deletes the key instead.
GONE = object()


def set_at(data: Any, place: tuple, value: Any) -> None:
    """Put ``value`` at key path ``place`` of nested dicts / lists in place (``GONE``: delete it)."""
    for key in place[:-1]:
        data = data[key]
    if value is GONE:
        del data[place[-1]]
    else:
        data[place[-1]] = value
