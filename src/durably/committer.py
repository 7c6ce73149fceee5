"""Group commit: writes from concurrent runs share one transaction.

Sync callers block in :meth:`Committer.run`; when no batch is being written the
caller writes it itself (no thread hand-off on the uncontended path). A write
nobody waits for (a run's final record) goes through :meth:`write_then`: the
thread already writing commits it, else the caller does. Async callers go
through :meth:`submit` / :meth:`queue`, which a background thread drains when
nobody else is leading, or, on the engine's loop over a store that commits
on the loop (SQLite), through :meth:`in_turn`. Either way, whatever queued up
while a transaction was open goes into the next one.

A domain error of one operation (``LeaseLost``, ``RunNotFound`` …) is that
operation's result, and nothing it wrote is kept: the transaction is rolled
back and the rest of the batch committed again without it. If the transaction
itself fails, each operation is retried alone so one bad write cannot fail
its neighbours.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from durably import crashpoints
from durably.clock import Clock
from durably.errors import DurablyError, StoreClosed
from durably.handoff import Done, Waiter, resolve, settle
from durably.hooks import BatchCommitted, Hooks, emit, made
from durably.stores.base import Store, Transaction

T = TypeVar("T")
log = logging.getLogger("durably")
Op = Callable[[Transaction], Any]

_CLOSED = "the engine is shut down; nothing more can be written"
LINGER = 0.0001


class Committer:
    """Batches write operations for one store."""

    def __init__(self, store: Store, hooks: Hooks | None = None) -> None:
        self.store = store
        self.hooks = Hooks() if hooks is None else hooks
        self.clock: Clock = store.clock
        #: Writes in one transaction at most (a store of small transactions says so).
        self.max_batch = store.max_batch
        self._queue: list[tuple[Op, Done]] = []
        self._cond = threading.Condition(threading.Lock())
        self._leading = False
        self._closed = False
        #: Commit the writes of coroutines on :attr:`loop` itself (local databases).
        self.inline = store.commits_on_loop
        self.loop: asyncio.AbstractEventLoop | None = None  # the engine's event loop
        self._turn: list[tuple[Op, Done]] = []  # writes made during this turn of it
        #: How many writers are likely to write soon (runs in flight); with several,
        #: a new leader lingers a moment so their writes share its transaction.
        self.concurrency: Callable[[], int] = lambda: 1
        self._thread = threading.Thread(target=self._background, name="durably-writer", daemon=True)
        self._thread.start()

    def run(self, op: Callable[[Transaction], T]) -> T:
        """Write ``op`` durably and return its result (or raise its error)."""
        waiter: Waiter | None = None
        with self._cond:
            if self._closed:
                raise StoreClosed(_CLOSED)
            lead, self._leading = not self._leading, True
            busy = self.concurrency() > 1
            if not (lead and not busy and not self._queue):
                waiter = Waiter()
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

    def _commit_one(self, op: Callable[[Transaction], T]) -> T:
        crashpoints.hit("commit.before")
        began = self.clock.monotonic() if self.hooks.batch_committed else 0.0
        value = self.store.transact(op)  # a domain error rolls it back and is raised here
        crashpoints.hit("commit.after")
        if self.hooks.batch_committed:
            emit(
                self.hooks.batch_committed,
                made(BatchCommitted, (1, self.clock.monotonic() - began)),
            )
        return value

    def write_then(self, op: Op, done: Done) -> None:
        """Commit ``op`` and call ``done`` with its outcome, without waiting for it
        while another thread is writing (that one commits it); else commit it here."""
        with self._cond:
            if self._closed:
                raise StoreClosed(_CLOSED)
            self._queue.append((op, done))
            if self._leading:
                return
            self._leading = True
        self._lead()

    def submit(self, op: Callable[[Transaction], T]) -> Future[T]:
        """Queue ``op`` for the next batch; the future completes once it committed."""
        future: Future[T] = Future()
        self.queue(op, functools.partial(settle, future))
        return future

    def queue(self, op: Op, done: Done) -> None:
        """Queue ``op`` for the background writer's next batch; ``done`` gets its outcome."""
        with self._cond:
            if self._closed:
                raise StoreClosed(_CLOSED)
            self._queue.append((op, done))
            if not self._leading:
                self._cond.notify()

    async def run_async(self, op: Callable[[Transaction], T]) -> T:
        """Write ``op`` durably from a coroutine.

        On the engine's own loop over a local database (SQLite, a commit of some
        tens of microseconds) the writes of all coroutines that ran in one turn of
        the loop are committed together on the loop itself: no thread hand-off.
        Elsewhere, and on a network database (PostgreSQL, whose round trip must not
        block the loop), the writer thread commits.
        """
        loop = asyncio.get_running_loop()
        if not self.inline or loop is not self.loop:
            return await asyncio.wrap_future(self.submit(op))
        future: asyncio.Future[T] = loop.create_future()
        self.in_turn(op, functools.partial(resolve, future))
        return await future

    def in_turn(self, op: Op, done: Done) -> None:
        """Add ``op`` to this turn's batch of the engine's loop (only on that loop,
        over a local database); ``done`` is called there once it committed."""
        self._turn.append((op, done))
        if len(self._turn) == 1:
            asyncio.get_running_loop().call_soon(self._flush_turn)

    def _flush_turn(self) -> None:
        batch, self._turn = self._turn, []
        if self._closed:
            for _, done in batch:
                _tell(done, False, StoreClosed(_CLOSED))
            return
        for start in range(0, len(batch), self.max_batch):
            self._commit(batch[start : start + self.max_batch])

    def _lead(self) -> None:
        while True:
            with self._cond:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
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
        began = self.clock.monotonic() if self.hooks.batch_committed else 0.0
        while True:
            try:
                results = self.store.transact(functools.partial(_all_or_nothing, batch))
                break
            except _Refused as refused:  # rolled back: answer those, commit the others
                for index, error in refused.errors.items():
                    _tell(batch[index][1], False, error)
                batch = [item for i, item in enumerate(batch) if i not in refused.errors]
                if not batch:
                    return
            except Exception as exc:  # the transaction failed as a whole
                if len(batch) > 1:
                    for item in batch:
                        self._commit([item])
                else:
                    _tell(batch[0][1], False, exc)
                return
        crashpoints.hit("commit.after")
        took = self.clock.monotonic() - began if self.hooks.batch_committed else 0.0
        for (_, done), value in zip(batch, results, strict=True):
            _tell(done, True, value)
        if self.hooks.batch_committed:  # once the waiters were told: they go on meanwhile
            emit(self.hooks.batch_committed, made(BatchCommitted, (len(batch), took)))

    def close(self) -> None:
        """Finish what is queued and stop the background writer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)


def _tell(done: Done, ok: bool, value: Any) -> None:
    """Give one operation its outcome; a failing callback cannot cost the others theirs."""
    try:
        done(ok, value)
    except Exception:
        log.exception("a write's completion callback failed")


class _Refused(Exception):
    """Some operations of a batch raised domain errors: roll the transaction back."""

    def __init__(self, errors: dict[int, DurablyError]) -> None:
        super().__init__(f"{len(errors)} operation(s) refused")
        self.errors = errors


def _all_or_nothing(batch: list[tuple[Op, Done]], tx: Transaction) -> list[Any]:
    results: list[Any] = []
    errors: dict[int, DurablyError] = {}
    for index, (op, _) in enumerate(batch):
        try:
            results.append(op(tx))
        except DurablyError as exc:
            errors[index] = exc
    if errors:
        raise _Refused(errors)
    return results
