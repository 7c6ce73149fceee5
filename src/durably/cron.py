"""When a cron expression fires, as UTC instants, in a time zone, correct across DST.

The fields are matched by cronsim (Debian cron's rules: 5 fields, or 6 with seconds
first; names; ranges; steps; ``L``, ``LW``, ``#``); this module adds the ``@daily``
family, ``nW`` (the weekday nearest day n) and the mapping of local times to
instants, which is where schedulers go wrong:

- a local time that happens twice (the autumn change) fires once, at its first
  occurrence — unless the expression fires every hour or more often (a ``*`` hour
  field), which follows elapsed time and fires in both;
- a local time that does not exist (the spring gap) fires at the first instant after
  the gap, once however many of its times fell in the gap.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from durably.errors import ScheduleError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
#: Zone changes are looked for this far around an instant (no zone shifts by more).
_NEAR = 3 * 3600.0
_EPOCH = datetime(1970, 1, 1)


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """The IANA zone ``name``; :class:`ScheduleError` if there is none."""
    if not isinstance(name, str):
        raise ScheduleError(f"a time zone is an IANA name such as 'Europe/Paris', not {name!r}")
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown time zone {name!r} (an IANA name such as 'Europe/Paris')"
        raise ScheduleError(message) from None


class Cron:
    """A checked cron expression; :meth:`next_after` gives its next instant."""

    __slots__ = ("_fields", "_frequent", "_nearest", "expr")

    def __init__(self, expr: str) -> None:
        if not isinstance(expr, str) or not expr.strip():
            raise ScheduleError(f"a cron expression must be a non-empty string, not {expr!r}")
        self.expr = expr.strip()
        text = ALIASES.get(self.expr.lower(), self.expr)
        parts = text.split()
        if len(parts) not in (5, 6):
            raise ScheduleError(
                f"cron expression {expr!r} has {len(parts)} fields: it takes 5 "
                "(minute hour day-of-month month day-of-week), or 6 with seconds first"
            )
        if len(parts) == 5:
            parts.insert(0, "0")
        self._nearest = 0  # "nW": matched below, as cronsim has only "LW"
        day = parts[3].upper()
        if day.endswith("W") and day[:-1].isdigit():
            self._nearest = int(day[:-1])
            if not 1 <= self._nearest <= 31 or parts[5] != "*":
                raise ScheduleError(f"bad day-of-month {parts[3]!r} in cron expression {expr!r}")
            parts[3] = "*"
        self._fields = " ".join(parts)
        self._frequent = parts[2].startswith("*")
        try:
            CronSim(self._fields, _EPOCH)
        except CronSimError as exc:
            raise ScheduleError(_describe(exc, parts, expr)) from None

    def next_after(self, t: float, tz: tzinfo) -> float:
        """The first instant strictly after ``t`` (Unix seconds) that this fires at."""
        if _offset(t - _NEAR, tz) == _offset(t, tz) == _offset(t + _NEAR, tz):
            # No zone change near t: the first local match after t is the answer.
            for wall in self._walls(_wall(t, tz)):
                first = min((i for i in _instants(wall, tz, self._frequent) if i > t), default=None)
                if first is not None:
                    return first
        best: float | None = None
        for wall in self._walls(_wall(t - _NEAR, tz)):  # near a change: look around it
            for instant in _instants(wall, tz, self._frequent):
                if instant > t and (best is None or instant < best):
                    best = instant
            if best is not None and (wall - _wall(best, tz)).total_seconds() > _NEAR:
                return best
        raise AssertionError("unreachable: a cron iterator is endless")

    def _walls(self, after: datetime) -> Iterator[datetime]:
        """Local wall times after ``after`` that match the fields, in order."""
        for wall in CronSim(self._fields, after):
            if not self._nearest or wall.day == _nearest_weekday(wall, self._nearest):
                yield wall

    def __repr__(self) -> str:
        return f"Cron({self.expr!r})"


def _describe(exc: CronSimError, parts: list[str], expr: str) -> str:
    said = str(exc).lower()  # cronsim says "Bad minute", "Bad day-of-week" ...
    for i, name in enumerate(_FIELDS):
        if name in said:
            return f"bad {name} {parts[i]!r} in cron expression {expr!r}"
    return f"bad cron expression {expr!r}: {exc}"


def _nearest_weekday(wall: datetime, day: int) -> int:
    """The weekday (Mon-Fri) nearest day ``day`` of ``wall``'s month, within the month."""
    last = calendar.monthrange(wall.year, wall.month)[1]
    day = min(day, last)
    weekday = calendar.weekday(wall.year, wall.month, day)
    if weekday == 5:  # Saturday: the Friday before, or Monday when that is last month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or Friday when that is next month
        return day + 1 if day < last else day - 2
    return day


def _wall(t: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(t, tz).replace(tzinfo=None)


def _offset(t: float, tz: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(t, tz).utcoffset()


def _instants(wall: datetime, tz: tzinfo, frequent: bool) -> tuple[float, ...]:
    """The instants a local wall time stands for: one, two in a repeated hour (the
    second only for frequent expressions), or the end of the gap it falls in."""
    first = wall.replace(tzinfo=tz, fold=0).timestamp()
    second = wall.replace(tzinfo=tz, fold=1).timestamp()
    if first == second:
        return (first,)
    if _wall(first, tz) != wall:  # it does not exist: fire when the gap ends
        return (_gap_end(min(first, second), max(first, second), tz),)
    return (first, second) if frequent else (first,)


def _gap_end(low: float, high: float, tz: tzinfo) -> float:
    """The instant in (low, high] where the zone's offset changes (to the second)."""
    before = _offset(low, tz)
    while high - low > 1:
        mid = (low + high) // 2
        if _offset(mid, tz) == before:
            low = mid
        else:
            high = mid
    return high
