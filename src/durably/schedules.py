"""Schedules: what starts a workflow on a cron expression or an interval, and when.

A :class:`ScheduleSpec` is checked when it is made (a bad cron field, an unknown
zone, ``every="0s"``, ``end_at`` before ``start_at``: :class:`ScheduleError`) and
answers one question, :meth:`ScheduleSpec.next_after`: the next *nominal* tick, a
UTC instant. Each tick's run id is derived from the schedule's id and that instant
(:func:`tick_run_id`), and its fire time adds a jitter derived the same way, so
every worker of a fleet computes the same tick, the same run and the same time.

Intervals (``every=``) are anchored at the Unix epoch plus ``offset``: they do not
drift across restarts and ignore DST. Cron expressions follow :mod:`durably.cron`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, TypeVar

from durably.cron import Cron, zone
from durably.durations import parse_duration
from durably.errors import ScheduleError
from durably.names import check_name

Overlap = Literal["skip", "buffer_one", "buffer_all", "allow_all", "cancel_other"]
Catchup = Literal["none", "latest", "all"]
TickKind = Literal["tick", "trigger", "backfill"]
OVERLAPS: tuple[str, ...] = ("skip", "buffer_one", "buffer_all", "allow_all", "cancel_other")
CATCHUPS: tuple[str, ...] = ("none", "latest", "all")
Duration = str | float | int | timedelta
When = datetime | float | int
F = TypeVar("F")

#: The longest id of a new schedule: a tick's run id adds at most 41 characters to it.
MAX_ID = 159
#: The fields whose change moves the ticks (a change of the others keeps the pending tick).
TIMING = ("cron", "every", "offset", "tz", "jitter", "start_at", "end_at")


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What a schedule starts and when (see ``engine.schedules.create`` for each field).

    ``input`` is the workflow's encoded arguments; instants are Unix seconds (UTC).
    """

    id: str
    workflow: str
    cron: str | None = None
    every: float | None = None
    offset: float = 0.0
    tz: str = "UTC"
    input: str = '{"args":[],"kwargs":{}}'
    overlap: str = "skip"
    catchup: str = "latest"
    catchup_window: float = 86400.0
    jitter: float = 0.0
    start_at: float | None = None
    end_at: float | None = None
    queue: str = "default"
    priority: int = 0

    def __post_init__(self) -> None:
        check_name("schedule id", self.id)
        check_name("workflow name", self.workflow)
        check_name("queue", self.queue)
        if (self.cron is None) == (self.every is None):
            raise ScheduleError(f"schedule {self.id!r}: give one of cron= or every=")
        if self.cron is not None:
            parsed(self.cron)  # a ScheduleError now, not at the first tick
        if self.every is not None and not 0 < self.every <= 366 * 86400:
            raise ScheduleError(
                f"schedule {self.id!r}: every must be above zero, not {self.every!r}"
            )
        zone(self.tz)
        _one_of("overlap", self.overlap, OVERLAPS)
        _one_of("catchup", self.catchup, CATCHUPS)
        if self.start_at is not None and self.end_at is not None and self.end_at <= self.start_at:
            raise ScheduleError(f"schedule {self.id!r}: end_at must be after start_at")
        if isinstance(self.priority, bool) or not -(2**31) <= self.priority < 2**31:
            raise ScheduleError(f"schedule {self.id!r}: priority out of range: {self.priority!r}")

    def next_after(self, t: float) -> float | None:
        """The first nominal tick strictly after ``t`` (and from ``start_at``); None past
        ``end_at``."""
        if self.start_at is not None and t < self.start_at:
            t = math.nextafter(self.start_at, -math.inf)
        if self.cron is not None:
            try:
                nominal = _cron_next(self.cron, self.tz, t)
            except (OverflowError, ValueError, OSError):  # past the year 9999: no more ticks
                return None
        else:
            every = float(self.every or 0)
            nominal = self.offset + every * (math.floor((t - self.offset) / every) + 1)
            if nominal <= t:  # rounding at a boundary
                nominal += every
        return None if self.end_at is not None and nominal > self.end_at else nominal

    def fire_at(self, nominal: float) -> float:
        """When the tick at ``nominal`` fires: plus a jitter derived from the schedule's
        id and the instant, under the gap to the next tick (the same on every worker)."""
        if not self.jitter:
            return nominal
        after = self.next_after(nominal)
        bound = self.jitter if after is None else min(self.jitter, after - nominal)
        digest = hashlib.sha256(f"{self.id}|{nominal!r}".encode()).digest()
        return nominal + bound * int.from_bytes(digest[:8], "big") / 2**64

    def timing(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in TIMING)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleSpec:
        return cls(**{k: v for k, v in data.items() if k in _FIELDS})

    def describe(self) -> str:
        """``"cron '0 9 * * MON-FRI' in Europe/Paris"`` or ``"every 900s"``."""
        if self.cron is not None:
            return f"cron {self.cron!r} in {self.tz}"
        offset = f" (offset {self.offset:g}s)" if self.offset else ""
        return f"every {self.every:g}s{offset}"


