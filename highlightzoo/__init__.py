"""highlightzoo: personalized video highlight detection models, data and evaluation.

Quick start::

    import highlightzoo as hz
    hz.list_models()
    model = hz.create_model("prnet", feature_dim=512)
"""

__version__ = "0.1.0"  # first, so modules imported below may read it at import time

from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.inference import Detector
from highlightzoo.models.registry import create_model, get_model_card, list_models, register_model

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
