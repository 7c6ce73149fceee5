"""JSON encoding of arguments and results, with Python types restored from annotations.

Payloads are compact ASCII JSON, so their length is their size in bytes. Values json
cannot encode go through one ``default`` hook; everything else stays on json's C fast
path. Decoding rebuilds the annotated types with converters built once per type hint
and cached. There is no pickle here: a stored payload is data, never code.
"""

from __future__ import annotations

import base64
import collections.abc as cabc
import dataclasses
import functools
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from durably.errors import SerializationError

DEFAULT_MAX_PAYLOAD = 2 * 1024 * 1024

_Conv = Callable[[Any], Any]
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


def _is_pydantic(cls: type) -> bool:
    # A model class can only exist once pydantic was imported, so looking in sys.modules
    # keeps pydantic optional without ever paying for its import.
    base = getattr(sys.modules.get("pydantic"), "BaseModel", None)
    return base is not None and issubclass(cls, base)


def _sorted_list(items: Any) -> list[Any]:
    try:
        return sorted(items)  # the same set must always encode to the same text
    except TypeError:  # unorderable members
        return list(items)


@functools.lru_cache(maxsize=1024)
def _encoder_for(cls: Any) -> _Conv | None:
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
        # Shallow on purpose: json recurses into the field values itself.
        return lambda o: {n: getattr(o, n) for n in names}
    if _is_pydantic(cls):
        return lambda o: o.model_dump(mode="json")
    if issubclass(cls, Enum):
        return lambda o: o.value
    if issubclass(cls, datetime | date | time):
        return lambda o: o.isoformat()
    if issubclass(cls, bytes | bytearray):
        return lambda o: base64.b64encode(o).decode("ascii")
    if issubclass(cls, set | frozenset):
        return _sorted_list
    return str if issubclass(cls, Decimal | UUID) else None


def _default(obj: Any) -> Any:
    cls: Any = type(obj)  # typed Any: mypy doesn't see type[Any] as hashable
    encode = _encoder_for(cls)
    if encode is None:
        raise TypeError(
            f"values of type {cls.__module__}.{cls.__qualname__} are not "
            "supported; use a dataclass, a pydantic model or JSON types "
            "(dict, list, str, int, float, bool, None)"
        )
    return encode(obj)


_ENCODER = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_default
)


