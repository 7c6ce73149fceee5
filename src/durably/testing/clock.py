"""A clock for tests: real time's pace, plus every jump a test (or auto-skip) makes.

:class:`VirtualClock` satisfies :class:`durably.clock.Clock`, so an engine whose
store is given one takes all of its "now" from it: timers, leases, retry backoff,
step timeouts, schedules and ``durably.now()``. Its time flows as the host's does,
so every loop of the engine (heartbeats, polls) behaves as in production, and
:meth:`VirtualClock.advance` moves it forward at once, waking everything that
waits on it. Each clock is its own: two tests with two clocks never meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from durably.durations import parse_duration

T = TypeVar("T")

_Wake = tuple[asyncio.AbstractEventLoop, asyncio.Event]


class VirtualClock:
    """A clock that starts at ``start`` (a datetime or epoch seconds; default: now)
    and runs at real speed, except that :meth:`advance` jumps it forward."""

    def __init__(self, start: datetime | float | None = None) -> None:
        if start is None:
            begin = time.time()
        elif isinstance(start, datetime):
            begin = start.timestamp()  # a naive datetime is local time, as everywhere
        elif isinstance(start, (int, float)) and not isinstance(start, bool):
            begin = float(start)
        else:
            raise TypeError(f"start must be a datetime or epoch seconds, not {start!r}")
        self._offset = begin - time.time()  # this clock minus the host's wall clock
        self._jumped = 0.0  # the same jumps, added to the monotonic clock
        self._cond = threading.Condition()
        self._advancing = threading.Lock()
        self._ids = itertools.count()
        self._sleepers: dict[int, float] = {}  # sleeps under way -> when each one ends
        self._wakes: dict[int, _Wake] = {}  # async waits to wake on a jump
        self._followers: list[tuple[Callable[[float], None], Callable[[], None] | None]] = []

    # -- the Clock protocol ------------------------------------------------------
    def time(self) -> float:
        return time.time() + self._offset

    def monotonic(self) -> float:
        return time.monotonic() + self._jumped

    def sleep(self, seconds: float) -> None:
        end = self.time() + seconds
        key = next(self._ids)
        with self._cond:
            self._sleepers[key] = end
            try:
                while (left := end - self.time()) > 0:
                    self._cond.wait(left)
            finally:
                del self._sleepers[key]

    async def sleep_async(self, seconds: float) -> None:
        end = self.time() + seconds
        key = next(self._ids)
        with self._cond:
            self._sleepers[key] = end
        try:
            await self._until(end, key, None)
        finally:
            with self._cond:
                del self._sleepers[key]

    def result_within(self, future: Future[T], seconds: float) -> T:
        end = self.time() + seconds
        future.add_done_callback(lambda _: self._notify())
        with self._cond:
            while not future.done() and (left := end - self.time()) > 0:
                self._cond.wait(left)
        if not future.done():
            raise TimeoutError(f"no result within {seconds:g}s of this clock")
        return future.result()

    async def within_async(self, awaitable: Awaitable[T], seconds: float) -> T:
        end = self.time() + seconds
        task = asyncio.ensure_future(awaitable)
        try:
            await self._until(end, next(self._ids), task)
        except BaseException:  # cancelled from outside: the awaitable goes too
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise TimeoutError(f"no result within {seconds:g}s of this clock")
        return task.result()

    def steady(self) -> contextlib.AbstractContextManager[object]:
        return self._advancing  # held by each jump, the store's part of it included

    # -- control ------------------------------------------------------------------
    def advance(self, duration: str | float | timedelta) -> float:
        """Move the clock forward by ``duration`` (``"2h"``, seconds, a timedelta) at once;
        returns the new time. What waits on the clock and falls due wakes now."""
        seconds = parse_duration(duration)
        with self._advancing:
            followers = list(self._followers)
            for before, _ in followers:  # the database's clock moves first
                before(seconds)
            with self._cond:
                self._offset += seconds
                self._jumped += seconds
                self._cond.notify_all()
                wakes = list(self._wakes.values())
            for loop, event in wakes:
                with contextlib.suppress(RuntimeError):  # its loop has closed
                    loop.call_soon_threadsafe(event.set)
            for _, after in followers:
                if after is not None:
                    after()
        return self.time()

    def advance_to(self, when: datetime | float) -> float:
        """Move the clock forward to ``when`` (never back); returns the new time."""
        stamp = when.timestamp() if isinstance(when, datetime) else float(when)
        return self.advance(max(0.0, stamp - self.time()))

    def follow(
        self, before: Callable[[float], None], after: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Call ``before(seconds)`` before each jump (a store moving its own clock) and
        ``after()`` once it is made (waking what polls); returns the function that stops
        both (and does nothing when called again)."""
        pair = (before, after)
        self._followers.append(pair)

        def unfollow() -> None:
            with contextlib.suppress(ValueError):
                self._followers.remove(pair)

        return unfollow

    @property
    def offset(self) -> float:
        """This clock's time minus the host's wall-clock time, in seconds."""
        return self._offset

    def sleeping(self) -> list[float]:
        """When each sleep now under way ends, in this clock's time."""
        with self._cond:
            return sorted(self._sleepers.values())

    def now(self) -> datetime:
        """This clock's time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def __repr__(self) -> str:
        return f"VirtualClock({self.now().isoformat(timespec='seconds')})"

    # -- waiting --------------------------------------------------------------------
    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    async def _until(self, end: float, key: int, task: asyncio.Future[T] | None) -> None:
        """Return once this clock reaches ``end`` or ``task`` is done, whichever first."""
        event = asyncio.Event()
        with self._cond:
            self._wakes[key] = (asyncio.get_running_loop(), event)
        try:
            while (task is None or not task.done()) and (left := end - self.time()) > 0:
                event.clear()
                waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
                waits: set[asyncio.Future[Any]] = {waiter} if task is None else {waiter, task}
                try:
                    await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
        finally:
            with self._cond:
                del self._wakes[key]
