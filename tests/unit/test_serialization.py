"""Tests for durably.serialization: JSON payloads with types restored from annotations."""

from __future__ import annotations

import json
import re
import types
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum
from pathlib import Path
from typing import Annotated, Any, Literal, NewType, Optional, TypedDict, TypeVar

import pydantic
import pytest

from durably.errors import SerializationError
from durably.serialization import (
    DEFAULT_MAX_PAYLOAD,
    decode_call,
    dumps,
    encode_call,
    loads,
    return_hint,
)
from durably.serialization.convert import restore

UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
UserId = NewType("UserId", int)
T = TypeVar("T")


class Color(Enum):
    RED = "red"
    GREEN = "green"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


@dataclass(frozen=True)
class Inner:
    when: datetime
    amount: Decimal
    ident: uuid.UUID
    blob: bytes
    color: Color


@dataclass
class Outer:
    inner: Inner
    pair: tuple[int, str]
    tags: set[str]
    history: list[Inner]
    by_id: dict[int, Inner]
    maybe: Inner | None = None
    day: date = date(2024, 1, 1)
    at: time = time(12, 0)
    frozen: frozenset[int] = frozenset()


@dataclass
class Node:
    value: int
    children: list[Node] = field(default_factory=list)


@dataclass
class WithDefaults:
    name: str
    count: int = 0
    when: datetime | None = None


class Model(pydantic.BaseModel):
    name: str
    when: datetime
    amount: Decimal
    ids: list[uuid.UUID] = []


@dataclass
class HoldsModel:
    model: Model
    level: Level


class Movie(TypedDict):
    title: str
    year: int


class Opaque:
    """A class durably knows nothing about."""


INNER = Inner(WHEN, Decimal("19.99"), UID, b"\x00\xffbin", Color.GREEN)
OUTER = Outer(
    inner=INNER,
    pair=(1, "one"),
    tags={"b", "a"},
    history=[INNER, INNER],
    by_id={7: INNER},
    maybe=INNER,
    day=date(2023, 12, 31),
    at=time(23, 59, 1, tzinfo=timezone(timedelta(hours=2))),
    frozen=frozenset({3, 1}),
)
MODEL = Model(name="m", when=WHEN, amount=Decimal("1.5"), ids=[UID])

ROUND_TRIPS: list[tuple[Any, Any]] = [
    (1, int),
    ("text", str),
    (1.5, float),
    (True, bool),
    (None, None),
    (None, type(None)),
    ({"a": [1, 2, {"b": None}]}, dict),
    ([1, "a", None], list),
    ({"a": 1}, Any),
    ({"a": 1}, object),
    (WHEN, datetime),
    (datetime(2024, 1, 2, 3, 4), datetime),
    (date(2024, 2, 29), date),
    (time(1, 2, 3, 4), time),
    (Decimal("1.10"), Decimal),
    (Decimal("-1E+30"), Decimal),
    (UID, uuid.UUID),
    (b"\x00\x01\xfe\xff", bytes),
    (b"", bytes),
    (bytearray(b"ab"), bytearray),
    (Color.RED, Color),
    (Level.HIGH, Level),
    ((1, "a"), tuple[int, str]),
    ((1, 2, 3), tuple[int, ...]),
    ((WHEN, UID), tuple[datetime, uuid.UUID]),
    ((), tuple[()]),
    ((1, "a"), tuple),
    ({1, 2, 3}, set[int]),
    ({UID}, set[uuid.UUID]),
    ({"x"}, set),
    (frozenset({"a", "b"}), frozenset[str]),
    ({1: "a", 2: "b"}, dict[int, str]),
    ({1.5: "a"}, dict[float, str]),
    ({True: 1, False: 0}, dict[bool, int]),
    ({Level.LOW: "low"}, dict[Level, str]),
    ({"k": WHEN}, dict[str, datetime]),
    ({"k": [date(2024, 1, 1)]}, Mapping[str, Sequence[date]]),
    ([WHEN, WHEN], list[datetime]),
    ([[UID]], list[list[uuid.UUID]]),
    (None, datetime | None),
    (WHEN, datetime | None),
    (WHEN, Optional[datetime]),  # noqa: UP045 - the typing spelling must work too
    (5, int | datetime),
    (WHEN, int | datetime),
    (Decimal("1.5"), int | Decimal),
    (INNER, Inner | Color),
    (Color.RED, Inner | Color),
    ("a", Literal["a", "b"]),
    (2, Literal[1, 2]),
    (Color.RED, Literal[Color.RED]),
    (5, Annotated[int, "meta"]),
    (WHEN, Annotated[datetime, "meta"]),
    (UserId(5), UserId),
    (INNER, Inner),
    (OUTER, Outer),
    (Node(1, [Node(2), Node(3, [Node(4)])]), Node),
    (MODEL, Model),
    (HoldsModel(MODEL, Level.LOW), HoldsModel),
    ([MODEL], list[Model]),
    ({"title": "x", "year": 1999}, Movie),
]


