"""The data layer: feature store (HDF5), labels, per-user Dataset + collate,
PHD-GIFs import and the synthetic world.

Quick start::

    from highlightzoo.data import FeatureStore, HighlightDataset, collate, synthesize
    synthesize("tiny", seed=0, out_path="tiny.h5")
    ds = HighlightDataset("tiny.h5", "train", mode="train")
    batch = collate([ds[0], ds[1]])
"""

from highlightzoo.data.dataset import DatasetReport, HighlightDataset, Sample, collate
from highlightzoo.data.labels import segment_steps, segments_to_step_labels
from highlightzoo.data.phdgifs import ImportReport, import_phdgifs, split_users
from highlightzoo.data.store import (
    FORMAT_VERSION,
    FeatureStore,
    HistorySegment,
    StoreReport,
    StoreWriter,
    UserRecord,
)
from highlightzoo.data.synthetic import (
    WORLD_PRESETS,
    SynthReport,
    WorldConfig,
    synthesize,
    synthesize_replay,
)

__all__ = [
    "FORMAT_VERSION",
    "DatasetReport",
    "FeatureStore",
    "ImportReport",
    "WORLD_PRESETS",
    "SynthReport",
    "WorldConfig",
    "HighlightDataset",
    "HistorySegment",
    "Sample",
    "StoreReport",
    "StoreWriter",
    "UserRecord",
    "collate",
    "segment_steps",
    "import_phdgifs",
    "segments_to_step_labels",
    "split_users",
    "synthesize",
    "synthesize_replay",
]
