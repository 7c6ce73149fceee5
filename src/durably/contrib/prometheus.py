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

import bisect
import itertools
import logging
import operator
import os
import socket
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as exc:
    raise ImportError(
        "durably.contrib.prometheus needs prometheus-client: pip install 'durably[prometheus]'"
    ) from exc

from durably.errors import StoreClosed
from durably.hooks import (
    BatchCommitted,
    RunClaimed,
    RunEnded,
    RunLost,
    RunStarted,
    StepFinished,
    Subscriber,
    TicksDecided,
)

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from durably.engine import Engine

log = logging.getLogger("durably.metrics")
LOCK = "durably.metrics"  # the store lease of the process that computes the fleet's gauges

_RUN_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)
_STEP_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_WAIT_SECONDS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_COMMIT_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_BATCH_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
FOLD_EVERY = 0.5  # seconds between two folds of the events into the metrics
_WORKFLOW_STEP = operator.itemgetter(1, 2)  # of a StepFinished
_STATUS = operator.itemgetter(5)
_SECONDS = operator.attrgetter("seconds")
_SIZE = operator.attrgetter("size")


#: What ``queue_stats`` gave, and the store time then: the fleet's gauges as last read.
_Fleet = tuple[list[tuple[str, str, int, float | None]], float]


Key = tuple[str, ...]  # label values
E = TypeVar("E")


class _Rows:
    """Rows of numbers by label values, changed only while the family folds (one
    thread at a time, under its lock)."""

    def __init__(self, name: str, doc: str, labels: str, width: int) -> None:
        self.name, self.doc, self.labels = f"durably_{name}", doc, labels.split()
        self._width = width
        self.rows: dict[Key, list[float]] = {}

    def row(self, key: Key) -> list[float]:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0.0] * self._width
        return row

    def merged(self) -> list[tuple[Key, list[float]]]:
        return sorted((key, list(row)) for key, row in self.rows.items())


class _Counts(_Rows):
    """A counter per label values."""

    def __init__(self, name: str, doc: str, labels: str) -> None:
        super().__init__(name, doc, labels, 1)

    def inc(self, key: Key, by: float = 1.0) -> None:
        self.row(key)[0] += by

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, (value,) in self.merged():
            family.add_metric(list(key), value)
        return family


