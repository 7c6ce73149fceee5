"""Group commit: writes from concurrent runs share one transaction.

Sync callers block in :meth:`Committer.run`; when no batch is being written the
caller writes it itself (no thread hand-off on the uncontended path). Async
callers and fire-and-forget writes go through :meth:`submit`, which a
background thread drains when nobody else is leading. Either way, whatever
queued up while a transaction was open goes into the next one.

A domain error of one operation (``LeaseLost``, ``RunNotFound`` …) is that
operation's result; the rest of the batch still commits. If the transaction
itself fails, each operation is retried alone so one bad write cannot fail
its neighbours.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from durably import crashpoints
from durably.errors import DurablyError, StoreClosed
from durably.stores.base import Store

T = TypeVar("T")
Op = Callable[[Any], Any]
#: Called once with the operation's outcome: (True, result) or (False, error).
Done = Callable[[bool, Any], None]

MAX_BATCH = 1000
LINGER = 0.0001


class Committer:
    """Batches write operations for one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[tuple[Op, Done]] = []
        self._cond = threading.Condition(threading.Lock())
        self._leading = False
        self._closed = False
        #: How many writers are likely to write soon (runs in flight); with several,
        #: a new leader lingers a moment so their writes share its transaction.
        self.concurrency: Callable[[], int] = lambda: 1
        self._thread = threading.Thread(target=self._background, name="durably-writer", daemon=True)
        self._thread.start()

    def run(self, op: Callable[[Any], T]) -> T:
        """Write ``op`` durably and return its result (or raise its error)."""
        waiter: _Waiter | None = None
        with self._cond:
            if self._closed:
                raise StoreClosed("the engine is shut down; nothing more can be written")
            lead, self._leading = not self._leading, True
            busy = self.concurrency() > 1
            if not (lead and not busy and not self._queue):
                waiter = _Waiter()
                self._queue.append((op, waiter.done))
        if waiter is None:  # nobody else is writing: no batch, no waiter, no hand-off
            try:
                return self._commit_one(op)
            finally:
                self._lead()
        if lead:
            if busy:
                time.sleep(LINGER)  # releases the GIL: other runs enqueue their writes
            self._lead()
        return waiter.wait()  # type: ignore[no-any-return]

    def _commit_one(self, op: Callable[[Any], T]) -> T:
        crashpoints.hit("commit.before")
        ok, value = self.store.transact(lambda tx: _apply(tx, op))
        crashpoints.hit("commit.after")
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def submit(self, op: Callable[[Any], T]) -> Future[T]:
        """Queue ``op`` for the next batch; the future completes once it committed."""
        future: Future[T] = Future()
        with self._cond:
            if self._closed:
                raise StoreClosed("the engine is shut down; nothing more can be written")
            self._queue.append((op, functools.partial(_settle, future)))
            if not self._leading:
                self._cond.notify()
        return future

    async def run_async(self, op: Callable[[Any], T]) -> T:
        return await asyncio.wrap_future(self.submit(op))

    def _lead(self) -> None:
        while True:
            with self._cond:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                if not batch:
                    self._leading = False
                    return
            self._commit(batch)

    def _background(self) -> None:
        while True:
            with self._cond:
                while self._leading or not self._queue:
                    if self._closed and not self._queue:
                        return
                    self._cond.wait(0.5)
                self._leading = True
            self._lead()

    def _commit(self, batch: list[tuple[Op, Done]]) -> None:
        crashpoints.hit("commit.before")
        try:
            results = self.store.transact(lambda tx: [_apply(tx, op) for op, _ in batch])
        except Exception as exc:  # the transaction failed as a whole
            if len(batch) > 1:
                for item in batch:
                    self._commit([item])
            else:
                batch[0][1](False, exc)
            return
        crashpoints.hit("commit.after")
        for (_, done), (ok, value) in zip(batch, results, strict=True):
            done(ok, value)

    def close(self) -> None:
        """Finish what is queued and stop the background writer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)


class _Waiter:
    """One blocked writer: a lock held until its outcome is in (lighter than a Future)."""

    __slots__ = ("_lock", "_ok", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._ok = False
        self._value: Any = None

    def done(self, ok: bool, value: Any) -> None:
        self._ok, self._value = ok, value
        self._lock.release()

    def wait(self) -> Any:
        self._lock.acquire()
        if self._ok:
            return self._value
        raise self._value


def _settle(future: Future[Any], ok: bool, value: Any) -> None:
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _apply(tx: Any, op: Op) -> tuple[bool, Any]:
    try:
        return True, op(tx)
    except DurablyError as exc:
        return False, exc
