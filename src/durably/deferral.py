"""The hooks thread: deferred subscribers' events, delivered in order off the threads
that emit them (see ``durably.hooks.Hooks.subscribe``).

What waits for it is bounded: past ``MAX_PENDING`` events, new ones are dropped and
counted, and a WARNING says how many once the thread caught up. A log handler that
stopped writing (a stderr nobody reads) slows nothing else and grows no memory for ever.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("durably.hooks")
#: How long the thread waits, once it has delivered everything, before it looks again:
#: the threads that emit then rarely wake it (it takes what gathered at once).
LINGER = 0.005
#: Events waiting at most; beyond, new ones are dropped (and counted).
MAX_PENDING = 100_000

Deliver = Callable[[Callable[[Any], None], Any], None]


class Deferral:
    """One thread, started by the first event, that calls ``deliver(listener, event)``
    for each event handed to :meth:`put`, in order."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._dropped = 0  # since the thread last caught up

    def put(self, listener: Callable[[Any], None], event: Any) -> None:
        """Have ``listener(event)`` called on the thread, after what was put before;
        dropped if ``MAX_PENDING`` events wait already."""
        if self._queue.qsize() >= MAX_PENDING:
            with self._lock:
                self._dropped += 1
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="durably-hooks", daemon=True
                    )
                    self._thread.start()
        self._queue.put((listener, event))

    def flush(self, timeout: float) -> bool:
        """Wait until what was put so far was delivered; False past ``timeout``."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put((None, done))  # never dropped: a flush is no event
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            listener, event = self._queue.get()
            # Nothing raised here may end the thread: every later event would wait for
            # ever (a log handler that raises, even while its failure is reported).
            if listener is not None:
                with contextlib.suppress(Exception):
                    self._deliver(listener, event)
            caught_up = self._queue.empty()
            if caught_up and self._dropped:
                with contextlib.suppress(Exception):
                    self._tell_dropped()
            if listener is None:  # a flush: what was put before it was delivered
                event.set()
            elif caught_up:
                time.sleep(LINGER)  # let events gather: one wake-up for many

    def _tell_dropped(self) -> None:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        log.warning(
            "the hooks thread fell behind (a subscriber or log handler slow or stuck): "
            "%d events dropped, more than %d were waiting",
            dropped,
            MAX_PENDING,
        )
