"""A worker's heartbeat, and the chores that may wait on the database.

Two threads, so that nothing delays a renewal. The heartbeat only renews the
leases of the runs executing here, through the store's fail-fast renewal. The
chores do what may wait out a database outage: measure the store's clock,
publish long steps as their runs' current step, learn of cancellations and
release runs whose writes the database failed.

Both get what they need passed in (the store, the runs executing here, the
callbacks to tell the executor); neither knows the executor.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from durably.clock import StoreTime
from durably.committer import Committer
from durably.errors import StoreError
from durably.records import Lease
from durably.runtime.context import RunContext
from durably.stores.base import Store, Transaction

log = logging.getLogger("durably.worker")

#: A step running this long is published as the run's ``current_step``.
PROGRESS_AFTER = 0.2
#: How often both threads look at what is due.
TICK = 0.2
#: How often the chores look for runs no live worker executes (and re-announce).
UNSERVED_EVERY = 30.0


class Heartbeat:
    """Renews, every third of a lease, the leases of the runs executing here."""

    def __init__(
        self,
        store: Store,
        time: StoreTime,
        *,
        owner: str,
        lease: float,
        running: Callable[[], Sequence[str]],
        stop: threading.Event,
    ) -> None:
        self._store, self._time = store, time
        self._owner, self._lease, self._running, self._stop = owner, lease, running, stop
        self.thread = threading.Thread(target=self._beat, name="durably-heartbeat", daemon=True)

    def _beat(self) -> None:
        clock = self._time.clock
        interval = self._lease / 3
        next_renewal = clock.monotonic() + interval
        while not self._stop.wait(TICK):
            if clock.monotonic() < next_renewal:
                continue
            try:
                # Only runs executing here: a run this worker owns but does not run (a
                # claim whose commit reported an error) must expire for a peer.
                self._store.renew_leases(self._owner, self._lease, self._running())
                next_renewal = clock.monotonic() + interval
            except StoreError as exc:
                log.warning("renewing leases failed (%s); retrying", exc)


class Chores:
    """The chores of one worker, on a thread of their own."""

    def __init__(
        self,
        store: Store,
        committer: Committer,
        time: StoreTime,
        *,
        owner: str,
        lease: float,
        inflight: Mapping[str, RunContext],
        cancel: Callable[[str, str], None],
        released: Callable[[], None],
        announce: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        self._store, self._committer, self._time = store, committer, time
        self._owner, self._lease, self._inflight = owner, lease, inflight
        self._cancel, self._released, self._stop = cancel, released, stop
        self._announce = announce
        self._warned: set[tuple[str, str]] = set()  # kinds of runs said to be unserved
        self._stranded: list[Lease] = []  # runs the database cut short, to release
        self._lock = threading.Lock()
        self._published: dict[str, str | None] = {}
        self.thread = threading.Thread(target=self._loop, name="durably-upkeep", daemon=True)

    def strand(self, lease: Lease) -> None:
        """Release this run as soon as the database lets us."""
        with self._lock:
            self._stranded.append(lease)

    def _loop(self) -> None:
        clock = self._time.clock
        interval = self._lease / 3
        next_clock = clock.monotonic() + interval
        next_look = clock.monotonic() + UNSERVED_EVERY / 10  # soon after the start
        while not self._stop.wait(TICK):
            if clock.monotonic() >= next_look:
                next_look = clock.monotonic() + UNSERVED_EVERY
                self._look_for_unserved()
            if clock.monotonic() >= next_clock:
                try:
                    self._time.measure()
                    next_clock = clock.monotonic() + interval
                except StoreError as exc:
                    log.warning("reading the store's clock failed (%s); retrying", exc)
            self._publish_progress()
            self._learn_cancellations()
            self._release_stranded()

    def _look_for_unserved(self) -> None:
        """Say once (per kind) that runs wait which no live worker executes: they would
        otherwise wait in silence (a worker not deployed, a queue nobody serves)."""
        try:
            self._announce()
            kinds = self._store.waiting_kinds()
            workers = self._store.live_workers() if kinds else []
        except StoreError as exc:
            log.warning("looking for runs no worker executes failed (%s)", exc)
            return
        for workflow, queue in kinds:
            if (workflow, queue) in self._warned:
                continue
            if not any(w.executes(workflow, queue) for w in workers):
                self._warned.add((workflow, queue))
                log.warning(
                    "runs of workflow %r in queue %r are waiting, and no live worker executes "
                    "them: register the workflow in a worker (import its module) that serves "
                    "the queue",
                    workflow,
                    queue,
                )

    def _publish_progress(self) -> None:
        """Publish the step each run is in once it has run a while: no write per step."""
        published = self._published
        now = self._time.clock.monotonic()
        for run_id, ctx in list(self._inflight.items()):
            step = ctx.current_step
            if step is not None and now - ctx.step_since < PROGRESS_AFTER:
                step = None  # most steps are over before anyone could look
            if published.get(run_id) == step:
                continue
            published[run_id] = step
            self._committer.submit(functools.partial(self._progress, ctx.lease, step))
        for run_id in [r for r in published if r not in self._inflight]:
            del published[run_id]

    def _progress(self, lease: Lease, step: str | None, tx: Transaction) -> None:
        # LeaseLost here only means the run ended or moved on; nobody waits for it.
        self._store.set_progress(tx, lease, step)

    def _learn_cancellations(self) -> None:
        if not self._inflight:
            return
        try:
            for run_id, reason in self._store.cancel_requests(self._owner).items():
                self._cancel(run_id, reason)
        except StoreError:
            log.exception("reading cancellation requests failed; retrying")

    def _release_stranded(self) -> None:
        with self._lock:
            stranded, self._stranded = self._stranded, []
        for index, lease in enumerate(stranded):
            try:
                self._store.release_run(lease)
            except StoreError:
                with self._lock:  # still failing: try again at the next tick
                    self._stranded.extend(stranded[index:])
                return
            self._released()
