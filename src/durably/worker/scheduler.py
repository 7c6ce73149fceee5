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
from collections.abc import Callable
from dataclasses import replace

from durably import crashpoints
from durably.errors import StoreError
from durably.records import NewRun, RunRow
from durably.schedules import ScheduleSpec, tick_run_id
from durably.stores.base import Store, Transaction
from durably.ticking import ScheduleRow, advance

log = logging.getLogger("durably.schedules")

#: The longest the scheduler sleeps: schedules made or changed by other processes
#: are seen within this long (at once on PostgreSQL, which announces them).
POLL = 1.0
#: Schedules decided per transaction.
BATCH = 200


def start_tick(
    store: Store, tx: Transaction, spec: ScheduleSpec, nominal: float, kind: str, run_id: str
) -> None:
    """Start the run of one tick (nothing if it exists: the tick ran) and record it."""
    store.create_run(
        tx,
        NewRun(
            run_id=run_id,
            workflow=spec.workflow,
            input=spec.input,
            queue=spec.queue,
            priority=spec.priority,
        ),
    )
    store.add_tick(tx, run_id, spec.id, nominal, kind)


def running_link(store: Store, tx: Transaction, run_id: str | None) -> RunRow | None:
    """The run of the chain ``run_id`` began (continue-as-new) that has not ended, if any."""
    last = None if run_id is None else store.last_link(tx, run_id)
    return last if last is not None and not last.status.terminal else None


def decide(store: Store, tx: Transaction, row: ScheduleRow, now: float) -> list[str]:
    """Decide one due schedule (its row held by ``tx``); the ids of the runs started."""
    spec, state = row.spec, row.state
    running = running_link(store, tx, state.last_run)
    plan = advance(spec, state, now, running is not None)
    if plan.cancel_last and running is not None:
        reason = f"schedule {spec.id!r} started a newer run (overlap='cancel_other')"
        store.cancel_run(tx, running.run_id, reason)
    started = []
    for nominal in plan.starts:
        run_id = tick_run_id(spec.id, nominal)
        start_tick(store, tx, spec, nominal, "tick", run_id)
        started.append(run_id)
    new = plan.state if not started else replace(plan.state, last_run=started[-1])
    store.save_state(tx, spec.id, new)
    return started


class Scheduler:
    """The scheduler thread of one worker."""

    def __init__(
        self,
        store: Store,
        *,
        stop: threading.Event,
        on_started: Callable[[list[str]], None],
    ) -> None:
        self._store, self._stop, self._on_started = store, stop, on_started
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
            decided, started = self._store.transact(self._batch)
            if started:
                crashpoints.hit("schedule.after_commit")
                total += len(started)
                self._on_started(started)
            if decided < BATCH:
                break
        return total

    def _batch(self, tx: Transaction) -> tuple[int, list[str]]:
        rows = self._store.due_schedules(tx, BATCH)
        now = self._store.now()
        started = [run for row in rows for run in decide(self._store, tx, row, now)]
        if started:
            crashpoints.hit("schedule.before_commit")
        return len(rows), started
