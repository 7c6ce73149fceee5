"""What one OpenTelemetry SDK span costs on this machine, alone: the floor under any
tracing that makes a span per step.

    .venv/bin/python bench/span_cost.py [--spans 20000]

A TracerProvider with a BatchSpanProcessor whose exporter drops the spans (as
``bench/run.py --observe`` uses), the spans children of one open span; the best of
5 rounds, in µs per span.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class Drop(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def best(spans: int, make: Callable[[], None]) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(spans):
            make()
        rounds.append((time.perf_counter() - started) / spans * 1e6)
    return min(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=20_000)
    spans = parser.parse_args().spans
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    tracer = provider.get_tracer("bench")
    parent = trace.set_span_in_context(tracer.start_span("run"))
    attributes = {
        "durably.run.id": "01a233da86acaee040e055e555cb1402",
        "durably.workflow.name": "bench.chain",
        "durably.step.name": "add_one",
        "durably.step.attempt": 1,
        "durably.step.seq": 7,
    }
    variants: dict[str, Callable[[], None]] = {
        "start_span + end, no attributes": lambda: tracer.start_span("step", parent).end(),
        "start_span + end, a step's 5 attributes": lambda: tracer.start_span(
            "step", parent, attributes=attributes
        ).end(),
    }
    print("| span | µs |\n|---|---|")
    for name, make in variants.items():
        print(f"| {name} | {best(spans, make):.1f} |")
    provider.shutdown()


if __name__ == "__main__":
    main()
