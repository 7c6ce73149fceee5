"""Who in this process waits for which run, and the results of runs that completed here."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager

#: Results of runs completed in this process, kept so that waiting for them reads
#: nothing (a completed run never changes again).
KEEP_RESULTS = 10_000


class Watchers:
    """Callbacks for runs ending or suspending, and a bounded memory of results."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[[], None]]] = {}
        self._results: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def watch(self, run_id: str, callback: Callable[[], None]) -> AbstractContextManager[None]:
        """Call ``callback`` whenever the run is seen to end or suspend, while inside."""
        return _Watch(self, run_id, callback)

    def _add(self, run_id: str, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.setdefault(run_id, []).append(callback)

    def _remove(self, run_id: str, callback: Callable[[], None]) -> None:
        with self._lock:
            callbacks = self._callbacks.get(run_id, [])
            callbacks.remove(callback)
            if not callbacks:
                self._callbacks.pop(run_id, None)

    def notify(self, run_id: str, output: str | None = None) -> None:
        """The run ended or suspended; ``output`` is its result if it completed here."""
        with self._lock:
            if output is not None:
                self._results[run_id] = output
                if len(self._results) > KEEP_RESULTS:
                    self._results.popitem(last=False)
            callbacks = list(self._callbacks.get(run_id, ()))
        for callback in callbacks:
            callback()

    def result(self, run_id: str) -> str | None:
        """The result (JSON text) of a run that completed in this process, if remembered."""
        with self._lock:
            return self._results.get(run_id)


class _Watch:
    """The span of one watch (a plain class: waits are frequent, generators cost more)."""

    __slots__ = ("_callback", "_run_id", "_watchers")

    def __init__(self, watchers: Watchers, run_id: str, callback: Callable[[], None]) -> None:
        self._watchers, self._run_id, self._callback = watchers, run_id, callback

    def __enter__(self) -> None:
        self._watchers._add(self._run_id, self._callback)

    def __exit__(self, *exc: object) -> None:
        self._watchers._remove(self._run_id, self._callback)