class _Histograms(_Rows):
    """A histogram per label values: a count per bucket (and one past the last), the sum."""

    def __init__(self, name: str, doc: str, labels: str, buckets: Iterable[float]) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        super().__init__(name, doc, labels, len(self.bounds) + 2)

    def observe(self, key: Key, value: float) -> None:
        row = self.row(key)
        row[bisect.bisect_left(self.bounds, value)] += 1  # the first bound >= value
        row[-1] += value

    def observe_all(self, keys: list[Key] | Key, values: list[float]) -> Counter[Key]:
        """:meth:`observe` each value under its key (the one at its index, or ``keys``
        for all), counting in bulk; returns how many values each key got."""
        buckets = map(bisect.bisect_left, itertools.repeat(self.bounds), values)
        if isinstance(keys, tuple):
            row = self.row(keys)
            for bucket, count in Counter(buckets).items():
                row[bucket] += count
            row[-1] += sum(values)
            return Counter({keys: len(values)})
        counts: Counter[Key] = Counter()
        for (key, bucket), count in Counter(zip(keys, buckets, strict=True)).items():
            self.row(key)[bucket] += count
            counts[key] += count
        if len(counts) == 1:
            sums = {keys[0]: sum(values)}
        else:
            sums = dict.fromkeys(counts, 0.0)
            for key, value in zip(keys, values, strict=True):
                sums[key] += value
        for key, total in sums.items():
            self.row(key)[-1] += total
        return counts

    def observe_few(self, key: Key, values: list[float]) -> None:
        """:meth:`observe` values that are mostly the same few under one key."""
        row = self.row(key)
        for value, count in Counter(values).items():
            row[bisect.bisect_left(self.bounds, value)] += count
            row[-1] += value * count

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        for key, row in self.merged():
            cumulative = list(itertools.accumulate(row[:-1]))
            buckets = [(repr(b), c) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric(list(key), buckets, row[-1])
        return family


class _Family(Subscriber):
    """The metrics of one registry, shared by its instruments and subscribed to their
    engines. Its callbacks are the ``append`` of a queue (steps', commits', the other
    events'): the events are added up in bulk (:meth:`fold`) by the family's thread
    every ``FOLD_EVERY`` seconds and before a scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._steps: deque[StepFinished] = deque()
        self._commits: deque[BatchCommitted] = deque()
        self._events: deque[object] = deque()  # the events of runs and schedules
        self.step_finished = self._steps.append  # type: ignore[assignment]
        self.batch_committed = self._commits.append  # type: ignore[assignment]
        self.run_started = self.run_claimed = self.run_ended = self._events.append  # type: ignore[assignment]
        self.run_lost = self.ticks_decided = self._events.append  # type: ignore[assignment]
        self._fold_lock = threading.Lock()
        self._stop = threading.Event()
        self.users: list[Metrics] = []
        self.collectors: list[prometheus_client.registry.Collector] = [self]
        self.started = _Counts("runs_started", "Runs created.", "workflow queue")
        self.finished = _Counts("runs_finished", "Runs ended.", "workflow queue status")
        self.attempts = _Counts(
            "step_attempts", "Step bodies that ran (not replays).", "workflow step"
        )
        self.retries = _Counts("step_retries", "Step attempts to be retried.", "workflow step")
        self.recovered = _Counts("recoveries", "Runs taken from dead workers.", "workflow queue")
        self.lost = _Counts("leases_lost", "Runs another worker took over.", "workflow")
        self.nondeterminism = _Counts(
            "nondeterminism_errors", "Runs failed on changed code.", "workflow"
        )
        self.ticks = _Counts("schedule_ticks", "Schedule ticks decided.", "workflow outcome")
        self.run_seconds = _Histograms(
            "run_duration_seconds", "Runs' creation to end.", "workflow status", _RUN_SECONDS
        )
        self.waited = _Histograms(
            "schedule_to_start_seconds", "Runs' due to claimed.", "queue", _WAIT_SECONDS
        )
        self.step_seconds = _Histograms(
            "step_duration_seconds", "Step bodies' duration.", "workflow step", _STEP_SECONDS
        )
        self.commit_seconds = _Histograms(
            "store_commit_seconds", "Group commits' duration.", "", _COMMIT_SECONDS
        )
        self.batch_size = _Histograms(
            "commit_batch_size", "Writes per group commit.", "", _BATCH_SIZES
        )
        self._counted = [v for v in vars(self).values() if isinstance(v, _Counts | _Histograms)]
        self._count: dict[type, Callable[[Any], None]] = {
            RunStarted: self._started,
            RunClaimed: self._claimed,
            RunEnded: self._ended,
            RunLost: self._lost,
            TicksDecided: self._ticks,
        }
        registry.register(self)
        self._folder = threading.Thread(target=self._loop, name="durably-metrics-fold", daemon=True)
        self._folder.start()

    def _loop(self) -> None:
        while not self._stop.wait(FOLD_EVERY):
            self.fold()

    def stop(self) -> None:
        self._stop.set()
        self._folder.join()

    def fold(self) -> None:
        """Add the events that arrived up into the metrics (what is appended meanwhile
        waits for the next fold)."""
        with self._fold_lock:
            steps, commits = _taken(self._steps), _taken(self._commits)
            for event in _taken(self._events):
                self._count[type(event)](event)
            if steps:
                self._steps_finished(steps)
            if commits:
                self.commit_seconds.observe_all((), list(map(_SECONDS, commits)))
                self.batch_size.observe_few((), list(map(_SIZE, commits)))

    def describe(self) -> list[Metric]:
        return [*(m.family() for m in self._counted), *self._gauges()]

    def collect(self) -> list[Metric]:
        """The counts, and the gauges now: this process's slots, the fleet's runs where
        a lease is held."""
        self.fold()
        counted: list[Metric] = [metric.family() for metric in self._counted]
        return counted + self._gauge_values()

    def _gauge_values(self) -> list[Metric]:
        slots, runs, ages = self._gauges()
        users = list(self.users)
        slots.add_metric([], sum(m._slots() for m in users))
        counts: dict[tuple[str, str], int] = {}
        oldest: dict[str, float] = {}
        for fleet in (m._fleet for m in users):
            stats, now = fleet or ([], 0.0)
            for queue, status, count, due in stats:
                counts[queue, status] = counts.get((queue, status), 0) + count
                age = 0.0 if due is None else max(0.0, now - due)
                oldest[queue] = max(oldest.get(queue, 0.0), age)
        for (queue, status), count in sorted(counts.items()):
            runs.add_metric([queue, status], count)
        for queue, age in sorted(oldest.items()):
            ages.add_metric([queue], age)
        return [slots, runs, ages]

    @staticmethod
    def _gauges() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("durably_worker_slots_in_use", "Runs this process executes now."),
            GaugeMetricFamily(
                "durably_runs", "Runs not ended, in the database.", labels=["queue", "status"]
            ),
            GaugeMetricFamily(
                "durably_oldest_due_run_age_seconds",
                "Age of the oldest run due and waiting for a worker (0: none).",
                labels=["queue"],
            ),
        ]

    def _started(self, event: RunStarted) -> None:
        self.started.inc((event.workflow, event.queue))

    def _claimed(self, event: RunClaimed) -> None:
        self.waited.observe((event.queue,), event.waited)
        if event.recovered:
            self.recovered.inc((event.workflow, event.queue))

    def _steps_finished(self, events: list[StepFinished]) -> None:
        keys = list(map(_WORKFLOW_STEP, events))
        counts = self.step_seconds.observe_all(keys, list(map(_SECONDS, events)))
        for key, count in counts.items():
            self.attempts.inc(key, count)  # an attempt counts once it finished
        if "retrying" in map(_STATUS, events):
            for event in events:
                if event.status == "retrying":
                    self.retries.inc((event.workflow, event.step))

    def _ended(self, event: RunEnded) -> None:
        status = event.status.value
        self.finished.inc((event.workflow, event.queue, status))
        self.run_seconds.observe((event.workflow, status), event.seconds)
        if event.error is not None and event.error.type == "NonDeterminismError":
            self.nondeterminism.inc((event.workflow,))

    def _lost(self, event: RunLost) -> None:
        self.lost.inc((event.workflow,))

    def _ticks(self, event: TicksDecided) -> None:
        for outcome in ("started", "skipped", "buffered", "missed"):
            self.ticks.inc((event.workflow, outcome), getattr(event, outcome))


def _taken(queue: deque[E]) -> list[E]:
    """What ``queue`` holds now, taken out of it (appends may go on meanwhile)."""
    return list(itertools.starmap(queue.popleft, itertools.repeat((), len(queue))))


_families: dict[CollectorRegistry, _Family] = {}
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
        self._fleet: _Fleet | None = None
        self._server: WSGIServer | None = None
        self._stop = threading.Event()
        self._closed = False
        with _families_lock:
            family = _families.get(registry)
            if family is None:
                family = _families[registry] = _Family(registry)
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
        self._fleet = None
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

    def _slots(self) -> int:
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
                self._fleet = None
                return
            stats = store.queue_stats()
            now = store.now()
        except Exception:
            self._fleet = None
            log.warning(
                "metrics: the store failed; tried again in %ss", self._interval, exc_info=True
            )
            return
        self._fleet = (stats, now)


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
