"""durably's W1 and W2 with one kind of observability on, paired in one process.

A process's speed differs from the next one's by more than observability costs (where
its memory lands, which core it gets), so each measurement of a mode ``<mode>+<what>``
runs two engines in one process, on two files: one plain, one with ``what`` on. Their
segments alternate, in ABBA order against drift (W2: one 200-step workflow; W1: 100
workflows started, then awaited), after a warm-up segment of each. What the
observability still owes at the end of a segment (metrics: the queued events counted,
by a scrape; tracing: the span processor's batch exported) is done inside that
segment's time, so no part of its cost falls into a plain segment.

The result line carries the observed engine's figure (``wf_per_s`` / ``us_per_step``),
the plain engine's of the same process (``plain_...``) and ``paired_cost``: the observed
segments' median time over the plain ones', minus one.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import durably

W1_SEGMENT = 100  # workflows per W1 segment
PAIRS = {"W1": 5, "W2": 10}


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
    """INFO logs of every logger to a file, with the run's context on each record."""

    def __init__(self, workdir: Path) -> None:
        from durably import logs

        self.handler = logging.FileHandler(workdir / "durably.log")
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


class Metrics(Switch):
    """durably.contrib.prometheus in a registry of its own; a scrape ends each segment."""

    def __init__(self, engine: durably.Engine) -> None:
        from prometheus_client import CollectorRegistry

        from durably.contrib import prometheus

        self.registry = CollectorRegistry()
        self.metrics = prometheus.instrument(engine, self.registry)

    def settle(self) -> None:
        for _ in self.registry.collect():
            pass

    def close(self) -> None:
        self.metrics.close()


class Tracing(Switch):
    """durably.contrib.otel with the SDK, a batch span processor and an exporter that
    drops the spans; the processor's batch is exported at the end of each segment.
    ``api_only``: with the API's no-op provider instead (what durably itself costs)."""

    def __init__(self, engine: durably.Engine, api_only: bool = False) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        from durably.contrib import otel

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        self.provider: TracerProvider | None = None
        if not api_only:
            self.provider = TracerProvider()
            self.provider.add_span_processor(BatchSpanProcessor(Drop()))
        provider = self.provider or trace.NoOpTracerProvider()
        self.tracing = otel.instrument(engine, tracer_provider=provider)

    def settle(self) -> None:
        if self.provider is not None:
            self.provider.force_flush()

    def close(self) -> None:
        self.tracing.close()
        if self.provider is not None:
            self.provider.shutdown()


def switch(engine: durably.Engine, what: str, workdir: Path) -> Switch:
    if what == "logs":
        return Logs(workdir)
    if what == "metrics":
        return Metrics(engine)
    if what in ("tracing", "tracing-api"):
        return Tracing(engine, api_only=what == "tracing-api")
    raise SystemExit(f"unknown observability {what!r}")


def paired(
    workload: str,
    what: str,
    workdir: Path,
    open_engine: Callable[[str], AbstractContextManager[durably.Engine]],
    segment: Callable[[durably.Engine], None],
) -> tuple[list[float], list[float]]:
    """Seconds of the plain and of the observed segments, alternated in one process."""
    plain_times: list[float] = []
    observed_times: list[float] = []
    with open_engine("plain.db") as plain, open_engine("observed.db") as observed:
        watch = switch(observed, what, workdir)

        def run(observing: bool) -> float:
            if not observing:
                started = time.perf_counter()
                segment(plain)
                return time.perf_counter() - started
            watch.on()
            started = time.perf_counter()
            segment(observed)
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
    fields: dict[str, Any] = {"paired_cost": observed_s / plain_s - 1, "pairs": len(plain)}
    if workload == "W1":
        fields.update(wf_per_s=W1_SEGMENT / observed_s, plain_wf_per_s=W1_SEGMENT / plain_s)
    else:
        from common import W2_STEPS

        fields.update(
            us_per_step=observed_s / W2_STEPS * 1e6, plain_us_per_step=plain_s / W2_STEPS * 1e6
        )
    return fields
