"""Features from video files: backbones, streamed decoding and extraction (the ``[video]`` extra).

``highlightzoo features extract`` (:mod:`highlightzoo.cli.features`) writes an
HDF5 features file that ``data import-phdgifs --features`` reads; see
docs/your-own-data.md. PyAV is imported only when a video is decoded.
"""

from highlightzoo.features.backbones import (
    BACKBONES,
    BackboneSpec,
    get_backbone_spec,
    load_backbone,
)
from highlightzoo.features.extract import (
    FEATURES_ATTR,
    Extractor,
    ExtractReport,
    extract_features,
    features_mismatch,
    read_features_info,
)

__all__ = [
    "BACKBONES", "BackboneSpec", "Extractor", "ExtractReport", "FEATURES_ATTR", "extract_features",
    "features_mismatch", "get_backbone_spec", "load_backbone", "read_features_info",
]
