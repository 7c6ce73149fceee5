"""The background executor: claims runs, runs them, keeps their leases alive.

Every way a run becomes runnable (start, timer, retry backoff, crash recovery)
goes through one claim path: ``available_at <= now`` and no live lease. Runs
started in this process are handed over directly once their row is durable.
"""

from __future__ import annotations

import asyncio
import fnmatch
import heapq
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from durably import crashpoints, queues, registry
from durably.committer import Committer
from durably.compensation import interrupted_unwinding, needs_unwinding, unwind
from durably.context import RunContext, activate, deactivate
from durably.errors import StoreClosed, StoreError
from durably.inbox import Inbox
from durably.outcome import Conclusion, conclude
from durably.plans import Plan, drive_async, drive_on_loop, drive_sync
from durably.records import Claim
from durably.serialization import decode_call
from durably.stores.base import Store
from durably.upkeep import Upkeep

log = logging.getLogger("durably.executor")
T = TypeVar("T")

HOST = socket.gethostname()
CLOSED_WHILE_STARTING = "the engine shut down while the run was being started"


def new_owner() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str) -> bool:
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


class Executor:
    """Runs claimed runs: sync workflows on threads, async ones on an event loop."""

    def __init__(
        self,
        store: Store,
        committer: Committer,
        *,
        workers: int,
        lease: float,
        poll_interval: float,
        on_finished: Callable[[str, str | None], None],
        queues: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
    ) -> None:
        self.store = store
        self.committer = committer
        self.owner = new_owner()
        self.lease = lease
        self.poll_interval = poll_interval
        self.capacity = max(64, workers * 8)
        self._on_finished = on_finished
        self.clock_offset = 0.0  # database clock minus ours; measured at each renewal
        # Runs beyond the pool's threads wait in its queue: they write nothing yet.
        committer.concurrency = lambda: min(len(self.inflight), workers)
        self.queues = None if queues is None else list(queues)
        self.patterns = None if workflows is None else list(workflows)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="durably-worker")
        self._loop = asyncio.new_event_loop()
        committer.loop = self._loop
        self.inflight: dict[str, RunContext] = {}
        self.inbox = Inbox(self._loop)
        #: Starts handed to the loop from other threads, not yet answered.
        self._loop_calls: dict[int, Callable[[bool, Any], None]] = {}
        self._call_ids = itertools.count()
        self._timers: list[float] = []
        self._cond = threading.Condition()
        self._poked = False
        self._stopping = False
        self._stop = threading.Event()  # wakes the upkeep threads at once on shutdown
        self.upkeep = Upkeep(self, self._stop)
        self._threads = [
            *self.upkeep.threads,
            threading.Thread(target=self._loop.run_forever, name="durably-loop", daemon=True),
            threading.Thread(target=self._claim_loop, name="durably-claimer", daemon=True),
        ]

    # -- life cycle --------------------------------------------------------------
    def start(self) -> None:
        self.upkeep.measure_clock()  # before any run computes a timer with it
        for thread in self._threads:
            thread.start()

    def stop(self, grace: float) -> None:
        """Stop claiming, let running executions end within ``grace``, release the rest."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + grace
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.01)  # the heartbeat keeps the leases of draining runs alive
        self._stop.set()
        try:
            self.store.release_owner(self.owner)  # peers take over what is left, at once
        except StoreError:
            log.exception("could not release leases of %s", self.owner)
        for key in list(self._loop_calls):  # the loop is about to stop: tell their callers
            if (done := self._loop_calls.pop(key, None)) is not None:
                done(False, StoreClosed(CLOSED_WHILE_STARTING))
        # Stop one turn later, so that callbacks already handed to the loop run first.
        self._loop.call_soon_threadsafe(self._loop.call_soon, self._loop.stop)
        for thread in self._threads:
            thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def draining(self) -> bool:
        """True once shutdown began: runs stop at their next durable call."""
        return self._stopping

    def poke(self) -> None:
        """Something became runnable: claim now rather than at the next poll."""
        with self._cond:
            self._poked = True
            self._cond.notify()

    def wake_at(self, when: float) -> None:
        with self._cond:
            heapq.heappush(self._timers, when)
            self._cond.notify()

    def has_room(self, queue: str = "default", workflow: str | None = None) -> bool:
        """Whether a run of ``queue`` may be handed to this executor directly."""
        if self._stopping or len(self.inflight) >= self.capacity:
            return False
        if self.queues is not None and queue not in self.queues:
            return False
        if workflow is not None and workflow not in self.workflow_names():
            return False
        limits = queues.declared(queue)  # limited queues go through the claim, exactly
        return limits is None or not (limits.shared_limits or limits.worker_concurrency)

    def workflow_names(self) -> list[str]:
        """The registered workflows this executor runs (all, or those matching its patterns)."""
        names = registry.names()
        if self.patterns is None:
            return list(names)
        return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in self.patterns)]

    def starts_on_loop(self, workflow: str) -> bool:
        """Whether a start of ``workflow`` from this thread is best made on the loop:
        an async workflow, a loop that commits its own writes, a caller elsewhere."""
        return (
            self.committer.inline
            and registry.lookup(workflow).is_async
            and asyncio._get_running_loop() is not self._loop
        )

    def start_on_loop(self, plan: Plan[T], done: Callable[[bool, Any], None]) -> None:
        """Perform ``plan`` (writes only) on the executor's loop, in its next batch.

        ``done`` gets the outcome once, on the loop; or ``StoreClosed`` on the
        stopping thread if the loop stops first, so its caller never waits forever.
        """
        key = next(self._call_ids)
        self._loop_calls[key] = done

        def finish(ok: bool, value: Any) -> None:
            if self._loop_calls.pop(key, None) is not None:  # not told at shutdown already
                done(ok, value)

        self.inbox.post(drive_on_loop, self.committer, plan, finish)

    def is_running(self, run_id: str) -> bool:
        return run_id in self.inflight

    def current_step(self, run_id: str) -> str | None:
        ctx = self.inflight.get(run_id)
        return None if ctx is None else ctx.current_step

    # -- claiming ----------------------------------------------------------------
    def _claim_loop(self) -> None:
        self._release_dead_owners()
        last_check = time.monotonic()
        while not self._stopping:
            try:
                claimed = self._claim_once()
                if time.monotonic() - last_check > self.poll_interval:
                    self._release_dead_owners()
                    last_check = time.monotonic()
                timeout = 0.0 if claimed else self._idle_timeout()
            except StoreError:
                log.exception("claiming runs failed; retrying")
                timeout = self.poll_interval
            with self._cond:
                if not self._poked and not self._stopping and timeout > 0:
                    self._cond.wait(timeout)
                self._poked = False

    def _claim_once(self) -> bool:
        room = min(self.capacity - len(self.inflight), 100)
        names = self.workflow_names()
        if room <= 0 or not names:
            return False
        claims = self.committer.run(lambda tx: self._claim(tx, names, room))
        for claim in claims:
            crashpoints.hit("claim.after")
            self.dispatch(claim)
        return bool(claims)

    def _claim(self, tx: Any, names: list[str], room: int) -> list[Claim]:
        """Claim from each limited queue within its limits, then from the others."""
        limited = [q for q in queues.all_declared() if q.shared_limits or q.worker_concurrency]
        claims: list[Claim] = []
        for queue in limited:
            if self.queues is not None and queue.name not in self.queues:
                continue
            mine = sum(1 for ctx in list(self.inflight.values()) if ctx.run.queue == queue.name)
            room_here = room - len(claims)
            if queue.worker_concurrency is not None:
                room_here = min(room_here, queue.worker_concurrency - mine)
            limits = queue if queue.shared_limits else None
            claims += self.store.claim_runs(
                tx, self.owner, room_here, self.lease, names, [queue.name], (), limits
            )
        return claims + self.store.claim_runs(
            tx,
            self.owner,
            room - len(claims),
            self.lease,
            names,
            self.queues,
            [q.name for q in limited],
        )

    def db_now(self) -> float:
        return time.time() + self.clock_offset

    def _idle_timeout(self) -> float:
        now = self.db_now()
        with self._cond:
            while self._timers and self._timers[0] <= now:
                heapq.heappop(self._timers)
                return 0.0
            local = self._timers[0] - now if self._timers else self.poll_interval
        due = self.store.next_wakeup(self.workflow_names())
        # A run already due was not ours to claim just now (another queue, a queue at
        # its limit, no room): only runs that fall due later shorten the wait.
        remote = self.poll_interval if due is None or due <= now else due - now
        return min(local, remote, self.poll_interval)

    def _release_dead_owners(self) -> None:
        for owner in self.store.lease_owners():
            if _owner_is_dead(owner):
                count = self.store.release_owner(owner)
                log.info("recovered %d run(s) of dead worker %s", count, owner)

    # -- running -----------------------------------------------------------------
    def dispatch(self, claim: Claim) -> None:
        """Execute a run this executor has claimed."""
        workflow = registry.lookup(claim.run.workflow)
        ctx = RunContext(
            store=self.store,
            committer=self.committer,
            workflow=workflow,
            claim=claim,
            host=self,
        )
        self.inflight[claim.run.run_id] = ctx
        if workflow.is_async:
            if asyncio._get_running_loop() is self._loop:
                self._loop.create_task(self._run_async(ctx))
            else:
                self.inbox.post(self._spawn, ctx)
        else:
            self._pool.submit(self._run_sync, ctx)

    def _spawn(self, ctx: RunContext) -> None:
        self._loop.create_task(self._run_async(ctx))

    def _run_sync(self, ctx: RunContext) -> None:
        token = activate(ctx)
        try:
            try:
                result, error = _call(ctx), None
            except BaseException as exc:
                result, error = None, exc
            if needs_unwinding(ctx, error):
                try:
                    drive_sync(self.committer, unwind(ctx))
                except BaseException as exc:
                    error = interrupted_unwinding(error, exc)
        finally:
            deactivate(token)
        self._end(ctx, conclude(ctx, result, error))

    async def _run_async(self, ctx: RunContext) -> None:
        token = activate(ctx)
        try:
            try:
                result, error = await _call(ctx), None
            except BaseException as exc:
                result, error = None, exc
            if needs_unwinding(ctx, error):
                try:
                    await drive_async(self.committer, unwind(ctx))
                except BaseException as exc:
                    error = interrupted_unwinding(error, exc)
        finally:
            deactivate(token)
        self._end(ctx, conclude(ctx, result, error))

    def _end(self, ctx: RunContext, ending: Conclusion | None) -> None:
        """Write the execution's final record; the run counts as here until it committed.

        Nothing waits for that commit: the execution's thread (or the loop) moves on,
        and whoever commits the write finishes the run's bookkeeping.
        """
        if ending is None:
            self._finished(ctx, None, None)
            return

        def committed(ok: bool, value: Any) -> None:
            self._finished(ctx, ending, value)  # an error is the value when not ok

        try:
            if not ctx.is_async:
                self.committer.write_then(ending.op, committed)
            elif self.committer.inline:  # on the loop, which commits its own turn's writes
                self.committer.in_turn(ending.op, committed)
            else:
                self.committer.queue(ending.op, committed)
        except StoreClosed as exc:
            committed(False, exc)

    def _finished(self, ctx: RunContext, ending: Conclusion | None, done: Any) -> None:
        was_full = len(self.inflight) >= self.capacity
        self.inflight.pop(ctx.run_id, None)
        if isinstance(done, Exception) or ctx.broken:
            log.warning("run %s: the database failed a write (%s); releasing it", ctx.run_id, done)
            self.upkeep.strand(ctx.lease)
        elif ending is not None:
            crashpoints.hit("run.after_finish")
            if ending.then is not None:
                ending.then(done)
            if ending.wake_at is not None:
                self.wake_at(ending.wake_at)
            self._on_finished(ctx.run_id, ending.output)
        # Claim again only if this may have made work claimable here: room opened up,
        # or a parent waiting for this run was woken. Otherwise a claim finds nothing.
        if was_full or ctx.run.parent_id is not None:
            self.poke()

    def cancel_local(self, run_id: str) -> None:
        """Tell a run executing here that it was asked to cancel."""
        ctx = self.inflight.get(run_id)
        if ctx is not None:
            ctx.cancel_requested = True


def _call(ctx: RunContext) -> Any:
    """Decode the run's input and call the workflow function (a coroutine if async)."""
    if ctx.cancel_requested and not ctx.recorded:
        ctx.gate()  # cancelled before it ever ran: no need to start it
    fn = ctx.workflow.fn
    args, kwargs = decode_call(fn, ctx.run.input, what=f"input of run {ctx.run_id}")
    return fn(*args, **kwargs)
