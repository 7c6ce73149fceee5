"""The background executor: runs claimed runs and keeps their bookkeeping.

Sync workflows run on a thread pool, async ones on one event loop. Runs come
from the claimer (:mod:`durably.worker.claimer`) or, for runs started in this
process, directly once their row is durable. The heartbeat and the chores
(:mod:`durably.worker.heartbeat`) keep their leases alive.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from durably import crashpoints, queues, registry
from durably.clock import StoreTime
from durably.committer import Committer
from durably.errors import LeaseLost, StoreClosed, StoreError
from durably.handoff import Inbox
from durably.hooks import Hooks, RunLost, RunReleased, Scoped, emit
from durably.records import Claim, WorkerInfo
from durably.registry import Step
from durably.retention import Retention
from durably.runtime.context import RunContext
from durably.runtime.effects import Plan, drive_on_loop
from durably.runtime.ending import Conclusion, recovery_limit
from durably.stores.base import Store
from durably.transport import Gate
from durably.worker import claimer, running
from durably.worker.claimer import Claimer, new_owner
from durably.worker.heartbeat import Chores, Heartbeat
from durably.worker.reporting import WorkerLog
from durably.worker.scheduler import Scheduler
from durably.worker.sweeper import Sweeper

log = logging.getLogger("durably.worker")
T = TypeVar("T")

CLOSED_WHILE_STARTING = "the engine shut down while the run was being started"


class Executor:
    """Runs claimed runs: sync workflows on threads, async ones on an event loop."""

    def __init__(
        self,
        store: Store,
        committer: Committer,
        hooks: Hooks,
        *,
        workers: int,
        lease: float,
        poll_interval: float,
        max_payload: int,
        max_recoveries: int,
        on_finished: Callable[[str, str | None], None],
        queues: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
        retention: Retention | None = None,
        worker_id: str | None = None,
        mocks: dict[str, Step[Any, Any]] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.store = store
        #: Steps whose body is replaced, by name (``engine.mock_step``): runs read it.
        self.mocks: dict[str, Step[Any, Any]] = {} if mocks is None else mocks
        self.committer = committer
        self.hooks = hooks
        self._unsubscribe_log: Callable[[], None] = lambda: None
        self.clock = committer.clock
        self.time = StoreTime(self.clock, store.now)
        self.owner = new_owner(worker_id)
        self.lease = lease
        self.max_payload = max_payload
        self.max_recoveries = max_recoveries
        self.workers = workers
        self.capacity = max(64, workers * 8) if gate is None else gate.slots
        #: Fed by a transport: runs come from its wake-ups (:meth:`execute`), or from the
        #: claim loop only while the gate says to poll.
        self.gate = gate
        self._waiters: dict[str, threading.Event] = {}
        self._on_finished = on_finished
        # Runs beyond the pool's threads wait in its queue: they write nothing yet.
        committer.concurrency = lambda: min(len(self.inflight), workers)
        self.queues = None if queues is None else list(queues)
        self.patterns = None if workflows is None else list(workflows)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="durably-worker")
        self._loop = asyncio.new_event_loop()
        self._loop.set_task_factory(running.guarded_task)
        committer.loop = self._loop
        self.inflight: dict[str, RunContext] = {}
        self.inbox = Inbox(self._loop)
        #: Starts handed to the loop from other threads, not yet answered.
        self._loop_calls: dict[int, Callable[[bool, Any], None]] = {}
        self._call_ids = itertools.count()
        self._stopping = False
        self._announced: tuple[str, ...] = ()
        self._stop = threading.Event()  # wakes the heartbeat and the chores at once
        self.claimer = Claimer(
            store,
            committer,
            self.time,
            owner=self.owner,
            lease=lease,
            poll_interval=poll_interval,
            queues=self.queues,
            room=self._room,
            running_in=self._running_in,
            workflows=self.workflow_names,
            dispatch=self.dispatch,
        )
        heartbeat = Heartbeat(
            store, self.time, owner=self.owner, lease=lease, running=self._running, stop=self._stop
        )
        self.chores = Chores(
            store,
            committer,
            self.time,
            owner=self.owner,
            lease=lease,
            inflight=self.inflight,
            cancel=self.cancel_local,
            released=self.poke,
            announce=self.reannounce,
            stop=self._stop,
        )
        self._threads = [
            heartbeat.thread,
            self.chores.thread,
            threading.Thread(target=self._loop.run_forever, name="durably-loop", daemon=True),
            self.claimer.thread,
        ]
        #: Fires due schedules (every worker: no leader; see worker/scheduler.py).
        self.scheduler = Scheduler(
            store, stop=self._stop, on_started=lambda _: self.poke(), hooks=hooks
        )
        self._threads.append(self.scheduler.thread)
        self.sweeper: Sweeper | None = None
        if retention is not None:
            self.sweeper = Sweeper(
                store, self.clock, retention, owner=self.owner, lease=lease, stop=self._stop
            )
            self._threads.append(self.sweeper.thread)

    # -- life cycle --------------------------------------------------------------
    def start(self) -> None:
        self._unsubscribe_log = self.hooks.subscribe(WorkerLog(self.hooks))
        self.time.measure()  # before any run computes a timer with it
        try:
            self.announce()
        except StoreError as exc:  # the chores announce it again soon: runs need not wait
            log.warning("announcing worker %s failed (%s); retrying", self.owner, exc)
        for thread in self._threads:
            thread.start()
        log.info(
            "worker %s started: store %r, queues %s, workflows %s, concurrency %d",
            self.owner,
            self.store,
            ", ".join(self.queues) if self.queues is not None else "all",
            ", ".join(sorted(self.workflow_names())) or "none",
            self.workers,
        )

    def announce(self) -> None:
        """Tell the store this executor lives, and what it executes."""
        names = tuple(self.workflow_names())
        self.store.register_worker(
            WorkerInfo(
                worker_id=self.owner,
                host=claimer.HOST,
                pid=os.getpid(),
                queues=None if self.queues is None else tuple(self.queues),
                workflows=names,
                lease=self.lease,
                started_at=0.0,
                seen_at=0.0,
                concurrency=self.workers,
                patterns=None if self.patterns is None else tuple(self.patterns),
                versions={n: registry.lookup(n).version for n in names},
            )
        )
        self._announced = names

    def reannounce(self) -> None:
        """Announce again if workflows were registered since (a late import)."""
        if tuple(self.workflow_names()) != self._announced:
            self.announce()

    def stop(self, grace: float) -> None:
        """Stop claiming, let running executions end within ``grace``, release the rest."""
        self._stopping = True
        self.claimer.stop()
        if self.inflight:
            log.info("worker %s draining: %d runs executing", self.owner, len(self.inflight))
        deadline = self.clock.monotonic() + grace
        while self.inflight and self.clock.monotonic() < deadline:
            self.clock.sleep(0.01)  # the heartbeat keeps the leases of draining runs alive
        self._stop.set()
        self.scheduler.wake()
        if self.sweeper is not None and self.sweeper.thread.ident is not None:
            self.sweeper.thread.join(timeout=5)  # mid-batch: let that transaction end
            self.sweeper.release()
        try:
            released = self.store.release_owner(self.owner)  # peers take over what is left
            self.store.remove_worker(self.owner)
        except StoreError:
            log.exception("could not release leases of %s", self.owner)
        else:
            self.hooks.flush(1.0)  # the runs' own lines (written on the hooks thread) first
            log.info("worker %s stopped; %d unfinished runs released", self.owner, released)
        self._unsubscribe_log()
        for key in list(self._loop_calls):  # the loop is about to stop: tell their callers
            if (done := self._loop_calls.pop(key, None)) is not None:
                done(False, StoreClosed(CLOSED_WHILE_STARTING))
        # Stop one turn later, so that callbacks already handed to the loop run first.
        self._loop.call_soon_threadsafe(self._loop.call_soon, self._loop.stop)
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def draining(self) -> bool:
        """True once shutdown began: runs stop at their next durable call."""
        return self._stopping

    def now(self) -> float:
        """The store's time: timers are set on it."""
        return self.time.now()

    def poke(self) -> None:
        """Something became runnable: claim now rather than at the next poll."""
        self.claimer.poke()

    def wake_at(self, when: float) -> None:
        """A run falls due at ``when`` (store time): claim it then."""
        self.claimer.wake_at(when)

    def _room(self) -> int:
        if self.gate is not None and not self.gate.polling():
            return 0
        return self.capacity - len(self.inflight)

    def _running(self) -> list[str]:
        return list(self.inflight)

    def _running_in(self, queue: str) -> int:
        return sum(1 for ctx in list(self.inflight.values()) if ctx.run.queue == queue)

    def has_room(self, queue: str = "default", workflow: str | None = None) -> bool:
        """Whether a run of ``queue`` may be handed to this executor directly."""
        if self._stopping or self.gate is not None or len(self.inflight) >= self.capacity:
            return False  # fed by a transport: what starts here goes through its wake-ups
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

    # -- running -----------------------------------------------------------------
    def execute(self, claim: Claim) -> threading.Event:
        """Dispatch ``claim``; the event is set once its execution here ended."""
        done = self._waiters[claim.run.run_id] = threading.Event()
        self.dispatch(claim)
        return done

    def dispatch(self, claim: Claim) -> None:
        """Execute a run this executor has claimed."""
        workflow = registry.lookup(claim.run.workflow)
        ctx = RunContext(
            store=self.store,
            committer=self.committer,
            workflow=workflow,
            claim=claim,
            hooks=self.hooks,
            clock=self.clock,
            max_payload=self.max_payload,
            host=self,
        )
        self.inflight[claim.run.run_id] = ctx
        if claim.run.recoveries > self.max_recoveries:  # it may be what kills its workers
            self._end(ctx, recovery_limit(ctx, self.max_recoveries))
            return
        hooks = self.hooks
        if hooks.run_claimed or hooks.run_executing:
            ctx.claimed = running.claimed_event(claim, self.owner)
            if hooks.run_claimed:
                emit(hooks.run_claimed, ctx.claimed)
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
        if ctx.claimed is None or not self.hooks.run_executing:
            self._end(ctx, running.run_sync(ctx, self.committer))
            return
        with Scoped(self.hooks.run_executing, ctx.claimed):
            self._end(ctx, running.run_sync(ctx, self.committer))

    async def _run_async(self, ctx: RunContext) -> None:
        if ctx.claimed is None or not self.hooks.run_executing:
            self._end(ctx, await running.run_async(ctx, self.committer))
            return
        with Scoped(self.hooks.run_executing, ctx.claimed):
            self._end(ctx, await running.run_async(ctx, self.committer))

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
        concluded = ending is not None and not (
            ctx.lost or ctx.broken or isinstance(done, Exception)
        )
        if concluded:  # the run counts as here until its result is: a waiter woken by
            assert ending is not None  # its end (a NOTIFY) then waits, and reads nothing
            running.tell_hooks(self.hooks, ctx, ending)
        self.inflight.pop(ctx.run_id, None)
        if (waiter := self._waiters.pop(ctx.run_id, None)) is not None:
            waiter.set()
        if ctx.lost or isinstance(done, LeaseLost) or (ending is None and not ctx.broken):
            running.note_lost(self.committer, ctx, self.owner)
            if self.hooks.run_lost:
                emit(self.hooks.run_lost, RunLost(ctx.run_id, ctx.workflow_name, ctx.lease.epoch))
        elif isinstance(done, Exception) or ctx.broken:
            self.chores.strand(ctx.lease)
            reason = f"the database failed a write ({done}); it is released"
            emit(self.hooks.run_released, RunReleased(ctx.run_id, ctx.workflow_name, reason))
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

    def cancel_local(self, run_id: str, reason: str) -> None:
        """Tell a run executing here that it was asked to cancel, and why."""
        ctx = self.inflight.get(run_id)
        if ctx is not None:
            ctx.cancel_reason = reason or ctx.cancel_reason
            ctx.cancel_requested = True
