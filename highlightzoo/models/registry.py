"""The model registry: one mapping from a name to the function that builds it.

``@register_model(card)`` on a builder ``fn(feature_dim: int, **overrides) -> nn.Module``
adds it; :func:`create_model` and :func:`list_models` are the only ways in.
Third-party packages add models through the ``highlightzoo.models`` entry-point
group: each entry point names a module (or callable) whose import registers
its models. CLI choices and parametrised tests are generated from here.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import numbers
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from highlightzoo.checks import flag, int_at_least, is_real
from highlightzoo.errors import ConfigError, HighlightZooError, ModelNotFoundError, first_line

ENTRY_POINT_GROUP = "highlightzoo.models"
# create_model refuses a model with more parameters than this unless allow_large=True: a
# mistyped size (e.g. a channel count given as a multiplier) fails at once, not after
# allocating tens of GB. The largest reference model (A-VHD at 8192-d) has ~197M.
MAX_PARAMETERS = 500_000_000


@dataclass(frozen=True)
class ModelCard:
    """What a registered model is, as plain data (saved with every run).

    ``history_cap``: the most history segments the data pipeline gives this
    model (None = all, 0 = cold start). ``table``: which table of the PR-Net
    paper reports it ("table1", "table2" or None). ``paper_map``: the mAP (%)
    that paper reports for it, for the tables' "paper" column. ``trainable``:
    False for a model without trainable parameters (a floor): the benchmark
    gives it no learning-rate sweep and the trainer no optimiser steps.
    ``own_paper_map``: the mAP (%) the model's own authors report on the same
    benchmark when it differs from the PR-Net paper's (FCSN* and A-VHD* of its
    Table 1); shown as a paper-only row.
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
    trainable: bool = True
    own_paper_map: float | None = None

    def __post_init__(self) -> None:
        """Each field of the kind it must be, else a :class:`ConfigError` naming the card: a
        plugin's card of ``granularity="pixel"``, ``uses_history="no"`` (truthy) or a name
        holding ``/`` (run folders are named after it) was taken and failed, or misled, later."""
        problem = card_problem(self)
        if problem:
            raise ConfigError(f"model card {self.name!r}: {problem}")

    def to_dict(self) -> dict:
        return asdict(self)


_CARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def card_problem(card: ModelCard) -> str | None:
    """What is wrong with ``card``'s fields, or None."""
    if not isinstance(card.name, str) or not _CARD_NAME.fullmatch(card.name):
        return "name must be letters, digits, '_', '.' or '-' (run folders are named after it)"
    for key in ("summary", "paper", "default_loss"):
        if not isinstance(getattr(card, key), str):
            return f"{key} must be a text, got {getattr(card, key)!r}"
    if card.granularity not in ("frame", "segment"):
        return f"granularity must be 'frame' or 'segment', got {card.granularity!r}"
    for key in ("uses_history", "trainable"):
        if not isinstance(getattr(card, key), (bool, np.bool_)):
            return f"{key} must be true or false, got {getattr(card, key)!r}"
    for key in ("paper_map", "own_paper_map"):
        value = getattr(card, key)
        if value is not None and not (is_real(value) and 0 <= value <= 100):
            return f"{key} must be None or a mAP in [0, 100] (%), got {value!r}"
    if card.history_cap is not None and not (
            isinstance(card.history_cap, numbers.Integral) and is_real(card.history_cap)
            and card.history_cap >= 0):
        return f"history_cap must be None (all) or an int >= 0, got {card.history_cap!r}"
    if card.table not in (None, "table1", "table2"):
        return f"table must be None, 'table1' or 'table2', got {card.table!r}"
    return None


Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, tuple[ModelCard, Builder]] = {}
_ENTRY_POINTS_LOADED = False
#: entry-point plugins whose import failed: name -> "module: Error: message"
PLUGIN_ERRORS: dict[str, str] = {}
logger = logging.getLogger(__name__)


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
        try:
            ep.load()
        except Exception as err:  # noqa: BLE001 - a broken plugin must not stop the zoo
            # kept and said: a warning now, and in the error for a model that is not found
            PLUGIN_ERRORS[ep.name] = (f"{getattr(ep, 'value', ep.name)}: {type(err).__name__}: "
                                      f"{first_line(err)}")
            logger.warning("model plugin %r failed to load (%s); its models are missing",
                           ep.name, PLUGIN_ERRORS[ep.name])


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered model names matching a shell-style ``pattern``."""
    if not isinstance(pattern, str):
        raise ConfigError(f"pattern must be a shell-style string such as 'prnet*', got {pattern!r}")
    _load_builtin_and_plugins()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_model_card(name: str) -> ModelCard:
    """The :class:`ModelCard` of a registered model."""
    _load_builtin_and_plugins()
    if name not in _REGISTRY:
        broken = "".join(f"; plugin {k!r} failed to load ({v})" for k, v in PLUGIN_ERRORS.items())
        raise ModelNotFoundError(
            f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}{broken}"
        )
    return _REGISTRY[name][0]


def builder_options(builder: Builder) -> list[str] | None:
    """The override names ``builder`` takes: its named parameters but ``feature_dim``.

    A builder that passes ``**kwargs`` on lists what they may be in a ``builder.options``
    attribute; without one it accepts anything (None). A builder may also name, in
    ``builder.fixed_options``, options it sets itself (a variant's switches): overriding one
    is refused with a pointer to the other registered models.
    """
    params = inspect.signature(builder).parameters
    named = [p for p, v in params.items() if p != "feature_dim" and v.kind is not v.VAR_KEYWORD]
    if any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values()):
        options = getattr(builder, "options", None)
        return None if options is None else [*named, *(o for o in options if o not in named)]
    return named


def check_overrides(name: str, builder: Builder, overrides: dict) -> None:
    """A :class:`ConfigError` for an override the builder does not take (listing those it does).

    Builders with ``**kwargs`` and no ``options`` list (:func:`builder_options`) accept
    anything. ``width`` on a model whose size option is ``width_mult`` gets a pointed hint:
    the two mean different things.
    """
    known = builder_options(builder)
    if known is None:
        return
    unknown = sorted(set(overrides) - set(known))
    if not unknown:
        return
    fixed = [k for k in unknown if k in getattr(builder, "fixed_options", ())]
    if fixed:
        raise ConfigError(
            f"model {name!r} sets its variant's switches itself, so {', '.join(map(repr, fixed))} "
            "cannot be overridden; pick the registered model that has the value you want "
            "(highlightzoo list-models)"
        )
    hint = ""
    if "width" in unknown and "width_mult" in known:
        hint = (f"; {name} is sized by width_mult (a multiplier of its reference channel "
                "counts, 1.0 = reference), not width (PR-Net's channel count)")
    raise ConfigError(
        f"model {name!r} has no option {', '.join(map(repr, unknown))}; its options: "
        f"{', '.join(known) or 'none'}{hint}"
    )


def count_parameters_before_building(builder: Builder, feature_dim: int, overrides: dict) -> int:
    """Parameter count of ``builder(feature_dim, **overrides)``, built on the meta device
    (shapes only, no memory). -1 if the builder cannot run there (then no limit is checked)."""
    try:
        with torch.device("meta"):
            probe = builder(feature_dim=feature_dim, **overrides)
    except Exception as err:  # noqa: BLE001 - a typed error is raised again by the real build
        if isinstance(err, HighlightZooError):
            raise
        return -1
    return sum(p.numel() for p in probe.parameters())


def check_model_overrides(name: str, overrides: dict) -> None:
    """:func:`check_overrides` for the registered model ``name`` (a :class:`ConfigError` for an
    unknown name or option), before anything is built."""
    get_model_card(name)
    check_overrides(name, _REGISTRY[name][1], overrides)


def check_feature_dim(name: str, feature_dim: Any) -> int:
    """``feature_dim`` as a Python int >= 1 (NumPy integers are taken), else a
    :class:`ConfigError` naming the model: a string, a float or 0 would otherwise fail deep
    inside a layer, or build a model of empty weights."""
    return int_at_least(feature_dim, 1, f"model {name!r}: feature_dim (the width of one step)")


def create_model(
    name: str, feature_dim: int, allow_large: bool = False, **overrides
) -> nn.Module:
    """Build the registered model ``name`` for ``feature_dim``-d input features.

    ``overrides`` go to the model's builder (e.g. ``width=128`` for PR-Net,
    ``width_mult=0.25`` for the baselines); one it does not take is a
    :class:`ConfigError`. A model of more than :data:`MAX_PARAMETERS`
    parameters (counted on the meta device first) is a :class:`ConfigError`
    unless ``allow_large=True``. The built module gets ``model.card`` (its
    :class:`ModelCard`) and ``model.build_args`` (``feature_dim`` plus
    overrides, plain data; ``allow_large`` when set) so a checkpoint can
    rebuild it.
    """
    card = get_model_card(name)
    builder = _REGISTRY[name][1]
    feature_dim = check_feature_dim(name, feature_dim)
    allow_large = flag(allow_large, "allow_large")  # "no" would be truthy
    check_overrides(name, builder, overrides)
    try:  # a bad override value (width="abc", width=-3) is the user's error, not a traceback
        if not allow_large:
            n = count_parameters_before_building(builder, feature_dim, overrides)
            if n > MAX_PARAMETERS:
                raise ConfigError(
                    f"model {name!r} with feature_dim={feature_dim} and {overrides} would have "
                    f"{n:,} parameters, over the limit of {MAX_PARAMETERS:,}; check its size "
                    "options, or pass allow_large=True to build it anyway"
                )
        model = builder(feature_dim=feature_dim, **overrides)
    except ConfigError as err:
        if name in str(err):
            raise
        # a shared part's own check (a dropout probability, say) does not know the model
        raise ConfigError(f"model {name!r}: {err}") from err
    except (TypeError, ValueError, RuntimeError) as err:
        if isinstance(err, HighlightZooError):
            raise
        raise ConfigError(
            f"model {name!r} cannot be built with feature_dim={feature_dim} and overrides "
            f"{overrides}: {first_line(err)}"
        ) from err
    model.card = card
    model.build_args = {"feature_dim": feature_dim, **overrides}
    if allow_large:
        model.build_args["allow_large"] = True
    return model
