"""The public entry point: start runs, read their state, and execute them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from durably import registry
from durably.committer import Committer
from durably.durations import parse_duration
from durably.errors import InvalidRunState, RunNotFound, WorkflowNotFound
from durably.handle import RunHandle
from durably.hooks import Hooks
from durably.messaging import Messaging
from durably.mocking import _UNSET, StepMock, StepMocks
from durably.names import check_optional
from durably.operating import Operations
from durably.records import Run, RunRow, RunStatus, StepRecord, why_waiting
from durably.registry import Step
from durably.retention import Retention
from durably.runtime.retrying import positions_to_drop
from durably.scheduling import Schedules
from durably.serialization import DEFAULT_MAX_PAYLOAD, return_hint
from durably.starting import Starter, StartOptions
from durably.stores import open_store
from durably.stores.base import Store, Transaction
from durably.stores.sqlite import Synchronous
from durably.transport import Gate, Transport
from durably.watchers import Watchers

if TYPE_CHECKING:  # imported when the engine launches: a client never needs it
    from durably.worker.executor import Executor


#: Stores and committers of the parent process after a fork: kept, never closed (closing
#: a connection the parent still uses would end its session).
_FORKED_AWAY: list[tuple[Store, Committer]] = []


class Engine(Starter, Operations, Messaging):
    """Starts, inspects and executes durable runs.

    Runs start with ``engine.start_workflow(wf, *args, **kwargs)``; start options
    (run id, idempotency key, queue ...) go through :meth:`with_options`.

    Args:
        store: ``None`` for ``./durably.db``, a path, ``"sqlite:///path"``,
            ``":memory:"``, or a Store object.
        workers: threads for sync workflows (async ones share one event loop).
        lease: seconds a claim lasts without a heartbeat; a dead worker's runs
            are resumed by others after this long (at once on the same host).
        poll_interval: seconds between looks for work made runnable by other
            processes (work made runnable in this process starts at once).
        synchronous: ``"normal"`` survives process crashes; ``"full"`` also
            power loss.
        max_payload: the size limit of one argument list or result, in bytes.
        shutdown_grace: seconds ``shutdown`` lets running executions finish.
        queues: the queues this engine executes runs from (default: all).
        workflows: name patterns (``"billing.*"``) of the workflows it executes
            (default: every registered one).
        execute: ``False`` for a client that starts runs (by name, without
            importing them), sends signals and reads state, but executes nothing.
        max_recoveries: a run taken back from workers that died executing it more than
            this many times in a row, with no step completed in between, is failed
            (it may be what kills them); ``retry`` runs it again.
        retention: how long ended runs are kept (:class:`~durably.Retention`); one
            worker of the fleet at a time deletes older ones. ``None`` (the default)
            keeps every run.
        worker_id: a name for this engine's worker in ``durably workers`` and in the
            runs' history (its lease owner id is ``host:pid:worker_id``).
        transport: a message broker that also tells workers what became runnable
            (``durably.contrib.celery.CeleryTransport``; see docs/celery.md).
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        workers: int = 64,
        lease: float | str = 30.0,
        poll_interval: float | str = 1.0,
        synchronous: Synchronous = "normal",
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        shutdown_grace: float | str = 10.0,
        queues: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
        execute: bool = True,
        max_recoveries: int = 10,
        retention: Retention | None = None,
        worker_id: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, not {workers!r}")
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) or max_payload < 1:
            raise ValueError(f"max_payload must be a positive int of bytes, not {max_payload!r}")
        self.store = open_store(store, synchronous)
        self._opened = (store, synchronous, os.getpid())  # what after_fork opens again
        self.workers = workers
        self.lease = parse_duration(lease)
        self.poll_interval = parse_duration(poll_interval)
        self.max_payload = max_payload
        if isinstance(max_recoveries, bool) or not isinstance(max_recoveries, int):
            raise ValueError(f"max_recoveries must be an int, not {max_recoveries!r}")
        self.max_recoveries = max_recoveries
        self.shutdown_grace = parse_duration(shutdown_grace)
        self.queues = None if queues is None else [str(q) for q in queues]
        self.workflows = None if workflows is None else [str(w) for w in workflows]
        self.execute = execute
        if retention is not None and not isinstance(retention, Retention):
            raise TypeError(f"retention must be a durably.Retention, not {retention!r}")
        self.retention = retention
        self.worker_id = check_optional("worker_id", worker_id)
        if self.lease < 1:
            raise ValueError("lease must be at least 1 second")
        #: Subscribers of the engine's events (logs, metrics, traces): see durably.hooks.
        self.hooks = Hooks()
        self.clock = self.store.clock
        self.committer = Committer(self.store, self.hooks)
        self._executor: Executor | None = None
        self.watchers = Watchers()
        self._mocks = StepMocks()
        self._unlisten: Callable[[], None] | None = None
        #: The store's schedules: create, list, pause, trigger, backfill ... (see
        #: durably.scheduling); workers fire them, with no leader.
        self.schedules = Schedules(self)
        super().__init__(self, StartOptions())
        self.transport = transport
        if transport is not None:
            transport.attach(self)

    # -- life cycle --------------------------------------------------------------
    def launch(self, gate: Gate | None = None) -> Engine:
        """Start the background executor: claim and run work until :meth:`shutdown`
        (given a transport's ``gate``: run what its wake-ups name)."""
        if self._executor is None and self.execute:
            from durably.worker.executor import Executor

            self._executor = Executor(
                self.store,
                self.committer,
                self.hooks,
                workers=self.workers,
                lease=self.lease,
                poll_interval=self.poll_interval,
                max_payload=self.max_payload,
                max_recoveries=self.max_recoveries,
                on_finished=self.watchers.notify,
                queues=self.queues,
                workflows=self.workflows,
                retention=self.retention,
                worker_id=self.worker_id,
                mocks=self._mocks.active,
                gate=gate,
            )
            declared = [registry.lookup(n) for n in self._executor.workflow_names()]
            specs = self.schedules.declared(declared)
            if specs:  # @durably.schedule: the store's schedules become these
                self.schedules.apply(specs)
            self._executor.start()
        self._listen()
        return self

    @property
    def executor(self) -> Executor | None:
        """The background executor while the engine is launched."""
        return self._executor

    def executing_workflows(self) -> list[str]:
        """Names of the workflows this engine executes (empty when not launched)."""
        return [] if self._executor is None else self._executor.workflow_names()

    def _listen(self) -> None:
        """Hear of runnable and finished runs from other processes (PostgreSQL NOTIFY)."""
        if self._unlisten is None:
            self._unlisten = self.store.listen(
                self._on_ready, self.watchers.notify, self._on_schedules
            )

    def _on_ready(self) -> None:
        if self._executor is not None:
            self._executor.poke()

    def _on_schedules(self) -> None:
        if self._executor is not None:
            self._executor.scheduler.wake()

    def after_fork(self) -> None:
        """In a process forked from the one that made this engine (a pool's child): open
        a store of its own. The parent's connections and threads are left alone."""
        store, synchronous, pid = self._opened
        if pid == os.getpid():
            return
        if not (store is None or isinstance(store, str)):
            raise TypeError("an engine given a Store object cannot open it again after a fork")
        _FORKED_AWAY.append((self.store, self.committer))  # never closed here: the parent's
        self.store = open_store(store, synchronous)
        self._opened = (store, synchronous, os.getpid())
        self.clock = self.store.clock
        self.hooks.after_fork()
        self.committer = Committer(self.store, self.hooks)
        self.watchers = Watchers()
        self._executor = None
        self._unlisten = None

    def shutdown(self) -> None:
        """Stop executing; unfinished runs are released for any engine to resume."""
        if self._executor is not None:
            self._executor.stop(self.shutdown_grace)
            self._executor = None

    def close(self) -> None:
        """Shut down and close the store."""
        self.shutdown()
        if self._unlisten is not None:
            self._unlisten()
        self.committer.close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self.launch()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Engine:
        return await asyncio.to_thread(self.launch)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    def handle(self, run_id: str) -> RunHandle[Any]:
        """A handle for an existing run (its result is typed if its workflow is registered)."""
        row = self._row(run_id)
        try:
            hint = return_hint(registry.lookup(row.workflow).fn)
        except WorkflowNotFound:
            hint = Any
        return RunHandle(self, run_id, hint)

    # -- reading -----------------------------------------------------------------
    def _row(self, run_id: str) -> RunRow:
        row = self.store.get_run(run_id)
        if row is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return row

    def get_run(self, run_id: str) -> Run:
        """A snapshot of the run. Raises :class:`RunNotFound`.

        A run that is due but waits all the same says why in ``blocked_reason``.
        """
        row = self._row(run_id)
        local = self._executor.current_step(run_id) if self._executor else None
        blocked = None
        due = row.available_at is not None and row.available_at <= self.store.now()
        if row.status is RunStatus.PENDING and row.owner is None and due:
            blocked = why_waiting(row, self.store.live_workers())
        return Run.from_row(row, local, blocked)

    @property
    def launched(self) -> bool:
        """Whether this engine executes runs now (``with engine:`` or ``launch()``)."""
        return self._executor is not None

    def steps(self, run_id: str, start: int = 0, limit: int | None = None) -> list[StepRecord]:
        """The run's journal, in order: from position ``start``, ``limit`` at most."""
        self._row(run_id)
        return [StepRecord.from_entry(e) for e in self.store.journal(run_id, start, limit)]

    def retry(self, run_id: str) -> RunHandle[Any]:
        """Run a failed run again: recorded steps are replayed, its failed steps run anew
        (a failed branch of a ``map`` too).

        Raises:
            RunNotFound: no such run.
            InvalidRunState: the run is not failed, or its compensations already ran.
        """
        op = self._retry(run_id)
        self.committer.run(op)
        return self._retried(run_id)

    async def retry_async(self, run_id: str) -> RunHandle[Any]:
        op = await asyncio.to_thread(self._retry, run_id)
        await self.committer.run_async(op)
        return await asyncio.to_thread(self._retried, run_id)

    def _retry(self, run_id: str) -> Callable[[Transaction], None]:
        row = self._row(run_id)
        if row.status is not RunStatus.FAILED:
            raise InvalidRunState(f"run {run_id} is {row.status}; only failed runs can be retried")
        drop = positions_to_drop(row, self.store.journal(run_id))
        return lambda tx: self.store.retry_run(tx, run_id, drop)

    def _retried(self, run_id: str) -> RunHandle[Any]:
        self._woken()
        return self.handle(run_id)

    def _woken(self) -> None:
        """Something may have become runnable: claim now rather than at the next poll."""
        if self._executor is not None:
            self._executor.poke()

    def cancel(self, run_id: str, reason: str | None = None) -> None:
        """Cancel a run and its children.

        A sleeping or waiting run is woken and cancelled at once; a running one gets
        ``WorkflowCancelled`` at its next durable call (a step can learn of it with
        ``durably.is_cancelled()`` or ``durably.heartbeat()``). Compensations and shielded
        cleanup run before it ends as ``cancelled``. Cancelling a cancelled run does
        nothing; a completed or failed one raises :class:`InvalidRunState`.
        """
        text = reason or ""
        self.committer.run(lambda tx: self.store.cancel_run(tx, run_id, text))
        self._cancelled(run_id, text)

    async def cancel_async(self, run_id: str, reason: str | None = None) -> None:
        text = reason or ""
        await self.committer.run_async(lambda tx: self.store.cancel_run(tx, run_id, text))
        self._cancelled(run_id, text)

    def _cancelled(self, run_id: str, reason: str) -> None:
        if self._executor is not None:
            self._executor.cancel_local(run_id, reason)
            self._executor.poke()

    def mock_step(
        self,
        step: Step[Any, Any],
        *,
        returns: Any = _UNSET,
        raises: BaseException | type[BaseException] | None = None,
    ) -> AbstractContextManager[StepMock]:
        """While the ``with`` block lasts, runs executed by this engine get ``returns``
        (or raise ``raises``) from ``step`` instead of running its body; the outcome is
        journaled and retried like the body's (see :mod:`durably.mocking`)."""
        return self._mocks.mock(step, returns=returns, raises=raises)

    async def get_run_async(self, run_id: str) -> Run:
        return await asyncio.to_thread(self.get_run, run_id)

    async def steps_async(self, run_id: str) -> list[StepRecord]:
        return await asyncio.to_thread(self.steps, run_id)

    # -- completion notifications ------------------------------------------------
    def running_here(self, run_id: str) -> bool:
        """Whether this engine is executing the run now (it notifies when that ends)."""
        return self._executor is not None and self._executor.is_running(run_id)

    def watch(self, run_id: str, callback: Callable[[], None]) -> AbstractContextManager[None]:
        """Call ``callback`` when this process sees the run end or suspend."""
        self._listen()
        return self.watchers.watch(run_id, callback)
