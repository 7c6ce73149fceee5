"""Calls handed to an event loop from other threads, one wake-up per burst.

``loop.call_soon_threadsafe`` wakes the loop (a write to its self-pipe) for every
call. Runs started, finished or resolved together would wake it once each; an
:class:`Inbox` queues them and wakes the loop only for the first of a burst.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("durably")

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