_FIELDS = tuple(ScheduleSpec.__dataclass_fields__)


@lru_cache(maxsize=1024)
def parsed(expr: str) -> Cron:
    """The checked expression (schedules that share one share its parse)."""
    return Cron(expr)


@lru_cache(maxsize=4096)
def _cron_next(expr: str, tz: str, t: float) -> float:
    # Schedules that share an expression and a zone share their ticks: one computation.
    return parsed(expr).next_after(t, zone(tz))


def _one_of(what: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ScheduleError(f"{what} must be one of {', '.join(allowed)}; not {value!r}")


def tick_run_id(schedule_id: str, nominal: float) -> str:
    """The run id of the tick at ``nominal``: every worker derives the same one."""
    at = datetime.fromtimestamp(nominal, UTC)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    if at.microsecond:
        text += f".{at.microsecond:06d}".rstrip("0")
    return f"{schedule_id}@{text}Z"


def instant(value: When | None, what: str) -> float | None:
    """Unix seconds from a timezone-aware datetime or a number; ScheduleError otherwise."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ScheduleError(f"{what} must be timezone-aware (naive datetime {value!r})")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScheduleError(f"{what} must be a datetime or Unix seconds, not {value!r}")
    try:
        datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        raise ScheduleError(f"{what} is out of range (years 1 to 9999): {value!r}") from None
    return float(value)


def duration(value: Duration | None, what: str) -> float | None:
    """Seconds of a duration, as a ScheduleError naming ``what`` when malformed."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except (TypeError, ValueError) as exc:
        raise ScheduleError(f"{what}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Declared:
    """A schedule declared on a workflow with ``@durably.schedule``: applied at launch."""

    id: str | None
    options: dict[str, Any]


def schedule(
    *,
    cron: str | None = None,
    every: Duration | None = None,
    offset: Duration = 0,
    tz: str = "UTC",
    id: str | None = None,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    overlap: Overlap = "skip",
    catchup: Catchup = "latest",
    catchup_window: Duration = "1d",
    jitter: Duration = 0,
    start_at: When | None = None,
    end_at: When | None = None,
    queue: str = "default",
    priority: int = 0,
) -> Callable[[F], F]:
    """Start the workflow below on a cron expression or an interval::

        @durably.schedule(cron="0 9 * * MON-FRI", tz="Europe/Paris", id="reports.daily")
        @durably.workflow
        def daily_report() -> None: ...

    Stack several for several schedules (each needs its own ``id``; the default is the
    workflow's name). Declared schedules are applied when an engine launches: the same
    declaration again changes nothing and keeps the pending tick. The arguments are
    those of ``engine.schedules.create``; they are checked here.

    Raises:
        ScheduleError: a bad expression, zone, duration or policy.
    """
    options: dict[str, Any] = {
        "cron": cron,
        "every": every,
        "offset": offset,
        "tz": tz,
        "args": args,
        "kwargs": kwargs or {},
        "overlap": overlap,
        "catchup": catchup,
        "catchup_window": catchup_window,
        "jitter": jitter,
        "start_at": start_at,
        "end_at": end_at,
        "queue": queue,
        "priority": priority,
    }
    make_spec(id or "check", "check", "{}", **options)  # fail at the declaration

    def decorate(wf: F) -> F:
        declared: list[Declared] = getattr(wf, "schedules", None) or []
        declared.append(Declared(id, options))
        try:
            wf.schedules = declared  # type: ignore[attr-defined]
        except AttributeError:
            raise ScheduleError(f"@durably.schedule goes on a workflow, not {wf!r}") from None
        return wf

    return decorate


def make_spec(
    schedule_id: str, workflow: str, input: str, *, new: bool = True, **options: Any
) -> ScheduleSpec:
    """A checked spec from the user's arguments (durations, datetimes, names).

    Stricter than a stored spec: a ``new`` schedule's id leaves room for its ticks' run
    ids (at most 200 characters), a catch-up window is at least 10 s (shorter, a tick
    handled a moment late would be missed), a priority is an int."""
    options = dict(options)
    options.pop("args", None)
    options.pop("kwargs", None)
    if new and isinstance(schedule_id, str) and len(schedule_id) > MAX_ID:
        raise ScheduleError(f"a schedule id has at most {MAX_ID} characters: {schedule_id!r}")
    every = duration(options.pop("every", None), "every")
    if every is not None and every <= 0:
        raise ScheduleError(f"schedule {schedule_id!r}: every must be above zero, not 0")
    window = duration(options.pop("catchup_window", "1d"), "catchup_window") or 0.0
    if window < 10:
        raise ScheduleError(
            f"schedule {schedule_id!r}: catchup_window must be at least 10s, not {window:g}s "
            "(catchup='none' runs no tick that is late)"
        )
    priority = options.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ScheduleError(f"schedule {schedule_id!r}: priority must be an int: {priority!r}")
    try:
        spec = ScheduleSpec(
            id=schedule_id,
            workflow=workflow,
            input=input,
            every=every,
            offset=duration(options.pop("offset", 0), "offset") or 0.0,
            catchup_window=window,
            jitter=duration(options.pop("jitter", 0), "jitter") or 0.0,
            start_at=instant(options.pop("start_at", None), "start_at"),
            end_at=instant(options.pop("end_at", None), "end_at"),
            **options,
        )
    except ScheduleError:
        raise
    except ValueError as exc:  # a bad name: a schedule's error, like the others
        raise ScheduleError(f"schedule {schedule_id!r}: {exc}") from None
    if new:
        _fitting(spec)
    return spec


def _fitting(spec: ScheduleSpec) -> None:
    """Refuse an option that the other timing would ignore in silence."""
    if spec.cron is not None and spec.offset:
        raise ScheduleError(
            f"schedule {spec.id!r}: offset= shifts an interval (every=); a cron expression "
            "says its own minutes"
        )
    if spec.every is not None and spec.tz.upper() != "UTC":
        raise ScheduleError(
            f"schedule {spec.id!r}: tz= is the zone a cron expression is read in; an "
            "interval (every=) ignores it"
        )


def with_changes(spec: ScheduleSpec, input: str | None, **options: Any) -> ScheduleSpec:
    """``spec`` with the given options changed (``None``: unchanged), checked again."""
    base = {k: v for k, v in spec.to_json().items() if k not in ("id", "workflow", "input")}
    given = {k: v for k, v in options.items() if v is not None}
    if "cron" in given:  # what only the other timing used goes with it
        base.update(every=None, offset=0.0)
    if "every" in given:
        base.update(cron=None, tz="UTC")
    text = spec.input if input is None else input
    try:
        changed = make_spec(spec.id, spec.workflow, text, new=False, **{**base, **given})
    except TypeError as exc:  # an unknown option
        raise ScheduleError(f"schedule {spec.id!r}: {exc}") from None
    if {"cron", "every", "offset", "tz"} & set(given):
        _fitting(changed)
    return changed
