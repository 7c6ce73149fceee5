"""Human-friendly durations ("5s", "1h30m", 250ms, timedelta) turned into seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

__all__ = ["parse_duration"]

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# "ms" must come before "m" in the alternation, or "250ms" would stop at "250m".
_PART = r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)"
_PART_RE = re.compile(_PART, re.ASCII)
# Spaces are tolerated between parts ("1h 30m") but not inside one ("1 h").
_WHOLE_RE = re.compile(rf"(?:{_PART}\s*)+", re.ASCII)
#: The longest duration accepted: a hundred years (a timer is a float of seconds).
MAX_SECONDS = 100 * 365.25 * 86400
_ACCEPTED = (
    "accepted forms: a number of seconds (30, 1.5, '30'), a string of number+unit parts "
    "with units ms, s, m, h, d ('250ms', '5s', '10m', '2h', '3d', '1h30m', '2d4h'), "
    "or a datetime.timedelta; the result must be between zero and a hundred years"
)


def _invalid(value: object) -> ValueError:
    return ValueError(f"invalid duration {value!r}; {_ACCEPTED}")


def parse_duration(value: str | float | int | timedelta) -> float:
    """Convert a duration to a number of seconds.

    Args:
        value: Seconds as an int or float, a numeric string such as ``"30"``, a string
            of number+unit parts such as ``"1h30m"`` or ``"250ms"`` (units ``ms``,
            ``s``, ``m``, ``h``, ``d``), or a :class:`datetime.timedelta`.

    Returns:
        The duration in seconds; zero is allowed.

    Raises:
        ValueError: If the value is negative, over a hundred years, not finite, empty,
            has an unknown unit
            or is otherwise malformed, or is a bool (which is an int subclass, but
            ``True`` is far more likely a bug than "one second").
        TypeError: If the value is of some other type entirely.
    """
    if isinstance(value, bool):
        raise _invalid(value)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            raise _invalid(value) from None
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if not text or _WHOLE_RE.fullmatch(text) is None:
                raise _invalid(value) from None
            seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART_RE.findall(text))
    else:
        raise TypeError(f"invalid duration {value!r} of type {type(value).__name__}; {_ACCEPTED}")
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        raise _invalid(value)
    return seconds
