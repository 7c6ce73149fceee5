"""Python values rebuilt from plain JSON data, as type annotations describe them.

A converter is built once per type hint and cached; ``None`` stands for "the data can
be used as it is", which keeps the common cases (``int``, ``str``, ``dict``) free.
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import dataclasses
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from durably.errors import SerializationError, describe

Conv = Callable[[Any], Any]
_NoneType = type(None)
# What converters raise on data that does not fit: Decimal raises an ArithmeticError,
# UUID() of a non-string an AttributeError, very deep data a RecursionError.
_MISFIT = (TypeError, ValueError, KeyError, AttributeError, ArithmeticError, RecursionError)
_IDENTITY = frozenset({Any, object, int, str, float, bool, None, _NoneType, dict, list})
_LISTS = frozenset({list, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection})
_SETS = frozenset({set, frozenset, cabc.Set, cabc.MutableSet})
_DICTS = frozenset({dict, cabc.Mapping, cabc.MutableMapping})
# The JSON types each class is encoded as, so that a union can tell its members apart.
_SHAPES: dict[Any, tuple[type, ...]] = {
    **dict.fromkeys((datetime, date, time, UUID, bytes, bytearray, str), (str,)),
    **dict.fromkeys(_LISTS | _SETS | {tuple}, (list,)),
    **dict.fromkeys(_DICTS, (dict,)),
    **{int: (int,), float: (int, float), bool: (bool,), _NoneType: (_NoneType,)},
    Decimal: (str, int, float),
}


def is_pydantic(cls: type) -> bool:
    """Whether ``cls`` is a pydantic model class."""
    # A model class can only exist once pydantic was imported, so looking in sys.modules
    # keeps pydantic optional without ever paying for its import.
    base = getattr(sys.modules.get("pydantic"), "BaseModel", None)
    return base is not None and issubclass(cls, base)


def restore(data: Any, hint: Any, *, what: str = "value") -> Any:
    """Turn plain JSON data into the type ``hint`` describes.

    Args:
        data: Values as ``json.loads`` returns them.
        hint: A type or annotation; unknown classes, TypedDicts and unresolvable hints
            (strings included) leave the data as it is.
        what: What the value is, for messages.

    Returns:
        The restored value; ``data`` itself when nothing needs converting.

    Raises:
        SerializationError: The data does not fit ``hint``.
    """
    # converter() inlined: this runs for every step result, usually with a plain hint.
    try:
        if hint in _IDENTITY:
            return data
        convert = _cached_converter(hint)
    except TypeError:  # an unhashable hint
        convert = _build(hint)
    return data if convert is None else fit(data, hint, convert, what)


def fit(data: Any, hint: Any, convert: Conv, what: str) -> Any:
    """``convert(data)``, with a misfit reported as a :class:`SerializationError`."""
    try:
        return convert(data)
    except Exception as exc:  # a class's own __init__ may raise anything
        expected = hint.__qualname__ if isinstance(hint, type) else repr(hint)
        kind = "" if isinstance(exc, _MISFIT) else f"{type(exc).__qualname__}: "
        raise SerializationError(f"{what} does not fit {expected}: {kind}{describe(exc)}") from exc


def converter(hint: Any) -> Conv | None:
    """A converter for ``hint``, or ``None`` when the data can be used as it is."""
    try:
        return _cached_converter(hint)
    except TypeError:  # an unhashable hint, e.g. Annotated with a dict in its metadata
        return _build(hint)


def _build(hint: Any) -> Conv | None:
    try:
        return _build_unchecked(_unwrap(hint))
    except Exception:  # a weird annotation must never break a call: treat it as Any
        return None


_cached_converter = functools.lru_cache(maxsize=4096)(_build)


def _unwrap(hint: Any) -> Any:
    while True:
        if typing.get_origin(hint) is typing.Annotated:
            hint = hint.__origin__
        elif isinstance(hint, typing.NewType):
            hint = hint.__supertype__
        elif type(hint).__name__ == "TypeAliasType":  # `type X = ...` (3.12+)
            hint = hint.__value__
        else:
            return hint


def _build_unchecked(hint: Any) -> Conv | None:
    if isinstance(hint, str | typing.ForwardRef | typing.TypeVar) or hint in _IDENTITY:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _union(args)
    if origin is typing.Literal:
        return _literal(args)
    if origin is tuple:
        return _tuple(args)
    if origin in _LISTS or origin in _SETS:
        item = converter(args[0]) if args else None
        make: Conv = list if origin in _LISTS else frozenset if origin is frozenset else set
        if item is None:
            return None if make is list else make
        return lambda d: make(map(item, d))
    if origin in _DICTS:
        key = _key_converter(args[0]) if args else None
        val = converter(args[1]) if len(args) > 1 else None
        if key is None and val is None:
            return None
        return lambda d: {
            (k if key is None else key(k)): (v if val is None else val(v)) for k, v in d.items()
        }
    return _class(origin if origin is not None else hint)


def _literal(args: tuple[Any, ...]) -> Conv:
    # A KeyError names the misfit value; the caller's message names the Literal.
    return {(a.value if isinstance(a, Enum) else a): a for a in args}.__getitem__


def _key_converter(hint: Any) -> Conv | None:
    # JSON object keys are always strings, so numeric keys must be parsed back.
    hint = _unwrap(hint)
    if isinstance(hint, type) and not issubclass(hint, str):
        if issubclass(hint, bool):
            return lambda k: k == "true"
        if issubclass(hint, int | float):
            base = int if issubclass(hint, int) else float
            return base if hint is base else lambda k: hint(base(k))
    return converter(hint)


def _tuple(args: tuple[Any, ...]) -> Conv:
    if len(args) == 2 and args[1] is Ellipsis:
        item = converter(args[0])
        return tuple if item is None else lambda d: tuple(map(item, d))
    convs = [converter(a) for a in args]
    if not convs:
        return tuple

    def fixed(d: Any) -> tuple[Any, ...]:
        if len(d) != len(convs):
            raise ValueError(f"expected {len(convs)} items, got {len(d)}")
        return tuple(v if c is None else c(v) for c, v in zip(convs, d, strict=True))

    return fixed


def _union(args: tuple[Any, ...]) -> Conv | None:
    members = [(_shape(a), converter(a)) for a in args if a is not _NoneType]
    has_none = len(members) < len(args)
    if has_none and len(members) == 1:  # Optional[X], by far the commonest union
        inner = members[0][1]
        return None if inner is None else lambda d: None if d is None else inner(d)
    if all(c is None for _, c in members):
        return None

    def union(d: Any) -> Any:
        if d is None and has_none:
            return None
        for shape, convert in members:  # the first member that fits wins
            if shape is not None and not isinstance(d, shape):
                continue
            if convert is None:
                return d
            try:
                return convert(d)
            except Exception:  # a misfit: try the next member
                continue
        raise ValueError(f"{d!r:.80} fits none of the union's members")

    return union


def _shape(hint: Any) -> tuple[type, ...] | None:
    """The JSON types a value of ``hint`` is encoded as, or None for "any"."""
    cls = typing.get_origin(hint := _unwrap(hint)) or hint
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return (dict,)
    return _SHAPES.get(cls)


def _class(cls: Any) -> Conv | None:
    if not isinstance(cls, type) or cls in _IDENTITY:
        return None
    if issubclass(cls, Enum | UUID):
        return cls
    if issubclass(cls, datetime | date | time):
        return cls.fromisoformat
    if issubclass(cls, Decimal):
        # Via str: Decimal(0.1) would keep the float's binary expansion.
        return lambda d: cls(d if isinstance(d, str) else str(d))
    if issubclass(cls, bytes | bytearray):
        return lambda d: cls(base64.b64decode(d, validate=True))
    if dataclasses.is_dataclass(cls):
        return _dataclass(cls)
    if is_pydantic(cls):
        return cls.model_validate  # type: ignore[attr-defined, no-any-return]
    return cls if issubclass(cls, tuple | set | frozenset) else None


def _dataclass(cls: Any) -> Conv:
    fields: list[tuple[str, Conv | None]] | None = None

    def dataclass(d: Any) -> Any:
        nonlocal fields
        if fields is None:  # built on first use, so self-referencing classes don't recurse
            hints = type_hints(cls)
            fields = [
                (f.name, converter(hints.get(f.name, Any)))
                for f in dataclasses.fields(cls)
                if f.init
            ]
        if not isinstance(d, dict):
            raise TypeError(f"expected a JSON object, got {type(d).__name__}")
        return cls(**{n: d[n] if c is None else c(d[n]) for n, c in fields if n in d})

    return dataclass


def type_hints(obj: Any) -> dict[str, Any]:
    """The resolved annotations of a function, class or callable object, by name."""
    if not (inspect.isroutine(obj) or isinstance(obj, type)) and callable(obj):
        obj = type(obj).__call__  # a callable object: the annotations are on __call__
    try:
        return typing.get_type_hints(obj)
    except Exception:  # unresolvable names: keep the annotations that are real objects
        raw = getattr(obj, "__annotations__", None)
        return {k: v for k, v in raw.items() if not isinstance(v, str)} if raw else {}