@pytest.mark.parametrize(("value", "hint"), ROUND_TRIPS)
def test_round_trip(value: Any, hint: Any) -> None:
    text = dumps(value, what="value")
    restored = restore(json.loads(text), hint)
    assert restored == value
    assert type(restored) is type(value)
    assert loads(text, hint, what="value") == value


def test_round_trip_nested_dataclass_field_types() -> None:
    restored = restore(json.loads(dumps(OUTER, what="v")), Outer)
    assert isinstance(restored.inner.when, datetime)
    assert isinstance(restored.inner.amount, Decimal)
    assert isinstance(restored.inner.ident, uuid.UUID)
    assert isinstance(restored.inner.blob, bytes)
    assert restored.inner.color is Color.GREEN
    assert restored.pair == (1, "one")
    assert isinstance(restored.tags, set)
    assert isinstance(restored.frozen, frozenset)
    assert list(restored.by_id) == [7]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1, "b": [1, 2]}, '{"a":1,"b":[1,2]}'),
        ("é✓", '"\\u00e9\\u2713"'),
        ((1, 2), "[1,2]"),
        ({3, 1, 2}, "[1,2,3]"),
        (frozenset({"b", "a"}), '["a","b"]'),
        (Color.RED, '"red"'),
        (Level.HIGH, "2"),
        (Decimal("1.10"), '"1.10"'),
        (UID, f'"{UID}"'),
        (b"hi", '"aGk="'),
        (date(2024, 1, 2), '"2024-01-02"'),
        (WHEN, '"2024-05-06T07:08:09.123456+00:00"'),
        (Node(1), '{"value":1,"children":[]}'),
        (Model(name="m", when=WHEN, amount=Decimal(2)), None),
    ],
)
def test_dumps_forms(value: Any, expected: str | None) -> None:
    text = dumps(value, what="value")
    if expected is not None:
        assert text == expected
    assert text.isascii()


def test_unsortable_set_still_encodes() -> None:
    assert sorted(json.loads(dumps({1, "a"}, what="v")), key=str) == [1, "a"]


class Unknown:
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (Unknown(), "Unknown"),
        ({"nested": [object()]}, "object"),
        (lambda: 1, "function"),
        (Path("/tmp"), "Path"),
        (complex(1, 2), "complex"),
    ],
)
def test_unsupported_type(value: Any, type_name: str) -> None:
    with pytest.raises(SerializationError) as info:
        dumps(value, what="result of step 'x'")
    message = str(info.value)
    assert "result of step 'x'" in message
    assert type_name in message
    assert "dataclass" in message
    assert "pydantic" in message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [1, {"x": float("-inf")}]])
def test_nan_and_infinity_rejected(value: Any) -> None:
    with pytest.raises(SerializationError, match="NaN"):
        dumps(value, what="v")


def test_circular_references_rejected() -> None:
    items: list[Any] = [1]
    items.append(items)
    with pytest.raises(SerializationError, match="Circular"):
        dumps(items, what="v")
    node = Node(1)
    node.children.append(node)
    with pytest.raises(SerializationError, match="Circular"):
        dumps(node, what="v")


def test_deep_nesting_rejected() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(SerializationError, match="nested too deeply"):
        dumps(deep, what="v")
    text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(SerializationError, match="nested too deeply"):
        loads(text, what="v")


