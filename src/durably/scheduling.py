"""``engine.schedules``: make, read, change and fire schedules (each call has an
``_async`` twin). The policy of ticks is in :mod:`durably.ticking`, their firing in
:mod:`durably.worker.scheduler`; this is what users call."""

from __future__ import annotations

import asyncio
import builtins
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from durably import registry
from durably.cron import zone
from durably.errors import ScheduleError, ScheduleNotFound, WorkflowNotFound
from durably.records import RunStatus, new_run_id, timestamp
from durably.registry import Workflow
from durably.schedules import (
    Declared,
    ScheduleSpec,
    instant,
    make_spec,
    tick_run_id,
    with_changes,
)
from durably.serialization import encode_call
from durably.stores.base import Store, Transaction
from durably.ticking import ScheduleRow, ScheduleState, Tick, first_state, resumed, retimed
from durably.worker.scheduler import TickStart, start_ticks, started_hooks

if TYPE_CHECKING:
    from durably.handle import RunHandle

P = ParamSpec("P")
T = TypeVar("T")
#: Backfills larger than this are refused (split the range).
MAX_BACKFILL = 10_000
OnRemoved = Literal["pause", "delete", "keep"]
#: The note of a schedule ``apply`` paused because its code no longer declares it.
UNDECLARED = "no longer declared"


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule as stored. ``next_tick`` is the pending tick's instant; ``next_fire``
    when it fires (with jitter); ``counts``: ticks started, skipped, buffered, missed."""

    id: str
    workflow: str
    spec: ScheduleSpec
    paused: bool
    note: str | None
    next_tick: datetime | None
    next_fire: datetime | None
    last_run_id: str | None
    counts: dict[str, int]
    origin: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ScheduleRow) -> Schedule:
        state = row.state
        return cls(
            id=row.spec.id,
            workflow=row.spec.workflow,
            spec=row.spec,
            paused=state.paused,
            note=state.note,
            next_tick=timestamp(state.next_at),
            next_fire=timestamp(None if state.next_at is None else row.spec.fire_at(state.next_at)),
            last_run_id=state.last_run,
            counts=state.counts(),
            origin=state.origin,
            created_at=datetime.fromtimestamp(row.created_at, UTC),
            updated_at=datetime.fromtimestamp(row.updated_at, UTC),
        )


@dataclass(frozen=True, slots=True)
class ScheduleDescription:
    """``describe()``: the schedule, its next fire times in its own zone, and its newest
    runs as (tick, the run's status; None once the run was purged)."""

    schedule: Schedule
    upcoming: list[datetime]
    recent: list[tuple[Tick, RunStatus | None]]


@dataclass(frozen=True, slots=True)
class Backfilled:
    """What a backfill did: runs created for ticks that never ran, ticks that had."""

    created: int
    existed: int


def _twin(method: Callable[P, T]) -> Callable[P, Any]:
    @functools.wraps(method)
    async def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(method, *args, **kwargs)

    twin.__doc__ = f"Async twin of :meth:`{method.__name__}`."
    return twin


class Schedules:
    """The schedules of an engine's store (``engine.schedules``)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    @property
    def _store(self) -> Store:
        return self._engine.store  # type: ignore[no-any-return]

    def create(
        self,
        schedule_id: str,
        workflow: Workflow[Any, Any] | str,
        *,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        paused: bool = False,
        note: str | None = None,
        **options: Any,
    ) -> Schedule:
        """Create a schedule that starts ``workflow`` with ``args``/``kwargs``.

        Options: ``cron=`` (5 or 6 fields, ``@daily`` ...) or ``every=`` (a duration,
        with ``offset=``); ``tz=`` (IANA name, default UTC); ``overlap=`` (``skip``,
        ``buffer_one``, ``buffer_all``, ``allow_all``, ``cancel_other``); ``catchup=``
        (``none``, ``latest``, ``all``) within ``catchup_window=`` (default ``"1d"``);
        ``jitter=``; ``start_at=`` / ``end_at=`` (aware datetimes); ``queue=``;
        ``priority=``.

        Raises:
            ScheduleError: a bad option, an unknown workflow, or the id exists.
        """
        spec = self._spec(schedule_id, workflow, tuple(args), kwargs or {}, options)
        if not isinstance(paused, bool) or not isinstance(note, str | None):
            raise ScheduleError(f"schedule {schedule_id!r}: paused is a bool, note a str or None")
        state = replace(first_state(spec, self._store.now()), paused=paused, note=note)

        def create(tx: Transaction) -> None:
            if not self._store.insert_schedule(tx, spec, state):
                raise ScheduleError(f"schedule {schedule_id!r} exists: update() changes it")
            self._store.announce_schedules(tx)

        self._store.transact(create)
        self._changed()
        return self.get(schedule_id)

    def get(self, schedule_id: str) -> Schedule:
        """The schedule; :class:`ScheduleNotFound` if there is none."""
        rows = self._store.schedules([schedule_id])
        if not rows:
            raise ScheduleNotFound(f"no schedule with id {schedule_id!r}")
        return Schedule.of(rows[0])

    def list(self) -> list[Schedule]:
        """Every schedule, by id."""
        return [Schedule.of(row) for row in self._store.schedules()]

    def update(
        self,
        schedule_id: str,
        *,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Schedule:
        """Change options (those of :meth:`create`; ``None`` leaves one as it is). A change
        that leaves the timing as it was keeps the pending tick; a change of the
        expression, interval, zone, jitter or bounds computes the next tick from now."""

        def update(tx: Transaction, row: ScheduleRow) -> ScheduleRow:
            text = None
            if args is not None or kwargs is not None:
                old = row.spec
                text = self._input(old.workflow, tuple(args or ()), kwargs or {}, old.id)
            spec = with_changes(row.spec, text, **options)
            return ScheduleRow(spec, retimed(row.spec, spec, row.state, self._store.now()), 0, 0)

        return self._change(schedule_id, update)

    def pause(self, schedule_id: str, note: str | None = None) -> Schedule:
        """Stop firing ticks (``resume`` goes on from then; ticks meanwhile never run)."""
        return self._change(
            schedule_id, lambda tx, row: _with(row, replace(row.state, paused=True, note=note))
        )

    def resume(self, schedule_id: str) -> Schedule:
        """Fire ticks again, from the first one still to fire now."""
        return self._change(
            schedule_id, lambda tx, row: _with(row, resumed(row.spec, row.state, self._store.now()))
        )

    def delete(self, schedule_id: str) -> None:
        """Delete the schedule (its runs stay). :class:`ScheduleNotFound` if none."""
        if not self._store.transact(lambda tx: self._store.delete_schedule(tx, schedule_id)):
            raise ScheduleNotFound(f"no schedule with id {schedule_id!r}")

    def trigger(self, schedule_id: str) -> RunHandle[Any]:
        """Start a run now, apart from the ticks (its own id; ``schedule_info().kind``
        is ``"trigger"``); later ticks see it for their overlap policy."""
        run_id = f"{schedule_id}@trigger-{new_run_id()}"

        started: builtins.list[TickStart] = []

        def trigger(tx: Transaction, row: ScheduleRow) -> ScheduleRow:
            started[:] = [(row.spec, self._store.now(), "trigger", run_id)]
            start_ticks(self._store, tx, started, self._engine.hooks)
            return _with(row, replace(row.state, last_run=run_id))

        self._change(schedule_id, trigger)
        started_hooks(self._engine.hooks, started)
        self._engine._woken()
        return self._engine.handle(run_id)  # type: ignore[no-any-return]

    def backfill(
        self, schedule_id: str, start: datetime | float, end: datetime | float
    ) -> Backfilled:
        """Start the runs of the ticks from ``start`` to ``end`` (inclusive, up to now)
        that never ran, with the ids their ticks have; ticks that ran are counted, not
        run again."""
        low, high = instant(start, "start"), instant(end, "end")
        assert low is not None and high is not None
        if high < low:
            raise ScheduleError("backfill: end is before start")
        now = self._store.now()
        if low > now:
            raise ScheduleError("backfill: start is in the future; those ticks run when due")
        high = min(high, now)  # a tick not due yet is the schedule's own to run
        spec = self.get(schedule_id).spec
        ticks, nominal = [], spec.next_after(low - 1e-6)
        while nominal is not None and nominal <= high:
            ticks.append(nominal)
            if len(ticks) > MAX_BACKFILL:
                raise ScheduleError(f"backfill: more than {MAX_BACKFILL} ticks; split the range")
            nominal = spec.next_after(nominal)
        created = 0
        for i in range(0, len(ticks), 500):
            chunk = ticks[i : i + 500]
            new = self._store.transact(functools.partial(self._backfill, spec=spec, ticks=chunk))
            started_hooks(self._engine.hooks, new)
            created += len(new)
        self._engine._woken()
        return Backfilled(created=created, existed=len(ticks) - created)

    def describe(
        self, schedule_id: str, upcoming: int = 5, recent: int = 10
    ) -> ScheduleDescription:
        """The schedule, its next ``upcoming`` fire times in its zone, its newest runs."""
        schedule = self.get(schedule_id)
        spec, nominal = schedule.spec, schedule.spec.next_after(self._store.now())
        times: builtins.list[datetime] = []
        while nominal is not None and len(times) < upcoming:
            times.append(datetime.fromtimestamp(spec.fire_at(nominal), zone(spec.tz)))
            nominal = spec.next_after(nominal)
        ticks = self._store.ticks(schedule_id, recent)
        rows = {t.run_id: self._store.get_run(t.run_id) for t in ticks}
        runs = [(t, None if rows[t.run_id] is None else rows[t.run_id].status) for t in ticks]  # type: ignore[union-attr]
        return ScheduleDescription(schedule, times, runs)

    def apply(
        self, declared: Iterable[ScheduleSpec], on_removed: OnRemoved = "keep"
    ) -> dict[str, str]:
        """Make the store's declared schedules these: new ones created, changed ones
        updated (the pending tick kept unless the timing changed), the same ones left
        alone. Declared schedules no longer in ``declared`` are paused, deleted or kept
        (``on_removed``); one paused so and declared again is resumed. Returns what
        happened to each id."""
        if on_removed not in ("pause", "delete", "keep"):
            raise ScheduleError(f"on_removed must be pause, delete or keep; not {on_removed!r}")
        specs = {s.id: s for s in declared}
        now = self._store.now()

        def apply(tx: Transaction) -> dict[str, str]:
            done: dict[str, str] = {}
            for spec in specs.values():
                row = self._store.lock_schedule(tx, spec.id)
                if row is None:
                    self._store.insert_schedule(tx, spec, first_state(spec, now, "code"))
                    done[spec.id] = "created"
                elif row.state.paused and row.state.note == UNDECLARED:  # declared again
                    state = replace(resumed(spec, row.state, now), note=None, origin="code")
                    self._store.update_schedule(tx, spec, state)
                    done[spec.id] = "resumed"
                elif row.spec != spec or row.state.origin != "code":
                    state = replace(retimed(row.spec, spec, row.state, now), origin="code")
                    self._store.update_schedule(tx, spec, state)
                    done[spec.id] = "updated"
                else:
                    done[spec.id] = "unchanged"
            for row in self._store.schedules() if on_removed != "keep" else ():
                if row.state.origin != "code" or row.spec.id in specs:
                    continue
                if on_removed == "delete":
                    self._store.delete_schedule(tx, row.spec.id)
                    done[row.spec.id] = "deleted"
                elif not row.state.paused:
                    paused = replace(row.state, paused=True, note=UNDECLARED)
                    self._store.update_schedule(tx, row.spec, paused)
                    done[row.spec.id] = "paused"
            self._store.announce_schedules(tx)
            return done

        done = self._store.transact(apply)
        self._changed()
        return done

    def declared(self, workflows: Iterable[Workflow[Any, Any]]) -> builtins.list[ScheduleSpec]:
        """The specs of the ``@durably.schedule`` declarations on these workflows."""
        specs = []
        for wf in workflows:
            for item in getattr(wf, "schedules", None) or ():
                assert isinstance(item, Declared)
                options = dict(item.options)
                args, kwargs = options.pop("args"), options.pop("kwargs")
                specs.append(self._spec(item.id or wf.name, wf, args, kwargs, options))
        ids = [s.id for s in specs]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ScheduleError(
                f"schedule ids declared twice: {', '.join(twice)}; give each an id="
            )
        return specs

    # -- helpers -----------------------------------------------------------------
    def _spec(
        self,
        schedule_id: str,
        workflow: Workflow[Any, Any] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> ScheduleSpec:
        name = workflow.name if isinstance(workflow, Workflow) else workflow
        text = self._input(name, args, kwargs, schedule_id)
        try:
            return make_spec(schedule_id, name, text, **options)
        except TypeError as exc:  # an unknown option
            raise ScheduleError(f"schedule {schedule_id!r}: {exc}") from None

    def _input(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], sid: str) -> str:
        """The workflow's arguments, checked against its signature where it is known."""
        if not isinstance(name, str):
            raise ScheduleError(f"schedule {sid!r}: {name!r} is not a workflow or its name")
        try:
            wf = registry.lookup(name)
        except WorkflowNotFound:
            served = {w for worker in self._store.live_workers() for w in worker.workflows}
            if name not in served:
                raise ScheduleError(
                    f"schedule {sid!r}: unknown workflow name {name!r}: it is not registered "
                    "here and no live worker serves it"
                ) from None
            wf = None
        try:
            if wf is not None:
                wf.check_arguments(args, kwargs)
            limit = self._engine.max_payload
            return encode_call(
                None, args, kwargs, what=f"arguments of schedule {sid!r}", limit=limit
            )
        except (TypeError, ValueError) as exc:
            raise ScheduleError(f"schedule {sid!r}: {exc}") from None

    def _change(
        self, schedule_id: str, change: Callable[[Transaction, ScheduleRow], ScheduleRow]
    ) -> Schedule:
        def work(tx: Transaction) -> None:
            row = self._store.lock_schedule(tx, schedule_id)
            if row is None:
                raise ScheduleNotFound(f"no schedule with id {schedule_id!r}")
            new = change(tx, row)
            self._store.update_schedule(tx, new.spec, new.state)
            self._store.announce_schedules(tx)

        self._store.transact(work)
        self._changed()
        return self.get(schedule_id)

    def _backfill(
        self, tx: Transaction, spec: ScheduleSpec, ticks: builtins.list[float]
    ) -> builtins.list[TickStart]:
        run_ids = [tick_run_id(spec.id, nominal) for nominal in ticks]
        ran = self._store.last_links(tx, run_ids)
        new = [
            (spec, nominal, "backfill", run_id)
            for nominal, run_id in zip(ticks, run_ids, strict=True)
            if run_id not in ran
        ]
        start_ticks(self._store, tx, new, self._engine.hooks)
        return new

    def _changed(self) -> None:
        executor = self._engine.executor
        if executor is not None:
            executor.scheduler.wake()

    create_async = _twin(create)
    get_async = _twin(get)
    list_async = _twin(list)
    update_async = _twin(update)
    pause_async = _twin(pause)
    resume_async = _twin(resume)
    delete_async = _twin(delete)
    trigger_async = _twin(trigger)
    backfill_async = _twin(backfill)
    describe_async = _twin(describe)
    apply_async = _twin(apply)


def _with(row: ScheduleRow, state: ScheduleState) -> ScheduleRow:
    return ScheduleRow(row.spec, state, row.created_at, row.updated_at)


__all__ = ["Backfilled", "Schedule", "ScheduleDescription", "Schedules"]
