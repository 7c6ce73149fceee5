"""The metrics of one registry, and the hook subscriber that counts into them.

Its callbacks are the ``append`` of a queue; a thread of the family's adds the queued
events up in bulk every ``FOLD_EVERY`` seconds, and a scrape adds up what is left
first. The gauges it exports are read at scrape time from its instruments (see
:class:`durably.contrib.prometheus.Metrics`).
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from durably.contrib.prometheus.rows import Counts, Histograms
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
    from durably.contrib.prometheus import Metrics

_RUN_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)
_STEP_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_WAIT_SECONDS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_COMMIT_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_BATCH_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
FOLD_EVERY = 0.5  # seconds between two folds of the events into the metrics
_WORKFLOW, _STEP = operator.itemgetter(1), operator.itemgetter(2)  # of a StepFinished
_WORKFLOW_STEP = operator.itemgetter(1, 2)
_STATUS = operator.itemgetter(5)
_SECONDS = operator.attrgetter("seconds")
_SIZE = operator.attrgetter("size")

log = logging.getLogger("durably.metrics")

#: What ``queue_stats`` gave, and the store time then: the fleet's gauges as last read.
Fleet = tuple[list[tuple[str, str, int, float | None]], float]
E = TypeVar("E")


class Family(Subscriber):
    """The metrics of one registry, shared by its instruments and subscribed to their
    engines. Its callbacks are the ``append`` of a queue (steps', commits', the other
    events'): the events are added up in bulk (:meth:`fold`) by the family's thread
    every ``FOLD_EVERY`` seconds and before a scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._steps: list[StepFinished] = []
        self._commits: list[BatchCommitted] = []
        self._events: list[object] = []  # the events of runs and schedules
        self.step_finished = self._steps.append  # type: ignore[assignment]
        self.batch_committed = self._commits.append  # type: ignore[assignment]
        self.run_started = self.run_claimed = self.run_ended = self._events.append  # type: ignore[assignment]
        self.run_lost = self.ticks_decided = self._events.append  # type: ignore[assignment]
        self._fold_lock = threading.Lock()
        self._stop = threading.Event()
        self.users: list[Metrics] = []
        self.collectors: list[prometheus_client.registry.Collector] = [self]
        self.started = Counts("runs_started", "Runs created.", "workflow queue")
        self.finished = Counts("runs_finished", "Runs ended.", "workflow queue status")
        self.attempts = Counts(
            "step_attempts", "Step bodies that ran (not replays).", "workflow step"
        )
        self.retries = Counts("step_retries", "Step attempts to be retried.", "workflow step")
        self.recovered = Counts("recoveries", "Runs taken from dead workers.", "workflow queue")
        self.lost = Counts("leases_lost", "Runs another worker took over.", "workflow")
        self.nondeterminism = Counts(
            "nondeterminism_errors", "Runs failed on changed code.", "workflow"
        )
        self.ticks = Counts("schedule_ticks", "Schedule ticks decided.", "workflow outcome")
        self.run_seconds = Histograms(
            "run_duration_seconds", "Runs' creation to end.", "workflow status", _RUN_SECONDS
        )
        self.waited = Histograms(
            "schedule_to_start_seconds", "Runs' due to claimed.", "queue", _WAIT_SECONDS
        )
        self.step_seconds = Histograms(
            "step_duration_seconds", "Step bodies' duration.", "workflow step", _STEP_SECONDS
        )
        self.commit_seconds = Histograms(
            "store_commit_seconds", "Group commits' duration.", "", _COMMIT_SECONDS
        )
        self.batch_size = Histograms(
            "commit_batch_size", "Writes per group commit.", "", _BATCH_SIZES
        )
        self._counted = [v for v in vars(self).values() if isinstance(v, Counts | Histograms)]
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
            try:
                self.fold()
            except Exception:  # those events are lost; the next ones are counted
                log.exception("metrics: counting the events failed")

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
                self.batch_size.observe_all((), list(map(_SIZE, commits)))

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
        slots.add_metric([], sum(m.slots() for m in users))
        counts: dict[tuple[str, str], int] = {}
        oldest: dict[str, float] = {}
        for fleet in (m.fleet for m in users):
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
        seconds = list(map(_SECONDS, events))
        if len(set(map(_WORKFLOW, events))) == 1 == len(set(map(_STEP, events))):  # one step's
            key = _WORKFLOW_STEP(events[0])
            self.step_seconds.observe_all(key, seconds)
            self.attempts.inc(key, len(events))  # an attempt counts once it finished
        else:
            keys = list(map(_WORKFLOW_STEP, events))
            for key, count in self.step_seconds.observe_each(keys, seconds).items():
                self.attempts.inc(key, count)
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


def _taken(queue: list[E]) -> list[E]:
    """What ``queue`` holds now, taken out of it (appends may go on meanwhile: each of
    the two steps is one operation under the interpreter's lock, and appends go last)."""
    taken = queue[:]
    del queue[: len(taken)]
    return taken
