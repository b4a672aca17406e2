"""A synthetic world with the properties the paper relies on (docs/synthetic-world.md).

No real video features exist here, so the benchmark runs on generated data.
Every parameter of :class:`WorldConfig` says where its value comes from: a
statistic measured on PHD-GIFs ``testing.csv`` (tables below), a statement of
the PR-Net paper, or (marked "assumption") a choice made before any model ran.
The parameters are never tuned to make a model win. ``docs/synthetic-world.md``
explains the generative story.

The story, per user: 1-4 interest topics (popular topics more common); a target
video and history videos with real durations; highlight segments with real
durations, most inside an interesting shot of one of the user's topics, some
off-interest. Per video: shots of a few seconds, each of one topic from a small
set, so same-topic shots repeat; each shot has an appeal (how interesting it
is to anybody, the generic component) whose effect rises and falls within the
shot. Features: ``relu(topic prototype + shot jitter + appeal * profile *
generic direction + noise)``, non-negative like C3D/ReLU features. Only the
user's own segment is labelled, never the similar shots of the same topic.

:func:`synthesize` streams users to disk (bounded memory, same seed -> same
bytes); :func:`synthesize_replay` keeps the user / video / segment structure
of a PHD-GIFs CSV and synthesises only the features.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from highlightzoo.checks import int_at_least
from highlightzoo.data.phdgifs import read_phdgifs_csv, split_users
from highlightzoo.data.store import StoreWriter
from highlightzoo.errors import ConfigError, DataFormatError

# Quantiles measured on PHD-GIFs testing.csv (20,488 rows, 850 users), at these levels (%).
_LEVELS = (
    0,
    5,
    10,
    15,
    20,
    25,
    30,
    35,
    40,
    45,
    50,
    55,
    60,
    65,
    70,
    75,
    80,
    85,
    90,
    95,
    98,
    99,
    100,
)
#: Highlight segment duration, seconds (median 3.1, p90 10.9, max 26.7).
SEGMENT_S = (0.09, 1.27, 1.75, 2.1, 2.46, 2.75, 3.0, 3.0, 3.0, 3.0, 3.12, 3.5, 3.98, 4.48,
             5.03, 5.99, 7.0, 8.43, 10.89, 14.63, 15.0, 15.0, 26.7)  # fmt: skip
#: Duration of distinct videos with a known duration, seconds (median 198, p90 666).
VIDEO_S = (2.0, 24.0, 39.7, 57.0, 74.0, 93.0, 114.0, 135.0, 155.0, 177.0, 198.0, 219.0, 243.0,
           269.0, 302.0, 352.0, 426.0, 534.0, 666.3, 986.0, 1678.86, 2608.0, 11677.0)  # fmt: skip
#: Duration of each user's target video, seconds (median 188, max 843).
TARGET_VIDEO_S = (11.0, 30.15, 45.0, 62.45, 81.6, 96.0, 114.8, 136.0, 158.2, 171.35, 188.0,
                  204.0, 222.8, 246.95, 272.0, 298.0, 358.0, 424.1, 549.2, 659.85, 767.7,
                  787.57, 843.0)  # fmt: skip
#: History segments per user (min 2, median 10, p90 33, max 1,347).
HISTORY_SEGMENTS = (2, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 15, 17, 20, 25.65, 33,
                    55.55, 102.22, 229.58, 1347)  # fmt: skip
#: Segments per (user, history video) (median 1, p90 4, max 60).
SEGMENTS_PER_VIDEO = (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 4, 6, 9, 14, 60)
#: Highlight segments in a user's target video (median 1, p90 3, max 152).
TARGET_SEGMENTS = (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4.55, 7, 9, 152)


def _draw(table: tuple, rng: np.random.Generator, hi: float | None = None) -> float:
    """One draw from a quantile table (log-linear between quantiles), truncated at ``hi``."""
    levels, logv = np.asarray(_LEVELS) / 100.0, np.log(np.asarray(table, dtype=float))
    u_hi = 1.0 if hi is None else float(np.interp(np.log(hi), logv, levels))
    return float(np.exp(np.interp(rng.uniform(0.0, max(u_hi, 1e-9)), levels, logv)))


def _draw_count(table: tuple, rng: np.random.Generator) -> int:
    return max(1, int(round(_draw(table, rng))))


@dataclass(frozen=True)
class WorldConfig:
    """Every parameter of the synthetic world (see docs/synthetic-world.md)."""

    name: str = "custom"
    #: users per split; the paper's processed split is 9,478 / 750 / 675 (Sec. 4.1)
    n_train: int = 8
    n_val: int = 2
    n_test: int = 2
    #: feature size; C3D is 8192-d (docs/synthetic-world.md), smaller here to fit CPU/disk budgets
    feature_dim: int = 16
    #: steps per second: C3D, one feature per 16 frames at ~30 fps (docs/synthetic-world.md) = 1.875
    rate: float = 1.875
    #: on-disk dtype of features (float16 halves disk use; reading gives float32)
    dtype: str = "float32"
    #: longest history video in seconds; None keeps the real distribution (max 11,677 s).
    #: Only highlight segments of history videos are read, so long ones cost disk, not time
    max_video_s: float | None = None
    #: at most this many annotated videos per user, target included (paper Sec. 4.1: 20)
    max_videos_per_user: int = 20
    #: number of latent topics: "dozens of topics" (docs/synthetic-world.md); paper lists cartoons, pets, music...
    n_topics: int = 40
    #: topic popularity ~ rank^-zipf: "popular topics more common" (docs/synthetic-world.md); exponent: assumption
    topic_zipf: float = 1.0
    #: fraction of feature dims active in a topic prototype / generic direction (sparse,
    #: non-negative like ReLU features, docs/synthetic-world.md); value: assumption
    support: float = 0.25
    #: probabilities of a user having 1, 2, 3, 4 interest topics ("1 to 4", docs/synthetic-world.md); assumption
    interest_probs: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    #: share of highlights off the user's interests ("subjective noise", docs/synthetic-world.md); assumption
    off_interest: float = 0.15
    #: chance that a user's further highlight in a video overlaps an earlier one (users make
    #: several GIFs of one moment): measured on testing.csv, 49 % of extra target segments
    #: and 22 % of extra history segments overlap an earlier segment of the same video
    overlap_target: float = 0.49
    overlap_history: float = 0.22
    #: shot duration: lognormal median / log-sd / bounds, "a few seconds each" (docs/synthetic-world.md); assumption
    shot_median_s: float = 5.0
    shot_log_sd: float = 0.5
    shot_min_s: float = 1.5
    shot_max_s: float = 20.0
    #: distinct topics per video, min..max: several shots share a topic ("many similar
    #: shots in a video", paper Sec. 4.1); assumption
    topics_per_video: tuple[int, int] = (2, 4)
    #: appeal of unlabelled shots ~ Beta(a, b): mostly dull, a few generically interesting
    #: (the generic component, docs/synthetic-world.md); assumption
    appeal_beta: tuple[float, float] = (1.5, 4.0)
    #: appeal of a highlighted shot ~ U(lo, hi): highlights sit in interesting shots; assumption
    highlight_appeal: tuple[float, float] = (0.7, 1.0)
    #: feature mixture gains and per-dim noise sd (chosen so one step's appeal is ambiguous
    #: and temporal context helps, docs/synthetic-world.md); assumption
    topic_gain: float = 1.0
    shot_jitter: float = 0.3
    generic_gain: float = 1.0
    noise: float = 0.5

    @property
    def n_users(self) -> int:
        return self.n_train + self.n_val + self.n_test

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> WorldConfig:
        if min(self.n_train, self.n_val, self.n_test) < 0 or self.n_users < 1:
            raise ConfigError(f"user counts must be >= 0 with at least one user: {self}")
        if self.feature_dim < 1 or self.rate <= 0 or self.n_topics < 1:
            raise ConfigError("feature_dim, rate and n_topics must be positive")
        if (
            not np.isclose(sum(self.interest_probs), 1.0)
            or len(self.interest_probs) > self.n_topics
        ):
            raise ConfigError("interest_probs must sum to 1 and not exceed n_topics entries")
        if self.max_videos_per_user < 2:
            raise ConfigError("max_videos_per_user must be >= 2 (a target and a history video)")
        return self


WORLD_PRESETS: dict[str, WorldConfig] = {
    # unit tests: a few users, generated and loaded in well under a second
    "tiny": WorldConfig("tiny", 8, 2, 2, feature_dim=16, max_video_s=240.0, max_videos_per_user=4),
    # CPU benchmark: 45 training runs on 2 cores must fit ~20 min
    "quick": WorldConfig("quick", 400, 100, 150, feature_dim=64, dtype="float16"),
    # GPU benchmark
    "standard": WorldConfig("standard", 3000, 300, 400, feature_dim=256, dtype="float16"),
    # the paper's processed split (Sec. 4.1); 128-d float16 keeps ~62M steps within ~16 GB
    "paper": WorldConfig("paper", 9478, 750, 675, feature_dim=128, dtype="float16"),
}


def get_world_config(name_or_config: str | WorldConfig) -> WorldConfig:
    """A preset by name (``tiny``, ``quick``, ``standard``, ``paper``) or the config itself."""
    if isinstance(name_or_config, WorldConfig):
        return name_or_config.validate()
    if name_or_config not in WORLD_PRESETS:
        raise ConfigError(f"unknown preset {name_or_config!r}; choose from {sorted(WORLD_PRESETS)}")
    return WORLD_PRESETS[name_or_config].validate()


@dataclass(frozen=True)
class PlannedHighlight:
    """A highlight to place: span in seconds and the topic of the shot around it."""

    start: float
    end: float
    topic: int


@dataclass(frozen=True)
class StepLatents:
    """The generator's hidden variables at each step of a rendered video (never stored).

    ``topic`` (T,) int: the topic of the step's shot; ``appeal`` (T,) float:
    the weight of the generic direction at the step (shot appeal x its
    rise-and-fall profile), i.e. how interesting the step is to anybody.
    """

    topic: np.ndarray
    appeal: np.ndarray


class WorldRenderer:
    """Topic prototypes and the renderer of one video's features."""

    def __init__(self, config: WorldConfig, seed: int) -> None:
        self.cfg = config
        seed = int_at_least(seed, 0, "the world's seed")  # NumPy takes no negative seed
        rng = np.random.default_rng([seed, 0])
        d, k = config.feature_dim, config.n_topics
        mask = rng.random((k + 1, d)) < config.support
        mask[np.arange(k + 1), rng.integers(0, d, k + 1)] = True  # every direction non-empty
        dirs = np.abs(rng.standard_normal((k + 1, d))) * mask
        self.prototypes, self.generic = dirs[:k], dirs[k]
        pop = 1.0 / np.arange(1, k + 1) ** config.topic_zipf
        self.popularity = pop / pop.sum()

    def interests(self, rng: np.random.Generator) -> np.ndarray:
        """1-4 distinct interest topics, popular topics more likely."""
        n = int(rng.choice(len(self.cfg.interest_probs), p=self.cfg.interest_probs)) + 1
        return rng.choice(self.cfg.n_topics, size=n, replace=False, p=self.popularity)

    def segment_topic(self, interests: np.ndarray, rng: np.random.Generator) -> int:
        """An interest topic, or (with prob. ``off_interest``) any topic by popularity."""
        if rng.random() < self.cfg.off_interest:
            return int(rng.choice(self.cfg.n_topics, p=self.popularity))
        return int(rng.choice(interests))

    def _shot_lens(self, rng: np.random.Generator, n: int) -> np.ndarray:
        c = self.cfg
        x = c.shot_median_s * np.exp(c.shot_log_sd * rng.standard_normal(n))
        return np.clip(x, c.shot_min_s, c.shot_max_s)

    def _fill(self, t0: float, t1: float, topics: list[int], rng: np.random.Generator):
        """(m, 5) filler shots tiling ``[t0, t1)``; the last one absorbs the remainder."""
        c = self.cfg
        ends = t0 + np.cumsum(self._shot_lens(rng, int((t1 - t0) / c.shot_min_s) + 2))
        ends = np.append(ends[ends <= t1 - c.shot_min_s], t1)
        starts = np.concatenate([[t0], ends[:-1]])
        topic = np.asarray(topics)[rng.integers(len(topics), size=len(ends))]
        appeal = rng.beta(*c.appeal_beta, size=len(ends))
        return np.stack([starts, ends, topic, appeal, rng.uniform(starts, ends)], axis=1)

    def shots(self, duration: float, segments: list[PlannedHighlight], rng: np.random.Generator):
        """Shot boundaries, topics, appeal and peak times covering ``[0, duration)``.

        Each highlight gets an anchor shot around it (its topic, high appeal,
        peak at the segment's centre); gaps are filled with shots whose topics
        come from the video's small topic set, so same-topic shots repeat.
        """
        c = self.cfg
        anchors: list[list[float]] = []  # [start, end, topic, appeal, peak]
        for seg in sorted(segments, key=lambda s: s.start):
            length = max(float(self._shot_lens(rng, 1)[0]), seg.end - seg.start + 0.5)
            lo = max(0.0, seg.start - rng.uniform(0.0, length - (seg.end - seg.start)))
            hi = min(duration, max(lo + length, seg.end))
            appeal = rng.uniform(*c.highlight_appeal)
            peak = 0.5 * (seg.start + seg.end)
            if anchors and lo < anchors[-1][1]:  # overlaps the previous anchor: extend it
                anchors[-1][1] = max(anchors[-1][1], hi)
                continue
            anchors.append([lo, hi, seg.topic, appeal, peak])
        own = list(dict.fromkeys(int(a[2]) for a in anchors))
        k = max(int(rng.integers(c.topics_per_video[0], c.topics_per_video[1] + 1)), len(own))
        extra = [int(t) for t in rng.choice(c.n_topics, size=k, replace=False, p=self.popularity)]
        video_topics = (own + [t for t in extra if t not in own])[:k]
        parts: list[np.ndarray] = []
        t = 0.0
        for a in [*anchors, [duration, duration, -1, 0.0, 0.0]]:
            if a[0] - t > 1e-6:  # fill the gap before this anchor
                parts.append(self._fill(t, a[0], video_topics, rng))
            if a[2] >= 0:
                parts.append(np.asarray([a], dtype=np.float64))
                t = a[1]
        return np.concatenate(parts).reshape(-1, 5)

    def render(self, duration: float, segments: list[PlannedHighlight], rng: np.random.Generator):
        """(T, D) float32 features of a video of ``duration`` s with these highlights."""
        return self.render_with_latents(duration, segments, rng)[0]

    def render_with_latents(
        self, duration: float, segments: list[PlannedHighlight], rng: np.random.Generator
    ) -> tuple[np.ndarray, StepLatents]:
        """:meth:`render` plus the hidden variables of each step (same draws, same features)."""
        c = self.cfg
        shots = self.shots(duration, segments, rng)
        n = max(1, int(round(duration * c.rate)))
        mid = (np.arange(n) + 0.5) / c.rate
        k = np.clip(np.searchsorted(shots[:, 1], mid, side="right"), 0, len(shots) - 1)
        width = np.maximum((shots[:, 1] - shots[:, 0]) / 4.0, 0.5)
        profile = np.exp(-0.5 * ((mid - shots[k, 4]) / width[k]) ** 2)  # rises and falls
        jitter = c.shot_jitter * rng.standard_normal((len(shots), c.feature_dim))
        x = c.topic_gain * self.prototypes[shots[k, 2].astype(int)] + jitter[k]
        x += (c.generic_gain * shots[k, 3] * profile)[:, None] * self.generic
        x += c.noise * rng.standard_normal((n, c.feature_dim))
        latents = StepLatents(topic=shots[k, 2].astype(np.int64), appeal=shots[k, 3] * profile)
        return np.maximum(x, 0.0).astype(np.float32), latents


