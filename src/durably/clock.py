"""Time, for every durable decision: timers, leases, retry backoff, step timeouts.

This module is the only place that reads the wall clock or the monotonic clock
for such decisions. An engine and its store share one :class:`Clock`; the store
takes its "now" from it where it can (SQLite's ``durably_now()`` calls
:meth:`Clock.time`), and a store whose database keeps its own time (PostgreSQL)
is read through :class:`StoreTime`, which corrects this host's clock by the
offset measured to the database's. A test swaps in a clock of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    """A source of time. Wall time is in seconds since the Unix epoch."""

    def time(self) -> float:
        """Wall-clock time: what timers and leases are set on."""
        ...

    def monotonic(self) -> float:
        """A clock that never goes back, for intervals measured in this process."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` of this clock's time."""
        ...

    async def sleep_async(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time without blocking the event loop."""
        ...

    def result_within(self, future: Future[T], seconds: float) -> T:
        """The future's result; :class:`TimeoutError` after ``seconds`` of this clock."""
        ...

    async def within_async(self, awaitable: Awaitable[T], seconds: float) -> T:
        """Await ``awaitable``; cancel it and raise :class:`TimeoutError` after ``seconds``."""
        ...

    def steady(self) -> AbstractContextManager[object]:
        """Inside, this clock makes no jump (a test's clock waits to move; the host's is
        never moved on purpose): readings of it and of the store's time agree."""
        ...


_monotonic = time.monotonic


class SystemClock:
    """The host's clocks. ``time.time`` is looked up at each call, so a process that
    replaces it (a test skewing a worker's clock) is obeyed."""

    def time(self) -> float:
        return time.time()

    monotonic = staticmethod(_monotonic)  # read on every step: a C call, no frame

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def result_within(self, future: Future[T], seconds: float) -> T:
        return future.result(seconds)  # concurrent.futures.TimeoutError is TimeoutError

    async def within_async(self, awaitable: Awaitable[T], seconds: float) -> T:
        return await asyncio.wait_for(awaitable, seconds)

    def steady(self) -> AbstractContextManager[object]:
        return nullcontext()

    def __repr__(self) -> str:
        return "SystemClock()"


#: The clock of every engine that is not given one.
SYSTEM = SystemClock()


class StoreTime:
    """The store's time as seen from this host: this clock plus a measured offset.

    Timers and leases are compared with the store's "now"; a run computes its wake-up
    time with :meth:`now` so that a host whose clock is wrong still sets it right.
    """

    def __init__(self, clock: Clock, read_store: Callable[[], float]) -> None:
        self.clock = clock
        self._read_store = read_store
        self.offset = 0.0  # the store's time minus this clock's

    def measure(self) -> None:
        """Read the store's time and remember its offset (halfway through the read).

        The clock holds still meanwhile: a test's clock that jumped mid-read (the store
        moving first, then this clock) would leave the offset wrong by up to the jump,
        and every timer set with it until the next measure."""
        with self.clock.steady():
            before = self.clock.time()
            store = self._read_store()
            after = self.clock.time()
        self.offset = store - (before + after) / 2

    def now(self) -> float:
        return self.clock.time() + self.offset
