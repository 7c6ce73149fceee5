"""Publishing wake-ups: on a thread of their own, so a run's thread only appends an id.

A wake-up is the message ``durably.wake(run_id, queue)``, sent with no ``eta`` or
``countdown`` ever (timers stay in the database). What cannot be published (the
broker is down) is dropped with a warning: the database still knows the run is
runnable, and the sweeper (:mod:`durably.contrib.celery.sweeper`) wakes it again.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence

from celery import Celery

log = logging.getLogger("durably.celery")

#: (run id, workflow, queue): the last two None when the code that woke it did not say.
Wake = tuple[str, str | None, str | None]
#: The Celery queue of a wake-up, from the run's workflow and durably queue (None: the
#: app's default queue).
Route = Callable[[str, str], str | None]
BATCH = 500


class Publisher:
    """Sends wake-ups to the broker, and knows whether it could, lately."""

    def __init__(
        self,
        app: Celery,
        task_name: str,
        route: Route | None,
        lookup: Callable[[str], tuple[str, str] | None],
    ) -> None:
        self.app, self.task_name = app, task_name
        self._route, self._lookup = route, lookup
        #: False since a publish or a probe failed, until one succeeds.
        self.reachable = True
        self.published = 0  # wake-ups sent by this process
        self._outbox: queue.SimpleQueue[Wake] = queue.SimpleQueue()
        self._pid = os.getpid()  # the process whose thread publishes
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self, run_id: str, workflow: str | None = None, queue: str | None = None) -> None:
        """Publish a wake-up for ``run_id`` soon, from this publisher's thread."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="durably-celery-publish", daemon=True
                    )
                    self._thread.start()
        self._outbox.put((run_id, workflow, queue))

    def after_fork(self) -> None:
        """In a forked child: the parent's thread and what it had to send are not here."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._outbox = queue.SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()

    def _loop(self) -> None:
        while True:
            wakes = [self._outbox.get()]
            while len(wakes) < BATCH:
                try:
                    wakes.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            self.send(wakes)

    def send(self, wakes: Sequence[Wake]) -> bool:
        """Publish ``wakes`` now; False (logged) if the broker failed."""
        if not wakes:
            return True
        try:
            with self.app.producer_or_acquire() as producer:
                for run_id, workflow, queue_name in wakes:
                    options = {}
                    if self._route is not None:
                        if workflow is None or queue_name is None:
                            found = self._lookup(run_id)
                            if found is None:
                                continue  # purged since: nothing to wake
                            workflow, queue_name = found
                        target = self._route(workflow, queue_name)
                        if target is not None:
                            options["queue"] = target
                    self.app.send_task(
                        self.task_name,
                        args=(run_id, queue_name),
                        producer=producer,
                        retry=False,
                        add_to_parent=False,
                        ignore_result=True,
                        **options,
                    )
        except Exception as exc:
            if self.reachable:
                log.warning(
                    "the broker failed a publish (%s): %d wake-up(s) left to the database",
                    exc,
                    len(wakes),
                )
            self.reachable = False
            return False
        self.published += len(wakes)
        if not self.reachable:
            log.info("the broker is reachable again")
        self.reachable = True
        return True

    def probe(self, timeout: float = 2.0) -> bool:
        """Connect to the broker once (a fresh connection): whether it answered."""
        began = time.monotonic()
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
                connection.default_channel  # noqa: B018 - opens the channel: a round trip
        except Exception as exc:
            if self.reachable:
                log.warning(
                    "the broker is out of reach (%s, %.1fs): claiming from the database",
                    exc,
                    time.monotonic() - began,
                )
            self.reachable = False
            return False
        if not self.reachable:
            log.info("the broker is reachable again: runs come from its wake-ups")
        self.reachable = True
        return True
