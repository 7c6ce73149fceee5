"""The retention sweeper: deletes, in small batches, the run trees retention lets go.

Every worker of an engine given ``retention=`` runs one, but a named lease in the
store (``durably.retention``) lets one sweep at a time across the fleet; the others
only try to take it, once per ``every``. Between two batches the sweeper pauses
``PACE`` times as long as the batch took, so a purge holds the database a small
part of the time and the workload's own writes keep the rest (``durably db purge``
deletes the same way). SQLite files give each batch's space back by incremental
vacuum.
"""

from __future__ import annotations

import logging
import threading

from durably.clock import Clock
from durably.errors import StoreError
from durably.retention import Retention
from durably.stores.base import Store

log = logging.getLogger("durably.retention")

LOCK = "durably.retention"
#: The first look, soon after the worker starts (not at once: start-up is busy).
FIRST_AFTER = 1.0
#: The pause after each batch, as a multiple of the time the batch took.
PACE = 12.0


class Sweeper:
    """Deletes the runs ``retention`` lets go, while this worker holds the fleet's lease."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        retention: Retention,
        *,
        owner: str,
        lease: float,
        stop: threading.Event,
    ) -> None:
        self._store, self._clock, self._retention = store, clock, retention
        self._owner, self._stop = owner, stop
        # Held past the next look, so the holder keeps it; a dead holder's lapses soon.
        self._ttl = retention.every + 2 * lease
        self.deleted = 0  # runs deleted by this sweeper since it started
        self.thread = threading.Thread(target=self._loop, name="durably-retention", daemon=True)

    def _loop(self) -> None:
        wait = FIRST_AFTER
        while not self._stop.wait(wait):
            wait = self._retention.every
            try:
                if self._store.acquire_lock(LOCK, self._owner, self._ttl):
                    self.sweep()
            except StoreError as exc:
                log.warning("retention sweep failed (%s); trying again in %gs", exc, wait)

    def sweep(self, *, fleet: bool = True, batch: int | None = None) -> int:
        """Delete what retention lets go now, batch by batch; how many runs went.

        ``fleet``: as the fleet's sweeper, stop if its lease was taken over. ``batch``:
        run trees per transaction (default: the retention's).
        """
        cutoffs = self._retention.cutoffs(self._store.now())
        total = 0
        renew_at = self._clock.monotonic() + self._ttl / 3
        while not self._stop.is_set():
            began = self._clock.monotonic()
            count = self._store.purge(cutoffs, batch or self._retention.batch)
            if not count:
                break
            self._store.vacuum()  # this batch's pages (SQLite): no long vacuum at the end
            total += count
            self.deleted += count
            self._stop.wait(PACE * (self._clock.monotonic() - began))  # the workload's turn
            if fleet and self._clock.monotonic() >= renew_at:
                renew_at = self._clock.monotonic() + self._ttl / 3
                if not self._store.acquire_lock(LOCK, self._owner, self._ttl):
                    break  # taken over (this worker stalled past its lease): stop here
        if total:
            log.info("retention deleted %d run(s) that ended before their age", total)
        return total

    def release(self) -> None:
        """Let another worker sweep at once (this one is stopping)."""
        try:
            self._store.release_lock(LOCK, self._owner)
        except StoreError:
            log.warning("could not release the retention lease of %s", self._owner)
