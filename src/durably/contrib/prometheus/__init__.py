"""Prometheus metrics of an engine, built on its hooks (``pip install 'durably[prometheus]'``).

:func:`instrument` subscribes to an engine's hooks and registers its metrics in a
registry; :func:`serve` does so in a registry of its own and serves it over HTTP
(what ``durably worker --metrics-port`` runs). Counters and histograms count what
this process did; their labels are bounded (workflow, queue, status, step,
outcome), never a run id.

Three gauges are read at scrape time or from the database. ``durably_worker_slots_in_use``
is this process's. ``durably_runs`` and ``durably_oldest_due_run_age_seconds`` count
rows of the database, so one process of a fleet computes them: every
``gauge_interval`` a thread takes the ``durably.metrics`` lease of the store and,
while it holds it, refreshes them; a process that does not hold it exports none of
those series, so a sum over the fleet does not multiply them. A store error is
logged (``durably.metrics``) and the refresh tried again at the next interval.

Instruments of one registry share its metrics (the last one closed unregisters
them), so several engines may be instrumented in one registry: their counts add up.
An event costs the thread that emits it one append to a queue (a C call, no Python
frame); a thread of the registry's adds the queued events up in bulk twice a second, and
a scrape adds up what is left first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from types import TracebackType
from typing import TYPE_CHECKING

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry
except ImportError as exc:
    raise ImportError(
        "durably.contrib.prometheus needs prometheus-client: pip install 'durably[prometheus]'"
    ) from exc

from durably.contrib.prometheus.family import Family, Fleet
from durably.errors import StoreClosed

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from durably.engine import Engine

log = logging.getLogger("durably.metrics")
LOCK = "durably.metrics"  # the store lease of the process that computes the fleet's gauges


_families: dict[CollectorRegistry, Family] = {}
_families_lock = threading.Lock()


class Metrics:
    """One engine's instrumentation; :meth:`close` undoes it (also on leaving a ``with``)."""

    def __init__(self, engine: Engine, registry: CollectorRegistry, gauge_interval: float) -> None:
        if not gauge_interval > 0:
            raise ValueError(f"gauge_interval must be positive seconds, not {gauge_interval!r}")
        self.engine = engine
        self.registry = registry
        #: The owner of the ``durably.metrics`` lease when this instrument holds it.
        self.owner = f"metrics:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.port: int | None = None  # where :func:`serve` listens
        self._interval = gauge_interval
        #: The fleet's gauges as last read; None while another process holds the lease.
        self.fleet: Fleet | None = None
        self._server: WSGIServer | None = None
        self._stop = threading.Event()
        self._closed = False
        with _families_lock:
            family = _families.get(registry)
            if family is None:
                family = _families[registry] = Family(registry)
            if any(m.engine is engine for m in family.users):
                raise ValueError("this engine is already instrumented in this registry")
            family.users.append(self)
        self._family = family
        self._unsubscribe = engine.hooks.subscribe(family)
        self._thread = threading.Thread(target=self._loop, name="durably-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Unsubscribe, stop the gauges' thread and the server, give the lease back and
        unregister the metrics (once no other instrument of the registry uses them)."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        self._stop.set()
        self._thread.join(self._interval + 10)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.fleet = None
        try:
            self.engine.store.release_lock(LOCK, self.owner)
        except StoreClosed:
            pass  # closed with its engine: the lease runs out by itself
        except Exception:
            log.warning("metrics: the %s lease was not released", LOCK, exc_info=True)
        with _families_lock:
            family = self._family
            family.users.remove(self)
            if not family.users:
                del _families[self.registry]
                family.stop()
                for collector in family.collectors:
                    self.registry.unregister(collector)

    def __enter__(self) -> Metrics:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def slots(self) -> int:
        """Runs the engine's worker executes now."""
        executor = self.engine.executor
        return 0 if executor is None else len(executor.inflight)

    def _loop(self) -> None:
        while True:
            self._refresh()
            if self._stop.wait(self._interval):
                return

    def _refresh(self) -> None:
        store = self.engine.store
        try:
            if not store.acquire_lock(LOCK, self.owner, 2 * self._interval):
                self.fleet = None
                return
            stats = store.queue_stats()
            now = store.now()
        except Exception:
            self.fleet = None
            log.warning(
                "metrics: the store failed; tried again in %ss", self._interval, exc_info=True
            )
            return
        self.fleet = (stats, now)


def instrument(
    engine: Engine, registry: CollectorRegistry | None = None, *, gauge_interval: float = 15.0
) -> Metrics:
    """Count ``engine``'s events in ``registry`` (default: ``prometheus_client.REGISTRY``)
    and refresh the fleet's gauges every ``gauge_interval`` seconds while this process
    holds their lease. An engine is instrumented once per registry (ValueError)."""
    return Metrics(
        engine, prometheus_client.REGISTRY if registry is None else registry, gauge_interval
    )


def serve(engine: Engine, port: int = 9464, addr: str = "0.0.0.0") -> Metrics:
    """Instrument ``engine`` in a fresh registry and serve it over HTTP on ``addr:port``
    (``0``: a free port, then in ``Metrics.port``); :meth:`Metrics.close` stops the server."""
    metrics = instrument(engine, CollectorRegistry())
    try:
        # (server, thread) since prometheus-client 0.20, None before.
        started: tuple[WSGIServer, threading.Thread] | None = prometheus_client.start_http_server(
            port, addr, registry=metrics.registry
        )
    except BaseException:
        metrics.close()
        raise
    if started is not None:
        metrics._server = started[0]
        metrics.port = started[0].server_port
    else:
        metrics.port = port
    return metrics


__all__ = ["LOCK", "Metrics", "instrument", "serve"]
