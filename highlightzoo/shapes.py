"""Declarative shapes of the plain data the package reads back (results files, checkpoints).

A file written by an earlier release, edited by hand or damaged on disk should be refused
with one line naming the first place that does not fit, not fail with a ``KeyError`` deep
inside whatever reads it. A shape says what the readers need, nothing more:

- a type, or a tuple of types (``bool`` is not an ``int`` here unless listed);
- a dict of key -> shape (a key ending in ``"?"`` may be absent; other keys are allowed);
- a one-item list ``[shape]``: a list whose every item has that shape;
- :class:`MappingOf` (an object of any keys), :class:`Items` (a list of fixed length, one
  shape per position), :class:`OrNull` and :class:`Where` (a shape plus a condition).

:func:`shape_problem` gives the first misfit as ``"runs[3].seed must be int, got 'x'"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class MappingOf:
    """A shape: an object whose every value has ``shape`` (any keys)."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape


class OrNull:
    """A shape: null, or a value of ``shape``."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape


class Items:
    """A shape: a list (or tuple) of exactly ``len(shapes)`` items, item ``i`` of ``shapes[i]``."""

    def __init__(self, *shapes: Any) -> None:
        self.shapes = shapes


class Where:
    """A shape: a value of ``shape`` for which ``test`` holds; ``what`` says what it must be."""

    def __init__(self, shape: Any, test: Callable[[Any], bool], what: str) -> None:
        self.shape, self.test, self.what = shape, test, what


NUMBER = (int, float)
MAYBE_NUMBER = (int, float, type(None))
COUNT = Where(int, lambda v: v >= 0, "an int >= 0")


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses ``NaN`` and ``Infinity`` (a ``ValueError``, as for any other
    text that is not JSON): Python's parser takes them, JSON has no such values, and a writer
    with ``allow_nan=False`` could not write them back."""
    return json.loads(text, parse_constant=_no_constant)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def shape_problem(value: Any, shape: Any, where: str = "") -> str | None:
    """The first place where ``value`` does not fit ``shape``, named from ``where``; None if it fits."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where or 'the file'} must be an object, got {_short(value)}"
        for key, inner in shape.items():
            name = key.rstrip("?")
            if name not in value:
                if key.endswith("?"):
                    continue
                return f"{where + '.' if where else ''}{name} is missing"
            problem = shape_problem(value[name], inner, f"{where + '.' if where else ''}{name}")
            if problem:
                return problem
        return None
    if isinstance(shape, OrNull):
        return None if value is None else shape_problem(value, shape.shape, where)
    if isinstance(shape, Where):
        problem = shape_problem(value, shape.shape, where)
        if problem is None and not shape.test(value):
            return f"{where} must be {shape.what}, got {_short(value)}"
        return problem
    if isinstance(shape, MappingOf):
        if not isinstance(value, dict):
            return f"{where} must be an object, got {_short(value)}"
        return _first(shape_problem(item, shape.shape, f"{where}[{key!r}]") for key, item in value.items())
    if isinstance(shape, Items):
        if not isinstance(value, list | tuple) or len(value) != len(shape.shapes):
            return f"{where} must be a list of {len(shape.shapes)} items, got {_short(value)}"
        pairs = enumerate(zip(value, shape.shapes, strict=True))
        return _first(shape_problem(item, inner, f"{where}[{i}]") for i, (item, inner) in pairs)
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} must be a list, got {_short(value)}"
        return _first(shape_problem(item, shape[0], f"{where}[{i}]") for i, item in enumerate(value))
    types = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        return f"{where} must be {names}, got {_short(value)}"
    return None


_TYPE_NAMES = {type(None): "null", dict: "an object", list: "a list"}


def _first(problems: Any) -> str | None:
    return next((p for p in problems if p), None)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
