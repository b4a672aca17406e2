"""The model registry: one mapping from a name to the function that builds it.

``@register_model(card)`` on a builder ``fn(feature_dim: int, **overrides) -> nn.Module``
adds it; :func:`create_model` and :func:`list_models` are the only ways in.
Third-party packages add models through the ``highlightzoo.models`` entry-point
group: each entry point names a module (or callable) whose import registers
its models. CLI choices and parametrised tests are generated from here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from typing import Literal

from torch import nn

from highlightzoo.errors import ModelNotFoundError

ENTRY_POINT_GROUP = "highlightzoo.models"


@dataclass(frozen=True)
class ModelCard:
    """What a registered model is, as plain data (saved with every run).

    ``history_cap``: the most history segments the data pipeline gives this
    model (None = all, 0 = cold start). ``table``: which table of the PR-Net
    paper reports it ("table1", "table2" or None). ``paper_map``: the mAP (%)
    that paper reports for it, for the tables' "paper" column.
    """

    name: str
    summary: str
    paper: str
    granularity: Literal["frame", "segment"]
    uses_history: bool
    default_loss: str
    paper_map: float | None = None
    history_cap: int | None = None
    table: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, tuple[ModelCard, Builder]] = {}
_ENTRY_POINTS_LOADED = False


def register_model(card: ModelCard) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under ``card.name`` (names are unique)."""

    def wrap(builder: Builder) -> Builder:
        if card.name in _REGISTRY and _REGISTRY[card.name][1] is not builder:
            raise ValueError(f"model name {card.name!r} is already registered")
        _REGISTRY[card.name] = (card, builder)
        return builder

    return wrap


def _load_builtin_and_plugins() -> None:
    """Import the built-in model modules and, once, third-party entry points."""
    global _ENTRY_POINTS_LOADED
    import highlightzoo.models  # noqa: F401  (its __init__ imports every built-in model)

    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered model names matching a shell-style ``pattern``."""
    _load_builtin_and_plugins()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_model_card(name: str) -> ModelCard:
    """The :class:`ModelCard` of a registered model."""
    _load_builtin_and_plugins()
    if name not in _REGISTRY:
        raise ModelNotFoundError(
            f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name][0]


def create_model(name: str, feature_dim: int, **overrides) -> nn.Module:
    """Build the registered model ``name`` for ``feature_dim``-d input features.

    ``overrides`` go to the model's builder (e.g. ``width=128``). The built
    module gets ``model.card`` (its :class:`ModelCard`) and
    ``model.build_args`` (``feature_dim`` plus overrides, plain data) so a
    checkpoint can rebuild it.
    """
    card = get_model_card(name)
    model = _REGISTRY[name][1](feature_dim=feature_dim, **overrides)
    model.card = card
    model.build_args = {"feature_dim": feature_dim, **overrides}
    return model
