"""durably's W1 and W2 with one kind of observability on, paired in one process.

A process's speed differs from the next one's by more than observability costs (where
its memory lands, which core it gets; two engines of one process differ too), so each
measurement of a mode ``<mode>+<what>`` runs one engine whose segments alternate
between ``what`` off and on, in ABBA order against drift (W2: one 200-step workflow;
W1: 100 workflows started, then awaited), after a warm-up segment. What the
observability still owes at the end of a segment (metrics: the queued events counted;
tracing: the span processor's batch exported) is done inside that segment's time, so
no part of its cost falls into a plain segment. ``nothing`` turns nothing on: what the
pairing itself measures, its noise.

The result line carries the observed engine's figure (``wf_per_s`` / ``us_per_step``,
from the median segment), the plain engine's of the same process (``plain_...``) and
``paired_cost``: the median over the pairs of an observed segment's time over the time
of the plain segment next to it, minus one.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import common

import durably
from durably.hooks import Subscriber

W1_SEGMENT = 100  # workflows per W1 segment
PAIRS = {"W1": 10, "W2": 20}


class Switch:
    """One kind of observability on one engine, for the segments that measure it."""

    def on(self) -> None:
        """Before an observed segment."""

    def settle(self) -> None:
        """At the end of an observed segment, inside its time."""

    def off(self) -> None:
        """After an observed segment."""

    def close(self) -> None:
        """After the last segment."""


class Logs(Switch):
    """INFO logs of every logger to a file, with the run's context on each record.
    ``dropped``: to a handler that drops each record once it has the run's context (what
    durably itself costs: the records, their context, the hand-off; no format, no write)."""

    def __init__(self, workdir: Path, dropped: bool = False) -> None:
        from durably import logs

        self.handler = Dropped() if dropped else logging.FileHandler(workdir / "durably.log")
        self.handler.addFilter(logs.RunContextFilter())
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(run_id)s: %(message)s")
        )

    def on(self) -> None:
        logging.getLogger().addHandler(self.handler)
        logging.getLogger().setLevel(logging.INFO)

    def off(self) -> None:
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger().removeHandler(self.handler)

    def close(self) -> None:
        self.handler.close()


class Dropped(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


class Metrics(Switch):
    """durably.contrib.prometheus in a registry of its own. Instrumented once (its gauges
    read the database then); its subscriber is attached for the observed segments only,
    and the events are counted at the end of each. ``events_only``: a subscriber to the
    same events that drops each as it comes instead (what the engine spends emitting
    them; the rest is the metrics' own)."""

    def __init__(self, engine: durably.Engine, events_only: bool = False) -> None:
        from prometheus_client import CollectorRegistry

        from durably.contrib import prometheus

        self.engine = engine
        self.metrics = prometheus.instrument(engine, CollectorRegistry())
        self.metrics._unsubscribe()
        self.family = self.metrics._family  # the subscriber instrument() attached
        self.subscriber: Subscriber = Dropping(self.family) if events_only else self.family
        self.detach = lambda: None

    def on(self) -> None:
        self.detach = self.engine.hooks.subscribe(self.subscriber)

    def settle(self) -> None:
        if self.subscriber is self.family:
            self.family.fold()

    def off(self) -> None:
        self.detach()

    def close(self) -> None:
        self.metrics.close()


class Dropping(Subscriber):
    """Subscribed to the events ``like`` takes (its callbacks are instance attributes);
    drops each (``len``, a C call)."""

    def __init__(self, like: Subscriber) -> None:
        for name in vars(like):
            if hasattr(Subscriber, name):
                setattr(self, name, len)


class Tracing(Switch):
    """durably.contrib.otel with the SDK, a batch span processor and an exporter that
    drops the spans; the processor's batch is exported at the end of each segment.
    ``api_only``: with the API's no-op provider instead (what durably itself costs).
    ``sampled``: the SDK keeping one trace in ten (``ParentBased(TraceIdRatioBased(0.1))``,
    the sampler docs/tracing.md suggests)."""

    def __init__(
        self, engine: durably.Engine, api_only: bool = False, sampled: bool = False
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        from durably.contrib import otel

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        self.provider: TracerProvider | None = None
        if not api_only:
            sampler = ParentBased(TraceIdRatioBased(0.1)) if sampled else None
            self.provider = TracerProvider(sampler=sampler)
            self.provider.add_span_processor(BatchSpanProcessor(Drop()))
        self.engine, self.otel = engine, otel
        self.tracer_provider = self.provider or trace.NoOpTracerProvider()
        self.tracing: otel.Tracing | None = None

    def on(self) -> None:
        self.tracing = self.otel.instrument(self.engine, tracer_provider=self.tracer_provider)

    def settle(self) -> None:
        if self.provider is not None:
            self.provider.force_flush()

    def off(self) -> None:
        assert self.tracing is not None
        self.tracing.close()

    def close(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def switch(engine: durably.Engine, what: str, workdir: Path) -> Switch:
    if what == "nothing":  # both engines plain: what the pairing itself measures
        return Switch()
    if what in ("logs", "logs-dropped"):
        return Logs(workdir, dropped=what == "logs-dropped")
    if what in ("metrics", "metrics-events"):
        return Metrics(engine, events_only=what == "metrics-events")
    if what in ("tracing", "tracing-api", "tracing-sampled"):
        return Tracing(engine, api_only=what == "tracing-api", sampled=what == "tracing-sampled")
    raise SystemExit(f"unknown observability {what!r}")


def paired(
    workload: str,
    what: str,
    workdir: Path,
    open_engine: Callable[[], AbstractContextManager[durably.Engine]],
    segment: Callable[[durably.Engine], None],
) -> tuple[list[float], list[float]]:
    """Seconds of the plain and of the observed segments, alternated on one engine."""
    plain_times: list[float] = []
    observed_times: list[float] = []
    with open_engine() as engine:
        watch = switch(engine, what, workdir)

        def run(observing: bool) -> float:
            if not observing:
                started = time.perf_counter()
                segment(engine)
                return time.perf_counter() - started
            watch.on()
            started = time.perf_counter()
            segment(engine)
            watch.settle()
            took = time.perf_counter() - started
            watch.off()
            return took

        run(False), run(True)  # warm-up
        for i in range(PAIRS[workload]):
            for observing in (False, True) if i % 2 == 0 else (True, False):
                (observed_times if observing else plain_times).append(run(observing))
        watch.close()
    return plain_times, observed_times


def result(workload: str, plain: list[float], observed: list[float]) -> dict[str, Any]:
    """The JSON line's fields from the segments' seconds."""
    plain_s, observed_s = statistics.median(plain), statistics.median(observed)
    ratios = [o / p for o, p in zip(observed, plain, strict=True)]
    fields: dict[str, Any] = {"paired_cost": statistics.median(ratios) - 1, "pairs": len(plain)}
    if workload == "W1":
        fields.update(wf_per_s=W1_SEGMENT / observed_s, plain_wf_per_s=W1_SEGMENT / plain_s)
    else:
        steps = common.W2_STEPS
        fields.update(us_per_step=observed_s / steps * 1e6, plain_us_per_step=plain_s / steps * 1e6)
    return fields
