"""The model zoo: registry, shared components and every registered detector.

Importing this package registers the built-in models (one module each).
"""

# Built-in models register themselves on import; keep this list to model modules only.
from highlightzoo.models import avhd, fcsn, floors, phdgifs, prnet, video2gif  # noqa: E402,F401
from highlightzoo.models.registry import (
    ModelCard,
    create_model,
    get_model_card,
    list_models,
    register_model,
)

__all__ = ["ModelCard", "create_model", "get_model_card", "list_models", "register_model"]
