"""Signals and events: the messages between a run and the code outside it. The
engine's methods that send a signal to a run and read an event a run published."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from durably.committer import Committer
from durably.durations import parse_duration
from durably.hooks import Hooks, SignalSent, emit
from durably.names import check_name, check_optional
from durably.records import RunRow, new_run_id
from durably.serialization import dumps, loads
from durably.stores.base import Store, Transaction


class Messaging:
    """Mixed into :class:`durably.Engine`."""

    if TYPE_CHECKING:  # provided by the engine
        store: Store
        committer: Committer
        hooks: Hooks
        max_payload: int
        poll_interval: float

        def _row(self, run_id: str) -> RunRow: ...
        def _woken(self) -> None: ...

    def send_signal(
        self, run_id: str, name: str, payload: Any = None, *, idempotency_key: str | None = None
    ) -> None:
        """Send ``payload`` to the run under ``name``; it is received exactly once.

        Sends with the same ``idempotency_key`` (to the same run and name) are one
        signal: retry a send safely.

        Raises:
            SerializationError: the payload cannot be encoded (nothing is sent).
            RunNotFound: no such run. InvalidRunState: the run has ended.
        """
        self.committer.run(self._signal(run_id, name, payload, idempotency_key))
        self._signalled(run_id, name)

    async def send_signal_async(
        self, run_id: str, name: str, payload: Any = None, *, idempotency_key: str | None = None
    ) -> None:
        await self.committer.run_async(self._signal(run_id, name, payload, idempotency_key))
        self._signalled(run_id, name)

    def _signal(
        self, run_id: str, name: str, payload: Any, idempotency_key: str | None
    ) -> Callable[[Transaction], None]:
        text = dumps(payload, what=f"signal {name!r} payload", limit=self.max_payload)
        check_name("signal name", name)
        key = check_optional("idempotency_key", idempotency_key) or new_run_id()
        return lambda tx: self.store.send_signal(tx, run_id, name, text, key)

    def _signalled(self, run_id: str, name: str) -> None:
        if self.hooks.signal_sent:
            emit(self.hooks.signal_sent, SignalSent(run_id, name))
        self._woken()

    def get_event(self, run_id: str, key: str, timeout: float | str | None = None) -> Any:
        """The value the run published under ``key``, waiting until it is set.

        Returns ``None`` when ``timeout`` passes first or the run ends without it.
        """
        polls = self._event_polls(run_id, key, timeout)
        while True:
            done, value = _next_poll(polls)
            if done:
                return value
            time.sleep(value)

    async def get_event_async(
        self, run_id: str, key: str, timeout: float | str | None = None
    ) -> Any:
        """Async twin of :meth:`get_event`: no thread is held while it waits."""
        polls = self._event_polls(run_id, key, timeout)
        while True:
            done, value = await asyncio.to_thread(_next_poll, polls)
            if done:
                return value
            await asyncio.sleep(value)

    def _event_polls(
        self, run_id: str, key: str, timeout: float | str | None
    ) -> Generator[float, None, Any]:
        """The reads of a wait for an event; yields the pause before each next read."""
        check_name("event key", key)
        deadline = None if timeout is None else time.monotonic() + parse_duration(timeout)
        pause = 0.005
        while True:
            # The status first: an event set before the run ended is then seen below.
            ended = self._row(run_id).status.terminal
            found, value = self.store.get_event(run_id, key)
            if found:
                return loads(value, what=f"event {key!r} of run {run_id}")
            if ended or (deadline is not None and time.monotonic() >= deadline):
                return None
            left = math.inf if deadline is None else deadline - time.monotonic()
            yield max(0.0, min(pause, left))
            pause = min(pause * 2, self.poll_interval)


def _next_poll(polls: Generator[float, None, Any]) -> tuple[bool, Any]:
    """One read of a poll: (True, its result) once done, else (False, the next pause)."""
    try:
        return False, next(polls)
    except StopIteration as stop:
        return True, stop.value
