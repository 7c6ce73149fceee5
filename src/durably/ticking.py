"""What a due schedule does now: which ticks start, which are skipped, buffered or missed.

:func:`advance` is the whole policy, with no I/O: given a schedule's spec and state,
the store's "now" and whether its last run is still going, it returns the runs to
start and the new state. The worker writes both in one transaction (with the
schedule's row locked), so however many workers look at a tick, one decides it.

- Catch-up: ticks due longer ago than ``catchup_window`` (at least :data:`ON_TIME`)
  are missed (counted, never run). Of the others, ``all`` runs each, ``latest`` the
  newest, ``none`` only a tick that is on time (due at most :data:`ON_TIME`, 10 s, ago).
- Overlap, per tick while the last run goes on: ``skip`` it, ``buffer_one`` /
  ``buffer_all`` it (the buffer starts when the run ends), ``allow_all`` start it
  anyway, ``cancel_other`` cancel the running one and start this one after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from durably.schedules import ScheduleSpec

#: A tick handled within this long of its fire time is on time (catchup="none"); later,
#: it was missed while no worker ran.
ON_TIME = 10.0
#: The most ticks ``buffer_all`` keeps waiting.
MAX_BUFFER = 100
#: The most runs one schedule starts in one pass (a long catch-up goes on next pass).
MAX_STARTS = 100
#: Missed ticks are counted one by one up to this many per pass, then skipped at once.
MAX_COUNTED = 10_000
#: While ticks wait in the buffer, the schedule is looked at again this often.
BUFFER_POLL = 1.0


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What changes as a schedule runs (all instants are store time, Unix seconds)."""

    paused: bool = False
    note: str | None = None
    next_at: float | None = None  # the pending tick's nominal instant (None: no more)
    due_at: float | None = None  # when a worker must look at it next
    last_run: str | None = None  # the run of the newest tick started (for overlap)
    buffer: tuple[float, ...] = ()  # nominal instants of buffered ticks, oldest first
    started: int = 0
    skipped: int = 0
    buffered: int = 0
    missed: int = 0
    origin: str = "api"  # "code": declared with @durably.schedule (apply() prunes those)

    def counts(self) -> dict[str, int]:
        return {
            "started": self.started,
            "skipped": self.skipped,
            "buffered": self.buffered,
            "missed": self.missed,
        }


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A schedule as stored: its spec, its state, when it was made and last changed."""

    spec: ScheduleSpec
    state: ScheduleState
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Tick:
    """A run a schedule started: the tick's nominal instant, how it was started
    (``tick``, ``trigger``, ``backfill``) and when (store time)."""

    run_id: str
    schedule_id: str
    nominal: float
    kind: str
    fired_at: float


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """What ``durably.schedule_info()`` tells a run a schedule started.

    Attributes:
        schedule_id: the schedule.
        nominal: the tick's instant (UTC, before jitter; a trigger's: when it was asked).
        fired_at: when the run was started (UTC).
        kind: ``"tick"``, ``"trigger"`` (run now) or ``"backfill"``.
    """

    schedule_id: str
    nominal: datetime
    fired_at: datetime
    kind: str

    @classmethod
    def of(cls, tick: Tick) -> ScheduleInfo:
        return cls(
            tick.schedule_id,
            datetime.fromtimestamp(tick.nominal, UTC),
            datetime.fromtimestamp(tick.fired_at, UTC),
            tick.kind,
        )


@dataclass(slots=True)
class Plan:
    """What :func:`advance` decided: runs to start (nominal instants), whether to cancel
    the running one, and the state to save."""

    state: ScheduleState
    starts: list[float] = field(default_factory=list)
    cancel_last: bool = False


def first_state(spec: ScheduleSpec, now: float, origin: str = "api") -> ScheduleState:
    """The state of a new schedule (or one whose timing changed) at ``now``: the first
    tick after now, nothing counted."""
    nominal = spec.next_after(now)
    due_at = None if nominal is None else spec.fire_at(nominal)
    return ScheduleState(origin=origin, next_at=nominal, due_at=due_at)


def retimed(
    old: ScheduleSpec, spec: ScheduleSpec, state: ScheduleState, now: float
) -> ScheduleState:
    """The state once ``spec`` replaces ``old`` at ``now``: the same pending tick if the
    timing is the same; else the first tick of ``spec`` still to fire (one whose jittered
    fire time is not past, and not one the old timing had handled already)."""
    if spec.timing() == old.timing():
        return state
    nominal = _still_to_fire(spec, now, state.next_at)
    due_at = None if nominal is None else spec.fire_at(nominal)
    return replace(state, next_at=nominal, due_at=due_at, buffer=())


def resumed(spec: ScheduleSpec, state: ScheduleState, now: float) -> ScheduleState:
    """The state of a paused schedule resumed at ``now``: the first tick still to fire;
    ticks buffered before the pause that are now past the catch-up window are missed."""
    oldest = now - max(spec.catchup_window, ON_TIME)
    kept = tuple(t for t in state.buffer if spec.fire_at(t) >= oldest)
    nominal = _still_to_fire(spec, now, state.next_at)
    due_at = None if nominal is None else spec.fire_at(nominal)
    if kept:
        due_at = now if due_at is None else min(due_at, now)
    missed = state.missed + len(state.buffer) - len(kept)
    return replace(state, paused=False, next_at=nominal, due_at=due_at, buffer=kept, missed=missed)


def _still_to_fire(spec: ScheduleSpec, now: float, pending: float | None) -> float | None:
    """The first tick of ``spec`` whose fire time is ``now`` or later: with a jitter, one
    whose instant is past may not have fired yet (but none before ``pending``, the tick
    that was to fire next: those were handled)."""
    nominal = spec.next_after(now - spec.jitter) if spec.jitter else spec.next_after(now)
    while (
        nominal is not None
        and nominal <= now
        and (spec.fire_at(nominal) < now or (pending is not None and nominal < pending))
    ):
        nominal = spec.next_after(nominal)
    return nominal


def advance(spec: ScheduleSpec, state: ScheduleState, now: float, running: bool) -> Plan:
    """Decide the schedule's due ticks at store time ``now``; ``running``: its last run
    (or its continue-as-new chain) has not ended."""
    plan = Plan(state)
    buffer, counts = list(state.buffer), state.counts()
    if buffer and not running:  # the run ended: the oldest buffered tick goes now
        plan.starts.append(buffer.pop(0))
        running = True
    due, missed, nominal = _due_ticks(spec, state.next_at, now)
    counts["missed"] += missed
    for tick in due:
        if not running or spec.overlap == "allow_all":
            plan.starts.append(tick)
            running = True
        elif spec.overlap == "skip":
            counts["skipped"] += 1
        elif spec.overlap == "cancel_other":
            plan.cancel_last = True
            counts["skipped"] += len(buffer)  # a newer tick replaces a waiting one
            buffer, counts["buffered"] = [tick], counts["buffered"] + 1
        elif len(buffer) < (1 if spec.overlap == "buffer_one" else MAX_BUFFER):
            buffer.append(tick)
            counts["buffered"] += 1
        else:
            counts["skipped"] += 1
    due_at = None if nominal is None else spec.fire_at(nominal)
    if buffer:
        due_at = now + BUFFER_POLL if due_at is None else min(due_at, now + BUFFER_POLL)
    plan.state = replace(
        state,
        next_at=nominal,
        due_at=due_at,
        buffer=tuple(buffer),
        started=counts["started"] + len(plan.starts),
        skipped=counts["skipped"],
        buffered=counts["buffered"],
        missed=counts["missed"],
    )
    return plan


def _due_ticks(
    spec: ScheduleSpec, nominal: float | None, now: float
) -> tuple[list[float], int, float | None]:
    """The due ticks from ``nominal`` on that the catch-up policy runs, how many it
    misses, and the first tick not due yet."""
    missed = 0
    oldest = now - max(spec.catchup_window, ON_TIME)  # a stored 0: as late as on time
    while nominal is not None and spec.fire_at(nominal) < oldest:  # past the window
        missed += 1
        if missed >= MAX_COUNTED:  # a very long outage: jump to the window
            nominal = spec.next_after(oldest)
            break
        nominal = spec.next_after(nominal)
    due: list[float] = []
    while nominal is not None and spec.fire_at(nominal) <= now:
        due.append(nominal)
        nominal = spec.next_after(nominal)
        if spec.catchup == "all" and len(due) == MAX_STARTS:
            break  # the rest of a long catch-up goes on next pass
        if spec.catchup != "all" and len(due) > 1:
            missed += 1  # only the newest of these can run
            due.pop(0)
    if spec.catchup == "none" and due and now - spec.fire_at(due[-1]) > ON_TIME:
        missed += len(due)
        due = []
    return due, missed, nominal
