"""highlightzoo: personalized video highlight detection models, data and evaluation.

Quick start::

    import highlightzoo as hz
    hz.list_models()
    model = hz.create_model("prnet", feature_dim=512)
"""

__version__ = "0.1.0"  # first, so modules imported below may read it at import time

from typing import TYPE_CHECKING, Any

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.models.registry import create_model, get_model_card, list_models, register_model

if TYPE_CHECKING:
    from highlightzoo.inference import Detector


def __getattr__(name: str) -> Any:
    """``highlightzoo.Detector`` on first use: inference pulls in the data and checkpoint
    modules, which ``import highlightzoo`` alone does not need (docs/performance.md)."""
    if name == "Detector":
        from highlightzoo.inference import Detector

        return Detector
    raise AttributeError(f"module 'highlightzoo' has no attribute {name!r}")


__all__ = [
    "Batch",
    "Detector",
    "ModelOutput",
    "__version__",
    "create_model",
    "get_model_card",
    "list_models",
    "register_model",
]