@dataclass
class SynthReport:
    """What was generated (and, for replay, what was changed or dropped)."""

    users: int = 0
    videos: int = 0
    segments: int = 0
    steps: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    dropped_rows: list[tuple[int, str]] = field(default_factory=list)  # replay: (CSV line, reason)
    changes: Counter = field(default_factory=Counter)  # replay: e.g. duration_extended

    def summary(self) -> str:
        extra = f", {len(self.dropped_rows)} CSV rows dropped" if self.dropped_rows else ""
        ch = f", changes {dict(self.changes)}" if self.changes else ""
        return (
            f"{self.users} users {self.splits}, {self.videos} videos, {self.segments} segments, "
            f"{self.steps} steps{extra}{ch}"
        )


def _user_plan(world: WorldRenderer, rng: np.random.Generator):
    """A user's target (duration, segments) and history videos, drawn (interests first)."""
    return _plan_videos(world, world.interests(rng), rng)


def _plan_videos(world: WorldRenderer, interests: np.ndarray, rng: np.random.Generator):
    """A user's target (duration, segments) and history videos, given the interests."""
    c = world.cfg

    def video(table: tuple, n_segments: int, overlap: float) -> tuple[float, list[PlannedHighlight]]:
        cap = c.max_video_s if table is VIDEO_S else None
        duration = _draw(table, rng, hi=cap)
        segs: list[PlannedHighlight] = []
        for _ in range(n_segments):
            d = min(_draw(SEGMENT_S, rng), 0.9 * duration)
            if segs and rng.random() < overlap:  # another GIF of an earlier moment
                prev = segs[int(rng.integers(len(segs)))]
                s = float(np.clip(rng.uniform(prev.start - 0.9 * d, prev.end), 0.0, duration - d))
                segs.append(PlannedHighlight(s, s + d, prev.topic))
                continue
            s = rng.uniform(0.0, duration - d)
            segs.append(PlannedHighlight(s, s + d, world.segment_topic(interests, rng)))
        return duration, segs

    target = video(TARGET_VIDEO_S, _draw_count(TARGET_SEGMENTS, rng), c.overlap_target)
    remaining = _draw_count(HISTORY_SEGMENTS, rng)
    history = []
    while remaining > 0 and len(history) < c.max_videos_per_user - 1:
        n = min(_draw_count(SEGMENTS_PER_VIDEO, rng), remaining)
        history.append(video(VIDEO_S, n, c.overlap_history))
        remaining -= n
    return target, history