def test_size_limit_message() -> None:
    value = "x" * (3_145_800 - 2)  # plus two quotes
    expected = "result of step 'x' is 3,145,800 bytes, over the 2,097,152-byte payload limit"
    with pytest.raises(SerializationError, match=re.escape(expected)):
        dumps(value, what="result of step 'x'")
    assert DEFAULT_MAX_PAYLOAD == 2_097_152


def test_size_limit_boundary_and_custom_limit() -> None:
    assert dumps("x" * 8, what="v", limit=10) == '"' + "x" * 8 + '"'
    with pytest.raises(SerializationError, match="11 bytes, over the 10-byte"):
        dumps("x" * 9, what="v", limit=10)
    with pytest.raises(SerializationError, match="input of run"):
        encode_call(None, ("x" * 100,), {}, what="input of run 'r'", limit=50)


def test_loads_none_and_plain_json() -> None:
    assert loads(None, what="v") is None
    assert loads(None, datetime, what="v") is None
    assert loads('{"a":[1,2.5,"s",null,true]}', what="v") == {"a": [1, 2.5, "s", None, True]}


@pytest.mark.parametrize("text", ["", "{", "nope", "[1,]", "{'a': 1}", "NaN-ish"])
def test_loads_invalid_json(text: str) -> None:
    with pytest.raises(SerializationError, match=r"result of step 'x'.*invalid JSON"):
        loads(text, what="result of step 'x'")


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ('"not a date"', datetime, "datetime"),
        ("5", datetime, "datetime"),
        ('"2024-01-01T00:00:00"', date, "date"),
        ('"abc"', uuid.UUID, "UUID"),
        ("5", uuid.UUID, "UUID"),
        ('"zz"', Decimal, "Decimal"),
        ('"!!not base64"', bytes, "bytes"),
        ('"purple"', Color, "Color"),
        ("7", Level, "Level"),
        ('"c"', Literal["a", "b"], "Literal"),
        ("[1]", Literal["a", "b"], "Literal"),
        ("[1]", tuple[int, int], "tuple"),
        ('"x"', int | datetime, "int | datetime"),
        ('"abc"', Inner, "Inner"),
        ("{}", Inner, "Inner"),
        ('{"when": "bad", "amount": "1", "ident": "x", "blob": "", "color": "red"}', Inner, ""),
        ('{"name": "m"}', Model, "Model"),
        ('{"a": 1}', dict[int, str], "dict[int, str]"),
        ('["x"]', list[datetime], "list[datetime.datetime]"),
    ],
)
def test_misfit_named(text: str, hint: Any, expected: str) -> None:
    with pytest.raises(SerializationError, match="result of step 'x' does not fit") as info:
        loads(text, hint, what="result of step 'x'")
    assert expected in str(info.value)
    with pytest.raises(SerializationError, match="value does not fit"):
        restore(json.loads(text), hint)


def test_dataclass_defaults_and_extra_keys() -> None:
    assert restore({"name": "n"}, WithDefaults) == WithDefaults("n")
    restored = restore({"name": "n", "when": WHEN.isoformat(), "extra": 1}, WithDefaults)
    assert restored == WithDefaults("n", 0, WHEN)


@pytest.mark.parametrize("hint", [Any, object, int, str, float, bool, dict, list, list[int]])
def test_identity_fast_path(hint: Any) -> None:
    data = [1, 2]
    assert restore(data, hint) is data


@pytest.mark.parametrize(
    "hint",
    [
        "Undefined",
        types.GenericAlias(list, ("Undefined",)),  # list["Undefined"], built at runtime
        Annotated[int, {"unhashable": []}],
        T,
        list[T],  # type: ignore[valid-type]
        Callable[[int], int],
        42,
        Opaque,
        Movie,
        type[int],
    ],
)
def test_weird_hints_leave_data_alone(hint: Any) -> None:
    data = [{"a": 1}]
    assert restore(data, hint) == data


def test_annotated_with_unhashable_metadata_still_converts() -> None:
    assert restore(WHEN.isoformat(), Annotated[datetime, {"x": []}]) == WHEN


# -- calls ---------------------------------------------------------------------


