"""What a workflow does besides calling steps: timers, signals, events, values, patches.

Each primitive takes a journal position, so replay gives the same answers and a
changed order is a :class:`~durably.NonDeterminismError`. The logic is one plan
per primitive; the sync spelling drives it blocking, the ``_async`` twin awaits it.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
import uuid as _uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

from durably.current import step_attempt
from durably.durations import parse_duration
from durably.errors import NotInWorkflow, StepTimeout
from durably.names import check_name
from durably.records import EntryStatus, RunInfo, RunStatus
from durably.retry import RESIDENT_DELAY
from durably.runtime.context import RunContext, current, owning, require
from durably.runtime.effects import Plan, drive_async, drive_sync
from durably.runtime.effects import Sleep as SleepEffect
from durably.runtime.unwinding import ContinueAsNew, Suspend
from durably.serialization import dumps, loads
from durably.ticking import ScheduleInfo

T = TypeVar("T")
Duration = str | float | int | timedelta


# -- timers -------------------------------------------------------------------------------
def _sleep_plan(ctx: RunContext, due: Callable[[float], float]) -> Plan[None]:
    seq, entry, site = ctx.allocate("sleep", "sleep")
    if entry is None:
        ctx.gate()
        wake_at = due(ctx.now())
        entry = ctx.entry(seq, "sleep", "sleep", site, dumps(wake_at, what="a timer"))
        if wake_at - ctx.now() > RESIDENT_DELAY:
            raise Suspend(RunStatus.SLEEPING, wake_at, (entry,))
        yield ctx.write_entry(entry)
    else:
        wake_at = float(loads(entry.output, what="a timer"))
    left = wake_at - ctx.now()
    if left > 0:
        ctx.gate()
        if left > RESIDENT_DELAY:  # frees the worker: no thread, no task while it sleeps
            raise Suspend(RunStatus.SLEEPING, wake_at)
        yield SleepEffect(left)  # a short wait stays resident


def _after(duration: Duration) -> Callable[[float], float]:
    seconds = parse_duration(duration)
    return lambda now: now + seconds


def _at(when: datetime) -> Callable[[float], float]:
    if not isinstance(when, datetime):
        raise TypeError(f"sleep_until() takes a datetime, not {type(when).__name__}")
    stamp = when.timestamp()  # a naive datetime is local time, as everywhere in Python
    return lambda _now: stamp


def sleep(duration: Duration) -> None:
    """Sleep durably: ``"5s"``, ``"10m"``, ``"2h"``, ``"3d"``, ``"1h30m"``, seconds, timedelta.

    A long sleep frees the worker; the run wakes through the claim path, after
    restarts too. Outside a workflow this is ``time.sleep``.
    """
    due = _after(duration)
    ctx = current()
    if ctx is None:
        time.sleep(max(0.0, due(time.time()) - time.time()))
        return
    ctx.blocking("durably.sleep()", "await durably.sleep_async()")
    drive_sync(ctx.committer, _sleep_plan(ctx, due))


async def sleep_async(duration: Duration) -> None:
    """Async twin of :func:`sleep`."""
    due = _after(duration)
    ctx = current()
    if ctx is None:
        await asyncio.sleep(max(0.0, due(time.time()) - time.time()))
        return
    await drive_async(ctx.committer, _sleep_plan(ctx, due))


def sleep_until(when: datetime) -> None:
    """Sleep durably until ``when`` (a naive datetime is local time)."""
    ctx = require("durably.sleep_until")
    ctx.blocking("durably.sleep_until()", "await durably.sleep_until_async()")
    drive_sync(ctx.committer, _sleep_plan(ctx, _at(when)))


async def sleep_until_async(when: datetime) -> None:
    """Async twin of :func:`sleep_until`."""
    ctx = require("durably.sleep_until_async")
    await drive_async(ctx.committer, _sleep_plan(ctx, _at(when)))


# -- signals ------------------------------------------------------------------------------
def _signal_plan(
    ctx: RunContext, name: str, timeout: Duration | None, raise_on_timeout: bool
) -> Plan[Any]:
    check_name("signal name", name)
    seq, entry, site = ctx.allocate("signal", name)
    if entry is not None and entry.status is EntryStatus.COMPLETED:
        return _signal_result(entry.output, name, raise_on_timeout)
    ctx.gate()
    if entry is not None:
        deadline = loads(entry.output, what="a signal deadline")
    else:
        deadline = None if timeout is None else ctx.now() + parse_duration(timeout)
    received = ctx.entry(seq, "signal", name, site, None)
    store, lease = ctx.store, ctx.lease
    payload = yield ctx.fenced(lambda tx: store.take_signal(tx, lease, received))
    if payload is not None:
        return loads(payload, what=f"signal {name!r}")
    if deadline is not None and ctx.now() >= deadline:
        yield ctx.write_entry(received)  # no output: it timed out
        return _signal_result(None, name, raise_on_timeout)
    waiting = ctx.entry(
        seq, "signal", name, site, dumps(deadline, what="a deadline"), EntryStatus.WAITING
    )
    raise Suspend(RunStatus.WAITING, deadline, (waiting,))


def _signal_result(output: str | None, name: str, raise_on_timeout: bool) -> Any:
    if output is not None:
        return loads(output, what=f"signal {name!r}")
    if raise_on_timeout:
        raise TimeoutError(f"no signal {name!r} arrived before the timeout")
    return None


def wait_for_signal(
    name: str, timeout: Duration | None = None, *, raise_on_timeout: bool = False
) -> Any:
    """The next payload sent to this run under ``name`` (each is received exactly once).

    Signals sent earlier are buffered, in order. The run's status is ``waiting``
    and it holds no worker while it waits. On timeout: ``None``, or
    ``TimeoutError`` with ``raise_on_timeout=True``.
    """
    ctx = require("durably.wait_for_signal")
    ctx.blocking("durably.wait_for_signal()", "await durably.wait_for_signal_async()")
    return drive_sync(ctx.committer, _signal_plan(ctx, name, timeout, raise_on_timeout))


async def wait_for_signal_async(
    name: str, timeout: Duration | None = None, *, raise_on_timeout: bool = False
) -> Any:
    """Async twin of :func:`wait_for_signal`."""
    ctx = require("durably.wait_for_signal_async")
    return await drive_async(ctx.committer, _signal_plan(ctx, name, timeout, raise_on_timeout))


# -- events -------------------------------------------------------------------------------
def _event_plan(ctx: RunContext, key: str, value: Any) -> Plan[None]:
    check_name("event key", key)
    seq, entry, site = ctx.allocate("event", key)
    if entry is not None:
        return
    ctx.gate()
    text = dumps(value, what=f"event {key!r} of run {ctx.run_id}", limit=ctx.max_payload)
    published = ctx.entry(seq, "event", key, site, text)
    store, lease = ctx.store, ctx.lease
    yield ctx.fenced(lambda tx: store.set_event(tx, lease, published, text))


def set_event(key: str, value: Any) -> None:
    """Publish ``value`` under ``key`` for readers outside (``engine.get_event``)."""
    ctx = require("durably.set_event")
    ctx.blocking("durably.set_event()", "await durably.set_event_async()")
    drive_sync(ctx.committer, _event_plan(ctx, key, value))


async def set_event_async(key: str, value: Any) -> None:
    """Async twin of :func:`set_event`."""
    ctx = require("durably.set_event_async")
    await drive_async(ctx.committer, _event_plan(ctx, key, value))


# -- deterministic values and patches --------------------------------------------------------
def _recorded(
    kind: str, make: Callable[[], T], encode: Callable[[T], Any], decode: Callable[[Any], T]
) -> T:
    """A value made on first execution and replayed after; written with the next write."""
    ctx = current()
    if ctx is None:
        return make()
    seq, entry, site = ctx.allocate(kind, kind)
    if entry is not None:
        return decode(loads(entry.output, what=f"recorded {kind}"))
    value = make()
    ctx.pending.append(ctx.entry(seq, kind, kind, site, dumps(encode(value), what=kind)))
    return value


def now() -> datetime:
    """The current time (UTC), recorded on first execution and replayed after: the
    store's time, on which timers are set (a test's virtual clock, too)."""
    ctx = current()
    return _recorded(
        "now",
        lambda: datetime.fromtimestamp(ctx.now(), UTC) if ctx else datetime.now(UTC),
        lambda v: v.timestamp(),
        lambda v: datetime.fromtimestamp(v, UTC),
    )


def uuid4() -> _uuid.UUID:
    """A random UUID, recorded on first execution and replayed after."""
    return _recorded("uuid4", _uuid.uuid4, str, _uuid.UUID)


def random() -> float:
    """A random float in [0, 1), recorded on first execution and replayed after."""
    return _recorded("random", _random.random, float, float)


def patched(change_id: str) -> bool:
    """True where new code runs; False for runs replaying history from before the change.

    ``if durably.patched("ship-v2"): new_path() else: old_path()`` keeps runs
    started before a deploy on their recorded path.
    """
    check_name("change id", change_id)
    ctx = current()
    if ctx is None:
        return True
    entry = ctx.recorded.get(ctx.next_seq)
    if entry is not None and entry.kind == "patch" and entry.name == change_id:
        ctx.next_seq += 1
        return True
    if ctx.replaying:
        return False  # recorded before this patch existed: keep the old path
    seq, _, site = ctx.allocate("patch", change_id)
    ctx.pending.append(ctx.entry(seq, "patch", change_id, site, None))
    return True


# -- cancellation and continuation -------------------------------------------------------
def is_cancelled() -> bool:
    """Whether this run was asked to cancel, or (in a step's body) this attempt was
    abandoned past its timeout: long steps may poll it and stop."""
    attempt = step_attempt.get()
    if attempt is not None and attempt.abandoned:
        return True
    ctx = owning()
    return ctx is not None and ctx.cancel_requested


def heartbeat(details: Any = None) -> None:
    """Inside a step's body: say the step is alive, and learn whether it should stop.

    A step declared with ``heartbeat_timeout=`` must call this at least that often.
    ``details`` (any value) is kept for the next attempt of the step in this process
    (``durably.current_run().heartbeat_details``).

    Raises:
        StepTimeout: this attempt was abandoned (its timeout passed): stop its work.
        WorkflowCancelled: the run was asked to cancel (outside ``durably.shield()``).
        NotInWorkflow: in workflow code, which needs no heartbeat.
    """
    attempt = step_attempt.get()
    if attempt is None:
        if current() is not None:
            raise NotInWorkflow("durably.heartbeat() is for the bodies of steps")
        return  # a step called as a plain function, outside any run
    ctx = owning()
    attempt.beat = ctx.clock.monotonic() if ctx is not None else time.monotonic()
    attempt.details = details
    if attempt.abandoned:
        raise StepTimeout(
            f"step {attempt.step!r}: attempt {attempt.number} was abandoned (its timeout "
            "passed) and another may be running: stop its work"
        )
    if ctx is not None and ctx.cancel_requested and not ctx.shielded:
        raise ctx.cancelled()


def schedule_info() -> ScheduleInfo | None:
    """How a schedule started this run (its id, the tick's instant, when it fired, and
    whether by a tick, a trigger or a backfill); ``None`` when no schedule started it.

    Raises:
        NotInWorkflow: outside any run.
    """
    ctx = owning()
    if ctx is None:
        raise NotInWorkflow("durably.schedule_info() can only be called inside a run")
    tick = ctx.store.tick_of_run(ctx.run_id)  # written with the run: the same on replay
    return None if tick is None else ScheduleInfo.of(tick)


def current_run() -> RunInfo:
    """The run this code executes for, in workflow code and in step bodies alike.

    Raises:
        NotInWorkflow: outside any run.
    """
    ctx = owning()
    if ctx is None:
        raise NotInWorkflow("durably.current_run() can only be called inside a run")
    attempt = step_attempt.get()
    run = ctx.run
    if attempt is None:
        return RunInfo(run.run_id, run.workflow, run.parent_id, run.attempts)
    return RunInfo(
        run.run_id,
        run.workflow,
        run.parent_id,
        run.attempts,
        attempt.step,
        attempt.seq,
        attempt.number,
        attempt.previous_details,
    )


@contextmanager
def shield() -> Iterator[None]:
    """Durable calls inside run even after the run was cancelled (for cleanup)."""
    ctx = current()
    if ctx is not None:
        ctx.shielded += 1
    try:
        yield
    finally:
        if ctx is not None:
            ctx.shielded -= 1


def continue_as_new(*args: Any, **kwargs: Any) -> NoReturn:
    """End this run and start its successor with fresh input and an empty journal.

    Raises:
        TypeError: the arguments do not fit the workflow's signature (checked now).
    """
    ctx = require("durably.continue_as_new")
    ctx.workflow.check_arguments(args, kwargs)
    raise ContinueAsNew(args, kwargs)
