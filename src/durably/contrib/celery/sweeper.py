"""The wake-up sweeper: wakes, through the broker, the runs the database says are due.

Timers (sleeps, retry backoffs, waits that time out, delayed starts) live in the
database, never in a message's ``eta``; so do the runs of workers that died, runs made
runnable by code without a transport, and runs whose wake-up was lost with a broker.
Every consumer process runs a sweeper, but a named lease in the store
(``durably.wakeups``) lets one sweep at a time. Each sweep reads the runs due now
(:meth:`~durably.stores.base.Store.due_runs`) and publishes a wake-up for each one it
has not woken since it became due, or not for ``rewake`` seconds (a lost message).
A queue with limits gets at most as many as it has free slots per sweep: its claims
keep the limits exact, the sweep only keeps it busy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from durably import queues
from durably.contrib.celery.publisher import Publisher
from durably.errors import StoreError
from durably.records import DueRun, RunStatus
from durably.stores.base import Store

log = logging.getLogger("durably.celery")

LOCK = "durably.wakeups"
LIMIT = 1000  # due runs read per sweep


class Sweeper:
    """Publishes wake-ups for due runs while this process holds the fleet's lease."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        *,
        owner: str,
        interval: float,
        rewake: float,
        probe_every: float,
        stop: Callable[[], bool],
    ) -> None:
        self._store, self._publisher, self._owner = store, publisher, owner
        self._interval, self._rewake, self._probe_every = interval, rewake, probe_every
        self._stop = stop
        self._ttl = max(3 * interval, 5.0)
        #: run id -> (its available_at, when this sweeper woke it)
        self._woken: dict[str, tuple[float, float]] = {}
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="durably-celery-sweep", daemon=True)

    def kick(self) -> None:
        """Sweep (and probe the broker) now rather than at the next interval."""
        self._wake.set()

    def _loop(self) -> None:
        probed = float("-inf")
        while not self._stop():
            now = time.monotonic()
            if now - probed >= self._probe_every:
                self._publisher.probe()
                probed = now
            try:
                if self._store.acquire_lock(LOCK, self._owner, self._ttl):
                    self.sweep()
            except StoreError as exc:
                log.warning("the wake-up sweep failed (%s); trying again", exc)
            self._wake.wait(self._interval)
            self._wake.clear()

    def sweep(self) -> int:
        """Publish the wake-ups due now; how many were published."""
        due = self._store.due_runs(LIMIT)
        now = time.monotonic()
        wakes: list[DueRun] = []
        rooms: dict[str, int] = {}
        running: dict[str, int] | None = None  # read once a limited queue has due runs
        for run in due:
            limits = queues.declared(run.queue)
            if limits is not None and (limits.shared_limits or limits.worker_concurrency):
                if run.queue not in rooms:
                    if running is None:
                        running = self._running()
                    rooms[run.queue] = _room(running.get(run.queue, 0), limits.concurrency)
                if rooms[run.queue] > 0:
                    rooms[run.queue] -= 1
                    wakes.append(run)
                continue
            seen = self._woken.get(run.run_id)
            if seen is None or seen[0] != run.available_at or now - seen[1] >= self._rewake:
                wakes.append(run)
        sent = self._publisher.send([(r.run_id, r.workflow, r.queue) for r in wakes])
        still_due = {r.run_id for r in due}
        self._woken = {k: v for k, v in self._woken.items() if k in still_due}
        if not sent:
            return 0
        for run in wakes:
            self._woken[run.run_id] = (run.available_at, now)
        return len(wakes)

    def _running(self) -> dict[str, int]:
        """Runs executing, by queue."""
        stats = self._store.queue_stats()
        return {q: n for q, status, n, _ in stats if status == RunStatus.RUNNING.value}

    def release(self) -> None:
        try:
            self._store.release_lock(LOCK, self._owner)
        except Exception:
            log.debug("the %s lease was not released", LOCK, exc_info=True)


def _room(running: int, concurrency: int | None) -> int:
    """Wake-ups worth sending to a limited queue now: its free slots (1 without a
    concurrency limit: rates and partitions are for its claims to decide)."""
    return 1 if concurrency is None else max(0, concurrency - running)
