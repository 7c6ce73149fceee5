"""A worker's upkeep: its leases kept alive, and the chores that may wait on the database.

Two threads, so that nothing delays a renewal. The heartbeat only renews the
leases of the runs executing here, through the store's fail-fast renewal. The
other thread does what may wait out a database outage: it measures the
database's clock, publishes long steps as their runs' current step, learns of
cancellations and releases runs whose writes the database failed.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from durably.errors import StoreError
from durably.records import Lease

if TYPE_CHECKING:
    from durably.executor import Executor

log = logging.getLogger("durably.upkeep")

#: A step running this long is published as the run's ``current_step``.
PROGRESS_AFTER = 0.2
#: How often both threads look at what is due.
TICK = 0.2


class Upkeep:
    """The heartbeat and the chores of one executor."""

    def __init__(self, executor: Executor, stop: threading.Event) -> None:
        self.executor = executor
        self._stop = stop
        self._stranded: list[Lease] = []  # runs the database cut short, to release
        self._lock = threading.Lock()
        self._published: dict[str, str | None] = {}
        self.threads = [
            threading.Thread(target=self._heartbeat, name="durably-heartbeat", daemon=True),
            threading.Thread(target=self._chores, name="durably-upkeep", daemon=True),
        ]

    def measure_clock(self) -> None:
        """Measure the offset of the database's clock to this host's."""
        before = time.time()
        database = self.executor.store.clock()
        self.executor.clock_offset = database - (before + time.time()) / 2

    def strand(self, lease: Lease) -> None:
        """Release this run as soon as the database lets us."""
        with self._lock:
            self._stranded.append(lease)

    # -- the heartbeat ------------------------------------------------------------
    def _heartbeat(self) -> None:
        executor = self.executor
        interval = executor.lease / 3
        next_renewal = time.monotonic() + interval
        while not self._stop.wait(TICK):
            if time.monotonic() < next_renewal:
                continue
            try:
                # Only runs executing here: a run this worker owns but does not run (a
                # claim whose commit reported an error) must expire for a peer.
                executor.store.renew_leases(executor.owner, executor.lease, list(executor.inflight))
                next_renewal = time.monotonic() + interval
            except StoreError as exc:
                log.warning("renewing leases failed (%s); retrying", exc)

    # -- the chores ----------------------------------------------------------------
    def _chores(self) -> None:
        interval = self.executor.lease / 3
        next_clock = time.monotonic() + interval
        while not self._stop.wait(TICK):
            if time.monotonic() >= next_clock:
                try:
                    self.measure_clock()
                    next_clock = time.monotonic() + interval
                except StoreError as exc:
                    log.warning("reading the database's clock failed (%s); retrying", exc)
            self._publish_progress()
            self._learn_cancellations()
            self._release_stranded()

    def _publish_progress(self) -> None:
        """Publish the step each run is in once it has run a while: no write per step."""
        executor, published = self.executor, self._published
        now = time.monotonic()
        for run_id, ctx in list(executor.inflight.items()):
            step = ctx.current_step
            if step is not None and now - ctx.step_since < PROGRESS_AFTER:
                step = None  # most steps are over before anyone could look
            if published.get(run_id) == step:
                continue
            published[run_id] = step
            executor.committer.submit(functools.partial(self._progress, ctx.lease, step))
        for run_id in [r for r in published if r not in executor.inflight]:
            del published[run_id]

    def _progress(self, lease: Lease, step: str | None, tx: Any) -> None:
        # LeaseLost here only means the run ended or moved on; nobody waits for it.
        self.executor.store.set_progress(tx, lease, step)

    def _learn_cancellations(self) -> None:
        executor = self.executor
        if not executor.inflight:
            return
        try:
            for run_id in executor.store.cancel_requests(executor.owner):
                executor.cancel_local(run_id)
        except StoreError:
            log.exception("reading cancellation requests failed; retrying")

    def _release_stranded(self) -> None:
        with self._lock:
            stranded, self._stranded = self._stranded, []
        for index, lease in enumerate(stranded):
            try:
                self.executor.store.release_run(lease)
            except StoreError:
                with self._lock:  # still failing: try again at the next tick
                    self._stranded.extend(stranded[index:])
                return
            self.executor.poke()
