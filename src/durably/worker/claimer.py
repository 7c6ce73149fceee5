"""The claim loop: runnable runs taken for an executor as soon as they are due.

Every way a run becomes runnable (start, timer, signal, child finished, retry
backoff, crash recovery) goes through this one path: ``available_at <= now``
and no live lease. The loop sleeps until the earliest of: a poke (work made
runnable in this process, or announced by the store), the next timer set here,
the next wake-up the store knows of, and the poll interval. It also releases
the runs of dead owners on this host at once, without waiting for their leases.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence

from durably import crashpoints, queues
from durably.clock import StoreTime
from durably.committer import Committer
from durably.errors import StoreError
from durably.records import Claim
from durably.stores.base import Store, Transaction

log = logging.getLogger("durably.worker")

#: This host's name in owner ids (a test may set it, to act as another machine).
HOST = socket.gethostname()


def new_owner(name: str | None = None) -> str:
    """A lease owner id: ``host:pid:name`` (a random name unless given), unique while
    the process lives, and telling peers on this host whether its process still does."""
    return f"{HOST}:{os.getpid()}:{name or os.urandom(4).hex()}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` was a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Claimer:
    """Claims runs for one executor and hands each to ``dispatch``."""

    def __init__(
        self,
        store: Store,
        committer: Committer,
        time: StoreTime,
        *,
        owner: str,
        lease: float,
        poll_interval: float,
        queues: Sequence[str] | None,
        room: Callable[[], int],
        running_in: Callable[[str], int],
        workflows: Callable[[], list[str]],
        dispatch: Callable[[Claim], None],
    ) -> None:
        self._store, self._committer, self._time = store, committer, time
        self._owner, self._lease, self._poll = owner, lease, poll_interval
        self._queues = None if queues is None else list(queues)
        self._room, self._running_in, self._workflows = room, running_in, workflows
        self._dispatch = dispatch
        self._timers: list[float] = []
        self._cond = threading.Condition()
        self._poked = False
        self._stopping = False
        self.thread = threading.Thread(target=self._loop, name="durably-claimer", daemon=True)

    def poke(self) -> None:
        """Something became runnable: claim now rather than at the next poll."""
        with self._cond:
            self._poked = True
            self._cond.notify()

    def wake_at(self, when: float) -> None:
        """A run here falls due at ``when`` (store time): claim then."""
        with self._cond:
            heapq.heappush(self._timers, when)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _loop(self) -> None:
        clock = self._time.clock
        last_check: float | None = None  # dead owners' runs released first, then each poll
        while not self._stopping:
            try:
                if last_check is None or clock.monotonic() - last_check > self._poll:
                    self._release_dead_owners()
                    last_check = clock.monotonic()
                claimed = self._claim_once()
                timeout = 0.0 if claimed else self._idle_timeout()
            except StoreError:
                log.exception("claiming runs failed; retrying")
                timeout = self._poll
            with self._cond:
                if not self._poked and not self._stopping and timeout > 0:
                    self._cond.wait(timeout)
                self._poked = False

    def claim_in(self, queue: str) -> Claim | None:
        """Claim the first runnable run of ``queue`` (what a transport's wake-up asks),
        within the queue's limits; None if there is none or it may not run here now."""
        names = self._workflows()
        if not names or (self._queues is not None and queue not in self._queues):
            return None
        claims = self._committer.run(lambda tx: self._claim(tx, names, 1, [queue]))
        if not claims:
            return None
        crashpoints.hit("claim.after")
        return claims[0]

    def _claim_once(self) -> bool:
        room = min(self._room(), 100)
        names = self._workflows()
        if room <= 0 or not names:
            return False
        claims = self._committer.run(lambda tx: self._claim(tx, names, room))
        for claim in claims:
            crashpoints.hit("claim.after")
            self._dispatch(claim)
        # Claim again at once only if the room was filled: fewer means nothing else was
        # claimable then (what becomes so pokes, or falls due on a timer, or is polled).
        return len(claims) >= room

    def _claim(
        self, tx: Transaction, names: list[str], room: int, only: list[str] | None = None
    ) -> list[Claim]:
        """Claim from each limited queue within its limits, then from the others (of
        ``only`` if given, else of the queues this worker serves)."""
        wanted = self._queues if only is None else only
        limited = [q for q in queues.all_declared() if q.shared_limits or q.worker_concurrency]
        claims: list[Claim] = []
        for queue in limited:
            if wanted is not None and queue.name not in wanted:
                continue
            room_here = room - len(claims)
            if queue.worker_concurrency is not None:
                room_here = min(room_here, queue.worker_concurrency - self._running_in(queue.name))
            limits = queue if queue.shared_limits else None
            claims += self._store.claim_runs(
                tx, self._owner, room_here, self._lease, names, [queue.name], (), limits
            )
        return claims + self._store.claim_runs(
            tx,
            self._owner,
            room - len(claims),
            self._lease,
            names,
            wanted,
            [q.name for q in limited],
        )

    def _idle_timeout(self) -> float:
        if self._room() <= 0:
            return self._poll  # poked when room opens up
        now = self._time.now()
        with self._cond:
            while self._timers and self._timers[0] <= now:
                heapq.heappop(self._timers)
                return 0.0
            local = self._timers[0] - now if self._timers else self._poll
        due = self._store.next_wakeup(self._workflows())
        # A run already due was not ours to claim just now (another queue, a queue at
        # its limit, no room): only runs that fall due later shorten the wait.
        remote = self._poll if due is None or due <= now else due - now
        return min(local, remote, self._poll)

    def _release_dead_owners(self) -> None:
        for owner in self._store.lease_owners():
            if owner_is_dead(owner):
                count = self._store.release_owner(owner, dead=True)
                log.info("recovered %d run(s) of dead worker %s", count, owner)
