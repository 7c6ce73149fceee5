"""JSON encoding of arguments and results, with Python types restored from annotations.

Payloads are compact ASCII JSON, so their length is their size in bytes. Values json
cannot encode go through one ``default`` hook; everything else stays on json's C fast
path. Decoding rebuilds the annotated types (see :mod:`durably.conversion`). There is
no pickle here: a stored payload is data, never code.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import inspect
import json
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from durably.errors import SerializationError, describe
from durably.serialization.convert import Conv, converter, fit, is_pydantic, restore, type_hints

DEFAULT_MAX_PAYLOAD = 2 * 1024 * 1024


def _sorted_list(items: Any) -> list[Any]:
    try:
        return sorted(items)  # the same set must always encode to the same text
    except TypeError:  # unorderable members
        return list(items)


@functools.lru_cache(maxsize=1024)
def _encoder_for(cls: Any) -> Conv | None:
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
        # Shallow on purpose: json recurses into the field values itself.
        return lambda o: {n: getattr(o, n) for n in names}
    if is_pydantic(cls):
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
    except Exception as exc:  # a value's own code may raise anything (a field never set)
        message = describe(exc)
        note = " (NaN and infinity have no JSON form)" if "Out of range" in message else ""
        kind = "" if isinstance(exc, TypeError | ValueError) else f"{type(exc).__qualname__}: "
        raise SerializationError(f"cannot serialize {what}: {kind}{message}{note}") from exc
    if "{" in text:  # an object: its keys, once strings, must still be unique
        _unique_keys(text, what)
    if len(text) > limit:
        raise SerializationError(
            f"{what} is {len(text):,} bytes, over the {limit:,}-byte payload limit; "
            "store large data elsewhere and pass a reference to it"
        )
    return text


class _Collision(Exception):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.keys = keys


def _no_duplicates(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise _Collision(sorted({k for k in keys if keys.count(k) > 1}))


def _unique_keys(text: str, what: str) -> None:
    """JSON object keys are strings: ``{1: "a", "1": "b"}`` would lose an entry."""
    try:
        json.loads(text, object_pairs_hook=_no_duplicates)
    except _Collision as collision:
        keys = ", ".join(repr(k) for k in collision.keys)
        raise SerializationError(
            f"cannot serialize {what}: keys that differ in Python become the same JSON "
            f"string ({keys}); a dict cannot mix keys such as 1 and '1': use keys of one type"
        ) from None


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


_Param = tuple[str, Any, Conv | None]  # name, hint, converter


def _build_plan(fn: Callable[..., Any]) -> dict[int | str, _Param] | None:
    """Each parameter of ``fn`` by position and by keyword, plus ``*`` and ``**``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except Exception:  # builtins and odd callables have no signature: plain JSON it is
        return None
    hints = type_hints(fn)
    plan: dict[int | str, _Param] = {}
    for i, p in enumerate(params):  # positional parameters always come first
        entry = (p.name, hints.get(p.name, Any), converter(hints.get(p.name, Any)))
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
    return fit(value, param[1], param[2], f"argument {param[0]!r} of {what}")


def _memo(cached: Callable[[Any], Any], build: Callable[[Any], Any], key: Any) -> Any:
    try:
        return cached(key)
    except TypeError:  # an unhashable callable, e.g. a method of an unhashable object
        return build(key)


def _return_hint(fn: Callable[..., Any]) -> Any:
    return type_hints(fn).get("return", Any)


_cached_return_hint = functools.lru_cache(maxsize=4096)(_return_hint)


def return_hint(fn: Callable[..., Any]) -> Any:
    """The resolved return annotation of ``fn`` (``int`` for ``async def f() -> int``).

    Args:
        fn: A function or other callable.

    Returns:
        The annotation, or ``Any`` if there is none or it cannot be resolved.
    """
    return _memo(_cached_return_hint, _return_hint, fn)
