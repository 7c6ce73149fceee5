"""Outcomes handed between threads and event loops.

An outcome is ``(ok, value)``: a result, or the error to raise. A
:class:`Waiter` is one blocked thread waiting for one; :func:`resolve` settles
an asyncio future with one. ``loop.call_soon_threadsafe`` wakes a loop (a write
to its self-pipe) for every call, so runs started, finished or resolved together
would wake it once each; an :class:`Inbox` queues such calls and wakes the loop
only for the first of a burst.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("durably")

#: Called once with an operation's outcome: (True, result) or (False, error).
Done = Callable[[bool, Any], None]

_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = weakref.WeakKeyDictionary()
_inboxes_lock = threading.Lock()


class Inbox:
    """Calls waiting to run on one event loop, in the order they were posted."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon; from any thread. Dropped if the loop closed."""
        with self._lock:
            self._calls.append((fn, args))
            if len(self._calls) > 1:
                return  # the wake-up for the first one is on its way
        if asyncio._get_running_loop() is self.loop:
            self.loop.call_soon(self._drain)
            return
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is left to call back
            with self._lock:
                self._calls.clear()

    def _drain(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
        for fn, args in calls:
            try:
                fn(*args)
            except Exception:
                log.exception("a call handed to the event loop failed")


def inbox(loop: asyncio.AbstractEventLoop) -> Inbox:
    """The inbox of ``loop`` (made on first use, gone with the loop)."""
    try:
        return _inboxes[loop]
    except KeyError:
        with _inboxes_lock:
            return _inboxes.setdefault(loop, Inbox(loop))


class Waiter:
    """One blocked thread: a lock held until its outcome is in (lighter than a Future)."""

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


def resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Settle ``future`` with an outcome, unless its waiter gave up meanwhile."""
    if future.done():  # the waiting task was cancelled meanwhile
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def settle(future: Future[Any], ok: bool, value: Any) -> None:
    """Settle a thread future with an outcome."""
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