def synthesize(
    config: str | WorldConfig, seed: int, out_path: str | os.PathLike, progress: bool = True
) -> SynthReport:
    """Generate a world and write it as a feature store; returns a summary report.

    Users are generated and written one at a time (memory does not grow with
    the number of videos); the same ``(config, seed)`` gives the same bytes.
    """
    cfg = get_world_config(config)
    world = WorldRenderer(cfg, seed)
    report = SynthReport()
    meta = {"mode": "synthetic", "seed": seed, **cfg.to_dict()}
    split_of = ["train"] * cfg.n_train + ["val"] * cfg.n_val + ["test"] * cfg.n_test
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    with StoreWriter(out_path, cfg.feature_dim, source=f"synthetic world '{cfg.name}'",
                     generator_config=meta, dtype=cfg.dtype) as w:  # fmt: skip
        for u in tqdm(range(cfg.n_users), desc=f"synth {cfg.name}", disable=not progress):
            rng = np.random.default_rng([seed, 1, u])
            (t_dur, t_segs), history = _user_plan(world, rng)
            uid = f"u{u:06d}"
            vids = []
            for duration, segs in [(t_dur, t_segs), *history]:
                vid = f"v{report.videos:07d}"
                feats = world.render(duration, segs, rng)
                w.add_video(vid, feats, cfg.rate, duration)
                report.videos += 1
                report.steps += len(feats)
                vids.append(vid)
            hist = [
                (v, s.start, s.end)
                for v, (_, segs) in zip(vids[1:], history, strict=True)
                for s in segs
            ]
            w.add_user(uid, vids[0], [(s.start, s.end) for s in t_segs], hist)
            splits[split_of[u]].append(uid)
            report.segments += len(t_segs) + len(hist)
        for name, ids in splits.items():
            w.set_split(name, ids)
    report.users = cfg.n_users
    report.splits = {k: len(v) for k, v in splits.items()}
    return report


