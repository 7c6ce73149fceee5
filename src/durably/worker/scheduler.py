"""Firing schedules: every worker runs one scheduler thread, and there is no leader.

The scheduler sleeps until the earliest due schedule (one timer per process, however
many schedules there are; woken by changes made in this process, and in others on
PostgreSQL, and looking again every :data:`POLL` seconds), then decides the due
ones in batches. A batch is one transaction that holds the schedules' rows
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers split them; SQLite: the write
lock), starts the runs their ticks call for and saves each schedule's next state.
A tick's run id is derived from the schedule and the tick's instant, so a tick
decided twice (a worker killed between its commit and its reply) still starts one
run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from durably import crashpoints
from durably.errors import StoreError
from durably.hooks import Hooks, RunStarted, RunStarting, TicksDecided, carrier, emit
from durably.records import NewRun
from durably.schedules import ScheduleSpec, tick_run_id
from durably.stores.base import Store, Transaction
from durably.ticking import ScheduleRow, ScheduleState, advance

log = logging.getLogger("durably.schedules")

#: The longest the scheduler sleeps: schedules made or changed by other processes
#: are seen within this long (at once on PostgreSQL, which announces them).
POLL = 1.0
#: Schedules decided per transaction.
BATCH = 200


#: A tick to start: ``(spec, nominal, kind, run_id)``.
TickStart = tuple[ScheduleSpec, float, str, str]


def start_ticks(store: Store, tx: Transaction, ticks: Sequence[TickStart], hooks: Hooks) -> None:
    """Start the run of each tick (nothing for one that exists: the tick ran) and
    record the tick."""
    news = [
        NewRun(
            run_id=run_id,
            workflow=s.workflow,
            input=s.input,
            queue=s.queue,
            priority=s.priority,
            trace=_carrier(hooks, s, run_id),
        )
        for s, _, _, run_id in ticks
    ]
    store.create_runs(tx, news)
    store.add_ticks(tx, [(run_id, s.id, nominal, kind) for s, nominal, kind, run_id in ticks])


def started_hooks(hooks: Hooks, ticks: Sequence[TickStart]) -> None:
    """Tell the subscribers of the runs these ticks started (once they committed)."""
    if hooks.run_started:
        for spec, _, _, run_id in ticks:
            emit(hooks.run_started, RunStarted(run_id, spec.workflow, spec.queue, "schedule"))


def _carrier(hooks: Hooks, spec: ScheduleSpec, run_id: str) -> str | None:
    if not hooks.run_starting:
        return None
    starting = RunStarting(run_id, spec.workflow, spec.queue, "schedule", schedule_id=spec.id)
    return carrier(hooks.run_starting, starting)


def decide(
    store: Store, tx: Transaction, rows: Sequence[ScheduleRow], now: float, hooks: Hooks
) -> tuple[list[TickStart], list[TicksDecided]]:
    """Decide these due schedules (their rows held by ``tx``): the ticks started, and
    what became of each schedule's ticks.

    A few statements for the whole batch: one read of the schedules' last runs, the
    runs and ticks inserted together, the states saved together.
    """
    lasts = [row.state.last_run for row in rows if row.state.last_run is not None]
    links = store.last_links(tx, lasts)
    ticks: list[TickStart] = []
    states: list[tuple[str, ScheduleState]] = []
    decided: list[TicksDecided] = []
    for row in rows:
        spec, state = row.spec, row.state
        running = None if state.last_run is None else links.get(state.last_run)
        if running is not None and running.status.terminal:
            running = None
        plan = advance(spec, state, now, running is not None)
        if plan.cancel_last and running is not None:
            reason = f"schedule {spec.id!r} started a newer run (overlap='cancel_other')"
            store.cancel_run(tx, running.run_id, reason)
        run_ids = [tick_run_id(spec.id, nominal) for nominal in plan.starts]
        ticks += [(spec, n, "tick", r) for n, r in zip(plan.starts, run_ids, strict=True)]
        new = plan.state if not run_ids else replace(plan.state, last_run=run_ids[-1])
        states.append((spec.id, new))
        counts = (
            new.started - state.started,
            new.skipped - state.skipped,
            new.buffered - state.buffered,
            new.missed - state.missed,
        )
        if any(counts):
            decided.append(TicksDecided(spec.id, spec.workflow, *counts))
    start_ticks(store, tx, ticks, hooks)
    store.save_states(tx, states)
    return ticks, decided


class Scheduler:
    """The scheduler thread of one worker."""

    def __init__(
        self,
        store: Store,
        *,
        stop: threading.Event,
        on_started: Callable[[list[str]], None],
        hooks: Hooks,
    ) -> None:
        self._store, self._stop, self._on_started = store, stop, on_started
        self._hooks = hooks
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="durably-schedules", daemon=True)

    def wake(self) -> None:
        """Look again now (a schedule of this process was made or changed)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a wake-up while deciding is kept for the wait below
            try:
                due = self._store.next_schedule_due()  # a read: no write lock when idle
                if due is not None and due <= self._store.now():
                    self.fire_due()
                    due = self._store.next_schedule_due()
                wait = POLL if due is None else min(POLL, due - self._store.now())
            except StoreError as exc:
                log.warning("schedules could not be fired (%s); trying again", exc)
                wait = POLL
            if wait > 0:
                self._wake.wait(wait)

    def fire_due(self) -> int:
        """Decide every schedule due now, batch by batch; how many runs started."""
        total = 0
        while not self._stop.is_set():
            count, ticks, decided = self._store.transact(self._batch)
            if ticks:
                crashpoints.hit("schedule.after_commit")
                total += len(ticks)
                self._on_started([run_id for *_, run_id in ticks])
            if self._hooks.ticks_decided:
                for event in decided:
                    emit(self._hooks.ticks_decided, event)
            started_hooks(self._hooks, ticks)
            if count < BATCH:
                break
        return total

    def _batch(self, tx: Transaction) -> tuple[int, list[TickStart], list[TicksDecided]]:
        rows = self._store.due_schedules(tx, BATCH)
        if not rows:
            return 0, [], []
        ticks, decided = decide(self._store, tx, rows, self._store.now(), self._hooks)
        if ticks:
            crashpoints.hit("schedule.before_commit")
        return len(rows), ticks, decided