def charge(order_id: str, when: datetime, /, cents: Decimal, *ids: uuid.UUID,
           color: Color = Color.RED, **extra: date) -> Inner:  # fmt: skip
    raise NotImplementedError


def plain(a, b=2):  # type: ignore[no-untyped-def]
    return a


def broken(a: Undefined) -> Undefined:  # type: ignore[name-defined]  # noqa: F821
    return a


async def fetch(url: str) -> int:
    return len(url)


def test_call_round_trip_restores_by_annotation() -> None:
    args = ("o-1", WHEN, Decimal("19.99"), UID, uuid.UUID(int=1))
    kwargs = {"color": Color.GREEN, "due": date(2024, 2, 1)}
    text = encode_call(charge, args, kwargs, what="input of step 'charge'")
    assert json.loads(text)["args"][0] == "o-1"
    assert decode_call(charge, text, what="input") == (args, kwargs)


def test_call_keyword_spelling_of_positional_parameter() -> None:
    text = encode_call(charge, ("o", WHEN), {"cents": Decimal(3)}, what="in")
    assert decode_call(charge, text, what="in") == (("o", WHEN), {"cents": Decimal(3)})


def test_call_without_function_or_annotations_is_plain_json() -> None:
    text = encode_call(None, (WHEN, (1, 2)), {"k": {1, 2}}, what="in")
    plain_args = ([WHEN.isoformat(), [1, 2]], {"k": [1, 2]})
    assert decode_call(None, text, what="in") == (tuple(plain_args[0]), plain_args[1])
    assert decode_call(plain, text, what="in") == (tuple(plain_args[0]), plain_args[1])
    assert decode_call(len, text, what="in") == (tuple(plain_args[0]), plain_args[1])
    assert decode_call(broken, text, what="in") == (tuple(plain_args[0]), plain_args[1])


def test_call_extra_positionals_without_star_args_stay_plain() -> None:
    text = encode_call(fetch, ("u", "extra"), {"nope": 1}, what="in")
    assert decode_call(fetch, text, what="in") == (("u", "extra"), {"nope": 1})


@pytest.mark.parametrize("text", ["[]", '{"args": {}}', '{"args": [], "kwargs": []}', "5"])
def test_decode_call_rejects_non_calls(text: str) -> None:
    with pytest.raises(SerializationError, match=r"input of run 'r'.*not an encoded call"):
        decode_call(charge, text, what="input of run 'r'")


def test_decode_call_names_misfit_argument() -> None:
    text = json.dumps({"args": ["o", "not a date"], "kwargs": {}})
    with pytest.raises(SerializationError, match="argument 'when' of input of run 'r'"):
        decode_call(charge, text, what="input of run 'r'")
    text = json.dumps({"args": ["o", WHEN.isoformat(), "1", "bad"], "kwargs": {}})
    with pytest.raises(SerializationError, match=r"argument 'ids'.*UUID"):
        decode_call(charge, text, what="input")
    text = json.dumps({"args": ["o", WHEN.isoformat(), "1"], "kwargs": {"due": "x"}})
    with pytest.raises(SerializationError, match=r"argument 'extra'.*date"):
        decode_call(charge, text, what="input")


class Service:
    __hash__ = None  # type: ignore[assignment]

    def handle(self, when: datetime) -> date:
        return when.date()

    def __call__(self, when: datetime) -> date:
        return when.date()


def test_unhashable_callables() -> None:
    service = Service()
    text = encode_call(service.handle, (WHEN,), {}, what="in")
    assert decode_call(service.handle, text, what="in") == ((WHEN,), {})
    assert return_hint(service.handle) is date
    assert decode_call(service, text, what="in") == ((WHEN,), {})
    assert return_hint(service) is date


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (charge, Inner),
        (fetch, int),
        (plain, Any),
        (broken, Any),
        (lambda x: x, Any),
        (len, Any),
        (Service.handle, date),
        (print, Any),
    ],
)
def test_return_hint(fn: Callable[..., Any], expected: Any) -> None:
    assert return_hint(fn) == expected
    assert return_hint(fn) == expected  # cached


def test_return_hint_none_annotation() -> None:
    def nothing() -> None:
        return None

    assert return_hint(nothing) is type(None)