@dataclass(frozen=True)
class TargetLatents:
    """A synthetic user's target video as :func:`synthesize` drew it, with its hidden variables.

    ``features`` (T, D) float32 before the store's dtype cast; ``segments`` the
    labelled highlights; ``interests`` the user's interest topics; ``steps``
    the per-step :class:`StepLatents`.
    """

    user_index: int
    interests: np.ndarray
    duration: float
    segments: list[PlannedHighlight]
    features: np.ndarray
    steps: StepLatents


def target_latents(world: WorldRenderer, seed: int, user_index: int) -> TargetLatents:
    """Redraw user ``user_index``'s interests and target video exactly as :func:`synthesize` does.

    ``world`` must be ``WorldRenderer(config, seed)`` of the same config and seed. The
    same random stream is replayed (interests, plan, then the target is the
    first video rendered), so ``features`` equal the stored ones; history
    videos are planned but not rendered.
    """
    rng = np.random.default_rng([seed, 1, user_index])
    interests = world.interests(rng)
    (duration, segments), _history = _plan_videos(world, interests, rng)
    features, steps = world.render_with_latents(duration, segments, rng)
    return TargetLatents(user_index, interests, duration, segments, features, steps)


def _stable(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def synthesize_replay(
    csv_path: str | os.PathLike,
    seed: int,
    out_path: str | os.PathLike,
    *,
    config: str | WorldConfig = "quick",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    split_seed: int | None = None,
    progress: bool = True,
) -> SynthReport:
    """Keep a PHD-GIFs CSV's users, videos and segments; synthesise only the features.

    Feature parameters come from ``config`` (its user counts and duration caps
    are ignored). A video shared by several users is rendered once, from a
    seed of its id, with every user's highlights in it. Unknown durations
    (-1) are drawn from the real distribution, at least the latest segment
    end; a stated duration shorter than a segment is extended to its end
    (counted in ``report.changes``). Rows with an empty span are dropped and
    listed with their reason. Users are split with
    :func:`~highlightzoo.data.phdgifs.split_users` (``split_seed`` defaults to ``seed``).
    """
    cfg = get_world_config(config)
    world = WorldRenderer(cfg, seed)
    users = read_phdgifs_csv(csv_path).users
    report = SynthReport()
    per_video: dict[str, list[PlannedHighlight]] = {}
    stated: dict[str, float | None] = {}
    kept_users = []
    for user in users:
        rng = np.random.default_rng([seed, 1, _stable(user.user_id)])
        interests = world.interests(rng)
        rows = []
        for r in (*user.target, *user.history):
            if not r.end - r.start > 0:
                report.dropped_rows.append((r.line, "nonpositive_duration"))
                continue
            rows.append(r)
            seg = PlannedHighlight(max(r.start, 0.0), r.end, world.segment_topic(interests, rng))
            per_video.setdefault(r.video_id, []).append(seg)
            if stated.get(r.video_id) is None:
                stated[r.video_id] = r.video_duration
        targets = [r for r in rows if r.is_last]
        if len({r.video_id for r in targets}) != 1:
            report.dropped_rows += [(r.line, "user_without_single_target") for r in rows]
            continue
        kept_users.append((user.user_id, targets, [r for r in rows if not r.is_last]))
    if not kept_users:  # never replace a store at out_path with an empty one
        raise DataFormatError(
            f"replay would keep no user ({sum(len(u.target) + len(u.history) for u in users)} "
            f"CSV rows, {len(report.dropped_rows)} dropped); nothing written, "
            f"{str(out_path)!r} untouched", path=str(csv_path), reason="no_users",
        )  # fmt: skip
    meta = {"mode": "replay", "csv": Path(csv_path).name, "seed": seed, **cfg.to_dict()}
    with StoreWriter(out_path, cfg.feature_dim, source=f"replay of {Path(csv_path).name}",
                     generator_config=meta, dtype=cfg.dtype) as w:  # fmt: skip
        for vid in tqdm(sorted(per_video), desc="replay videos", disable=not progress):
            rng = np.random.default_rng([seed, 2, _stable(vid)])
            segs = per_video[vid]
            last_end = max(s.end for s in segs)
            duration = stated[vid]
            if duration is None:
                duration = max(_draw(VIDEO_S, rng), last_end)
                report.changes["duration_drawn"] += 1
            elif duration < last_end:
                duration = last_end
                report.changes["duration_extended"] += 1
            feats = world.render(duration, segs, rng)
            w.add_video(vid, feats, cfg.rate, duration)
            report.steps += len(feats)
        report.videos = len(per_video)
        for uid, targets, history in kept_users:
            w.add_user(uid, targets[0].video_id, [(r.start, r.end) for r in targets],
                       [(r.video_id, r.start, r.end) for r in history])  # fmt: skip
            report.segments += len(targets) + len(history)
        split = split_users(
            [u[0] for u in kept_users], fractions, seed if split_seed is None else split_seed
        )
        for name, ids in split.items():
            w.set_split(name, ids)
    report.users = len(kept_users)
    report.splits = {k: len(v) for k, v in split.items()}
    report.dropped_rows.sort()
    return report
