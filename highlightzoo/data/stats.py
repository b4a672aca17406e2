"""Summary statistics of a feature store (what ``highlightzoo data info`` prints).

Two positive:unlabeled ratios, both with the dataset's label rule: over the
steps of every user's target video (what training sees), and over every
annotated (user, video) pair, target and history (the whole dataset, as the
paper's "about 1:50 for positive vs unlabeled", Sec. 4.1, most plausibly
counts). On PHD-GIFs testing.csv these are 1:27.5 and 1:36. No feature is read.
"""

from __future__ import annotations

import numpy as np

from highlightzoo.data.labels import segments_to_step_labels
from highlightzoo.data.store import FeatureStore
from highlightzoo.data.store_format import VIDEO_COVERAGE, feature_coverage


def describe(values: list[float] | np.ndarray) -> dict[str, float]:
    """min / median / mean / p90 / max of a list (zeros when empty)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "min": 0.0, "median": 0.0, "mean": 0.0, "p90": 0.0, "max": 0.0}
    return {
        "n": int(a.size),
        "min": float(a.min()),
        "median": float(np.median(a)),
        "mean": float(a.mean()),
        "p90": float(np.percentile(a, 90)),
        "max": float(a.max()),
    }


def store_statistics(store: FeatureStore, min_fraction: float = 0.5) -> dict:
    """Users per split, videos, steps, history sizes, segment durations, label balance."""
    users = store.users()
    positives = unlabeled = 0
    coverage, no_positive = [], 0
    history_sizes, history_videos, seg_durations, target_segments = [], [], [], []
    all_pos = all_unl = 0
    for uid in users:
        rec = store.user(uid)
        for hvid in rec.history_videos:
            spans = [(h.start, h.end) for h in rec.history if h.video_id == hvid]
            hl = segments_to_step_labels(
                spans, store.video_length(hvid), store.video_rate(hvid), min_fraction
            )
            all_pos, all_unl = all_pos + int(hl.sum()), all_unl + len(hl) - int(hl.sum())
        vid = rec.target_video
        labels = segments_to_step_labels(
            rec.target_segments, store.video_length(vid), store.video_rate(vid), min_fraction
        )
        pos = int(labels.sum())
        positives += pos
        unlabeled += len(labels) - pos
        coverage.append(pos / len(labels))
        no_positive += pos == 0
        history_sizes.append(len(rec.history))
        history_videos.append(len(rec.history_videos))
        target_segments.append(len(rec.target_segments))
        seg_durations += [e - s for s, e in rec.target_segments]
        seg_durations += [h.end - h.start for h in rec.history]
    videos = store.videos
    covers = [feature_coverage(store.video_length(v), store.video_rate(v), store.video_duration(v))
              for v in videos]
    lo, hi = VIDEO_COVERAGE
    return {
        "file": store.path,
        "metadata": {k: v for k, v in store.metadata.items() if k != "generator_config"},
        "users_per_split": {s: len(store.users(s)) for s in store.splits},
        "users": len(users),
        "videos": len(videos),
        "steps": int(sum(store.video_length(v) for v in videos)),
        "video_duration_s": describe([store.video_duration(v) for v in videos]),
        # n_steps / rate / duration: about 1; far off, features truncated or of another video
        "feature_coverage": describe(covers),
        "videos_feature_coverage_off": sum(not lo <= c <= hi for c in covers),
        "history_segments_per_user": describe(history_sizes),
        "history_videos_per_user": describe(history_videos),
        "target_segments_per_user": describe(target_segments),
        "segment_duration_s": describe(seg_durations),
        "target_positive_steps": positives,
        "target_unlabeled_steps": unlabeled,
        "positive_to_unlabeled": (unlabeled / positives) if positives else float("inf"),
        "annotated_positive_to_unlabeled": ((all_unl + unlabeled) / (all_pos + positives))
        if positives + all_pos
        else float("inf"),
        "target_coverage": describe(coverage),
        "users_without_positive_step": int(no_positive),
        "skipped_on_open": store.report.counts,
    }
