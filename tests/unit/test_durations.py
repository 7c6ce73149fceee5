"""Tests for durably.durations.parse_duration."""

from __future__ import annotations

from datetime import timedelta

import pytest

from durably.durations import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5s", 5.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("3d", 259200.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("2d4h", 187200.0),
        ("1h 30m", 5400.0),
        ("1m30s250ms", 90.25),
        ("  5s\n", 5.0),
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("0s", 0.0),
        (30, 30.0),
        (0, 0.0),
        (2.5, 2.5),
        (0.0, 0.0),
        (timedelta(minutes=2, seconds=3), 123.0),
        (timedelta(0), 0.0),
        (timedelta(milliseconds=5), 0.005),
    ],
)
def test_accepted(value: str | float | timedelta, seconds: float) -> None:
    result = parse_duration(value)
    assert result == pytest.approx(seconds)
    assert isinstance(result, float)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "-5",
        "-5s",
        "5x",
        "h",
        "s",
        "1h-2m",
        "5 s",
        "5S",
        "1w",
        "5.s",
        "nan",
        "inf",
        "-inf",
        "ms5",
        "1h30",
        "1.2.3s",
        -1,
        -0.5,
        float("nan"),
        float("inf"),
        float("-inf"),
        timedelta(seconds=-1),
        True,
        False,
    ],
)
def test_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration") as info:
        parse_duration(value)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(value) in message
    assert "'1h30m'" in message  # the accepted forms are shown


@pytest.mark.parametrize("value", [None, [5], {"s": 5}, b"5s"])
def test_wrong_type(value: object) -> None:
    with pytest.raises(TypeError, match="invalid duration"):
        parse_duration(value)  # type: ignore[arg-type]
