"""The feature store: one HDF5 file with video features, user annotations and splits.

Three modules, one concern each: :mod:`~highlightzoo.data.store_format` (the
layout, constants and record types), :mod:`~highlightzoo.data.store_reader`
(:class:`FeatureStore`, validated on open, and the content fingerprint) and
:mod:`~highlightzoo.data.store_writer` (:class:`StoreWriter`, atomic). This
module gathers the names used outside the data package, so ``from
highlightzoo.data.store import FeatureStore`` keeps working; the format is
described in docs/data-format.md.
"""

from highlightzoo.data.store_format import (
    DURATION_TOLERANCE_S,
    FORMAT_VERSION,
    HistorySegment,
    UserRecord,
)
from highlightzoo.data.store_reader import (
    FeatureStore,
    StoreReport,
    fingerprint_difference,
    store_fingerprint,
)
from highlightzoo.data.store_writer import StoreWriter

__all__ = [
    "DURATION_TOLERANCE_S",
    "FORMAT_VERSION",
    "FeatureStore",
    "HistorySegment",
    "StoreReport",
    "StoreWriter",
    "UserRecord",
    "fingerprint_difference",
    "store_fingerprint",
]
