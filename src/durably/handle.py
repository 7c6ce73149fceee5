"""``RunHandle``: a reference to one run, to read its status and wait for its result."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, Protocol, TypeVar

from durably.errors import (
    NoWorker,
    RunNotFound,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowTimedOut,
)
from durably.handoff import inbox, resolve
from durably.records import RunRow, RunStatus, why_waiting
from durably.serialization import loads
from durably.stores.base import Store
from durably.watchers import Watchers
from durably.worker.heartbeat import UNSERVED_EVERY

#: How long a wait goes on while live workers do not execute the run's workflow (or
#: serve its queue) before it raises NoWorker: a worker re-announces within that.
UNSERVED_GRACE = UNSERVED_EVERY + 5.0

R = TypeVar("R")


class RunSource(Protocol):
    """What a handle needs from the engine that made it."""

    store: Store
    watchers: Watchers
    poll_interval: float

    @property
    def launched(self) -> bool:
        """Whether the engine executes runs (so a run may be executed here)."""
        ...

    def running_here(self, run_id: str) -> bool:
        """Whether this process executes the run now (it notifies when that ends)."""
        ...

    def watch(self, run_id: str, callback: Callable[[], None]) -> AbstractContextManager[None]:
        """Call ``callback`` while inside, whenever the run is seen to end or suspend."""
        ...

    def cancel(self, run_id: str, reason: str | None = None) -> None: ...
    async def cancel_async(self, run_id: str, reason: str | None = None) -> None: ...


#: Cross-process waits poll with this backoff, up to the engine's poll interval.
_FIRST_POLL = 0.005


class RunHandle(Generic[R]):
    """A started run. ``result()`` waits for it; any process may hold a handle."""

    def __init__(self, engine: RunSource, run_id: str, result_hint: Any = Any) -> None:
        self._engine = engine
        self.run_id = run_id
        self._hint = result_hint
        self._target = run_id  # moves along a continue-as-new chain
        self._checked = False  # whether anyone executes runs was looked at
        self._unserved_since: float | None = None  # live workers, none executing it

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id}>"

    def cancel(self, reason: str | None = None) -> None:
        """Cancel the run (see :meth:`Engine.cancel`)."""
        self._engine.cancel(self.run_id, reason)

    async def cancel_async(self, reason: str | None = None) -> None:
        await self._engine.cancel_async(self.run_id, reason)

    def status(self) -> RunStatus:
        """The run's current status."""
        return self._row(self._engine.store.get_run(self.run_id)).status

    async def status_async(self) -> RunStatus:
        row = await asyncio.to_thread(self._engine.store.get_run, self.run_id)
        return self._row(row).status

    def _row(self, row: RunRow | None) -> RunRow:
        if row is None:
            raise RunNotFound(f"no run with id {self.run_id!r}")
        return row

    def result(self, timeout: float | None = None) -> R:
        """Wait for the run to end and return its result.

        Raises:
            WorkflowFailed: the run failed; carries the error type, message and traceback.
            TimeoutError: the run did not end within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_POLL
        while True:
            if (text := self._engine.watchers.result(self._target)) is not None:
                return self._decoded(text)  # it completed here: nothing to read
            event = threading.Event()
            with self._engine.watch(self._target, event.set):
                here = self._engine.running_here(self._target)
                if not here:
                    row = self._engine.store.get_run(self._target)
                    if self._settled(row):
                        return self._outcome(row)
                event.wait(self._next_wait(deadline, pause, here))
            pause = min(pause * 2, self._engine.poll_interval)

    async def result_async(self, timeout: float | None = None) -> R:
        """Async twin of :meth:`result`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_POLL
        loop = asyncio.get_running_loop()
        while True:
            if (text := self._engine.watchers.result(self._target)) is not None:
                return self._decoded(text)  # it completed here: nothing to read
            woken: asyncio.Future[None] = loop.create_future()
            wake = functools.partial(inbox(loop).post, resolve, woken, True, None)
            with self._engine.watch(self._target, wake):
                here = self._engine.running_here(self._target)
                if not here:
                    row = await asyncio.to_thread(self._engine.store.get_run, self._target)
                    if self._settled(row):
                        return self._outcome(row)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken, self._next_wait(deadline, pause, here))
            pause = min(pause * 2, self._engine.poll_interval)

    # -- shared decisions ------------------------------------------------------------
    def _decoded(self, output: str | None) -> R:
        value: R = loads(output, self._hint, what=f"result of run {self._target}")
        return value

    def _settled(self, row: RunRow | None) -> bool:
        if row is None:
            raise RunNotFound(f"no run with id {self._target!r}")
        if row.continued_to is not None:
            self._target = row.continued_to  # the chain goes on: wait for its next link
            return False
        if not row.status.terminal and not self._checked:
            self._checked = self._someone_executes(row)
        return row.status.terminal

    def _someone_executes(self, row: RunRow) -> bool:
        """Waiting for a run nothing would execute is a mistake: say so, at once when no
        worker lives, after :data:`UNSERVED_GRACE` when those that live do not execute it
        (one that imports the workflow late announces it within that). True: someone
        executes it (no need to look again)."""
        if self._engine.launched:
            return True
        workers = self._engine.store.live_workers()
        reason = why_waiting(row, workers)
        if reason is None:
            return True
        if workers:
            now = time.monotonic()
            since = self._unserved_since = self._unserved_since or now
            if now - since < UNSERVED_GRACE:
                return False
        raise NoWorker(f"run {row.run_id} is {row.status} and nothing would execute it: "
                       f"{reason}")  # fmt: skip

    def _next_wait(self, deadline: float | None, pause: float, here: bool) -> float:
        """How long to wait before looking again. A run executing in this process
        needs no polling: it notifies when it ends or suspends. (A rare silent
        release, at shutdown or on a lost lease, is seen a poll interval later.)"""
        if here:
            pause = self._engine.poll_interval
        if deadline is None:
            return pause
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"run {self.run_id} did not finish in time")
        return min(pause, left)

    def _outcome(self, row: RunRow | None) -> R:
        assert row is not None
        if row.status is RunStatus.COMPLETED:
            return self._decoded(row.output)
        assert row.error is not None
        if row.status is RunStatus.CANCELLED:
            if row.error.type == WorkflowTimedOut.__name__:
                raise WorkflowTimedOut(row.error.message)
            raise WorkflowCancelled(row.error.message)
        raise WorkflowFailed(row.run_id, row.error)