def dumps(value: Any, *, what: str, limit: int = DEFAULT_MAX_PAYLOAD) -> str:
    """Encode a value as compact ASCII JSON.

    Args:
        value: JSON values, dataclasses, pydantic models, datetime/date/time, Decimal,
            UUID, bytes, Enum, tuple and set values, nested in any way.
        what: What the value is, for messages, e.g. ``"result of step 'x'"``.
        limit: The largest payload allowed, in bytes.

    Returns:
        The JSON text.

    Raises:
        SerializationError: An unsupported type, a circular reference, NaN or infinity,
            too deep nesting, or more than ``limit`` bytes of output.
    """
    try:
        text = _ENCODER.encode(value)
    except RecursionError:
        raise SerializationError(f"cannot serialize {what}: it is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        note = " (NaN and infinity have no JSON form)" if "Out of range" in str(exc) else ""
        raise SerializationError(f"cannot serialize {what}: {exc}{note}") from exc
    if len(text) > limit:
        raise SerializationError(
            f"{what} is {len(text):,} bytes, over the {limit:,}-byte payload limit; "
            "store large data elsewhere and pass a reference to it"
        )
    return text


def loads(text: str | None, hint: Any = Any, *, what: str) -> Any:
    """Decode JSON text from :func:`dumps` and restore it as ``hint`` describes.

    Args:
        text: The JSON text; ``None`` decodes as ``None``.
        hint: The expected type, usually an annotation; ``Any`` keeps plain JSON values.
        what: What the value is, for messages.

    Returns:
        The restored value.

    Raises:
        SerializationError: Invalid JSON, too deep nesting, or data that does not fit.
    """
    if text is None:
        return None
    try:
        data = json.loads(text)
    except RecursionError:
        raise SerializationError(f"cannot deserialize {what}: it is nested too deeply") from None
    except ValueError as exc:
        raise SerializationError(f"cannot deserialize {what}: invalid JSON ({exc})") from exc
    return data if hint is Any else restore(data, hint, what=what)


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
    # _converter() inlined: this runs for every step result, usually with a plain hint.
    try:
        if hint in _IDENTITY:
            return data
        convert = _cached_converter(hint)
    except TypeError:  # an unhashable hint
        convert = _build(hint)
    return data if convert is None else _fit(data, hint, convert, what)


def _fit(data: Any, hint: Any, convert: _Conv, what: str) -> Any:
    try:
        return convert(data)
    except _MISFIT as exc:
        expected = hint.__qualname__ if isinstance(hint, type) else repr(hint)
        raise SerializationError(f"{what} does not fit {expected}: {exc}") from exc


def _converter(hint: Any) -> _Conv | None:
    """A converter for ``hint``, or ``None`` when the data can be used as it is."""
    try:
        return _cached_converter(hint)
    except TypeError:  # an unhashable hint, e.g. Annotated with a dict in its metadata
        return _build(hint)


def _build(hint: Any) -> _Conv | None:
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


def _build_unchecked(hint: Any) -> _Conv | None:
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
        item = _converter(args[0]) if args else None
        make: _Conv = list if origin in _LISTS else frozenset if origin is frozenset else set
        if item is None:
            return None if make is list else make
        return lambda d: make(map(item, d))
    if origin in _DICTS:
        key = _key_converter(args[0]) if args else None
        val = _converter(args[1]) if len(args) > 1 else None
        if key is None and val is None:
            return None
        return lambda d: {
            (k if key is None else key(k)): (v if val is None else val(v)) for k, v in d.items()
        }
    return _class(origin if origin is not None else hint)


def _literal(args: tuple[Any, ...]) -> _Conv:
    # A KeyError names the misfit value; the caller's message names the Literal.
    return {(a.value if isinstance(a, Enum) else a): a for a in args}.__getitem__


def _key_converter(hint: Any) -> _Conv | None:
    # JSON object keys are always strings, so numeric keys must be parsed back.
    hint = _unwrap(hint)
    if isinstance(hint, type) and not issubclass(hint, str):
        if issubclass(hint, bool):
            return lambda k: k == "true"
        if issubclass(hint, int | float):
            base = int if issubclass(hint, int) else float
            return base if hint is base else lambda k: hint(base(k))
    return _converter(hint)


def _tuple(args: tuple[Any, ...]) -> _Conv:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _converter(args[0])
        return tuple if item is None else lambda d: tuple(map(item, d))
    convs = [_converter(a) for a in args]
    if not convs:
        return tuple

    def fixed(d: Any) -> tuple[Any, ...]:
        if len(d) != len(convs):
            raise ValueError(f"expected {len(convs)} items, got {len(d)}")
        return tuple(v if c is None else c(v) for c, v in zip(convs, d, strict=True))

    return fixed


def _union(args: tuple[Any, ...]) -> _Conv | None:
    members = [(_shape(a), _converter(a)) for a in args if a is not _NoneType]
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


def _class(cls: Any) -> _Conv | None:
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
    if _is_pydantic(cls):
        return cls.model_validate  # type: ignore[attr-defined, no-any-return]
    return cls if issubclass(cls, tuple | set | frozenset) else None


def _dataclass(cls: Any) -> _Conv:
    fields: list[tuple[str, _Conv | None]] | None = None

    def dataclass(d: Any) -> Any:
        nonlocal fields
        if fields is None:  # built on first use, so self-referencing classes don't recurse
            hints = _hints(cls)
            fields = [
                (f.name, _converter(hints.get(f.name, Any)))
                for f in dataclasses.fields(cls)
                if f.init
            ]
        if not isinstance(d, dict):
            raise TypeError(f"expected a JSON object, got {type(d).__name__}")
        return cls(**{n: d[n] if c is None else c(d[n]) for n, c in fields if n in d})

    return dataclass


def _hints(obj: Any) -> dict[str, Any]:
    if not (inspect.isroutine(obj) or isinstance(obj, type)) and callable(obj):
        obj = type(obj).__call__  # a callable object: the annotations are on __call__
    try:
        return typing.get_type_hints(obj)
    except Exception:  # unresolvable names: keep the annotations that are real objects
        raw = getattr(obj, "__annotations__", None)
        return {k: v for k, v in raw.items() if not isinstance(v, str)} if raw else {}


_Param = tuple[str, Any, _Conv | None]  # name, hint, converter


def _build_plan(fn: Callable[..., Any]) -> dict[int | str, _Param] | None:
    """Each parameter of ``fn`` by position and by keyword, plus ``*`` and ``**``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except Exception:  # builtins and odd callables have no signature: plain JSON it is
        return None
    hints = _hints(fn)
    plan: dict[int | str, _Param] = {}
    for i, p in enumerate(params):  # positional parameters always come first
        entry = (p.name, hints.get(p.name, Any), _converter(hints.get(p.name, Any)))
        if p.kind is p.VAR_POSITIONAL or p.kind is p.VAR_KEYWORD:
            plan["*" if p.kind is p.VAR_POSITIONAL else "**"] = entry
            continue
        if p.kind is not p.KEYWORD_ONLY:
            plan[i] = entry
        if p.kind is not p.POSITIONAL_ONLY:
            plan[p.name] = entry
    return plan if any(e[2] is not None for e in plan.values()) else None


_cached_plan = functools.lru_cache(maxsize=4096)(_build_plan)


def encode_call(
    fn: Callable[..., Any] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    what: str,
    limit: int = DEFAULT_MAX_PAYLOAD,
) -> str:
    """Encode call arguments as ``{"args": [...], "kwargs": {...}}``.

    Args:
        fn: The function called; unused, kept for symmetry with :func:`decode_call`.
        args: Positional arguments.
        kwargs: Keyword arguments.
        what: What the arguments are, for messages, e.g. ``"input of run 'r1'"``.
        limit: The largest payload allowed, in bytes.

    Returns:
        The JSON text.

    Raises:
        SerializationError: As :func:`dumps` does.
    """
    return dumps({"args": args, "kwargs": kwargs}, what=what, limit=limit)


def decode_call(
    fn: Callable[..., Any] | None, text: str, *, what: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Decode :func:`encode_call` output, restoring arguments by ``fn``'s annotations.

    Args:
        fn: The function the arguments are for; ``None`` keeps plain JSON values.
        text: The JSON text.
        what: What the arguments are, for messages.

    Returns:
        The positional and the keyword arguments.

    Raises:
        SerializationError: Not an encoded call, or an argument does not fit its
            parameter's annotation.
    """
    data = loads(text, what=what)
    args = data.get("args") if isinstance(data, dict) else None
    kwargs = data.get("kwargs") if isinstance(data, dict) else None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise SerializationError(f"cannot deserialize {what}: not an encoded call")
    plan = None if fn is None else _memo(_cached_plan, _build_plan, fn)
    if plan is None:
        return tuple(args), kwargs
    # Arguments with no matching parameter stay as they are: the call itself will fail.
    return (
        tuple(_arg(plan.get(i) or plan.get("*"), v, what) for i, v in enumerate(args)),
        {k: _arg(plan.get(k) or plan.get("**"), v, what) for k, v in kwargs.items()},
    )


def _arg(param: _Param | None, value: Any, what: str) -> Any:
    if param is None or param[2] is None:
        return value
    return _fit(value, param[1], param[2], f"argument {param[0]!r} of {what}")


def _memo(cached: Callable[[Any], Any], build: Callable[[Any], Any], key: Any) -> Any:
    try:
        return cached(key)
    except TypeError:  # an unhashable callable, e.g. a method of an unhashable object
        return build(key)


def _return_hint(fn: Callable[..., Any]) -> Any:
    return _hints(fn).get("return", Any)


_cached_return_hint = functools.lru_cache(maxsize=4096)(_return_hint)


def return_hint(fn: Callable[..., Any]) -> Any:
    """The resolved return annotation of ``fn`` (``int`` for ``async def f() -> int``).

    Args:
        fn: A function or other callable.

    Returns:
        The annotation, or ``Any`` if there is none or it cannot be resolved.
    """
    return _memo(_cached_return_hint, _return_hint, fn)
