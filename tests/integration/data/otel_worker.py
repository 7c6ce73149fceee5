"""A worker process for tests/integration/test_otel.py: executes one run, traced.

Usage: ``python otel_worker.py STORE RUN_ID SPANS_FILE [LEASE]``. The spans it ends are
written to SPANS_FILE, one JSON object a line, by a span exporter of its own. Where the
environment names a file in ``OTEL_TEST_STALL``, the step ``otel.finish`` creates it and
hangs: a worker to kill mid-run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import durably
from durably.contrib.otel import instrument


class JsonLines(SpanExporter):
    """Each span as one line of JSON: its name, kind, ids and its parent's span id."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                context = span.get_span_context()
                assert context is not None
                line = {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": format(context.trace_id, "032x"),
                    "span_id": format(context.span_id, "016x"),
                    "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                    "attributes": dict(span.attributes or {}),
                }
                out.write(json.dumps(line) + "\n")
        return SpanExportResult.SUCCESS


@durably.step
def remote_step(x: int) -> int:
    return x * 3


@durably.workflow(name="otel.remote")
def remote(x: int) -> int:
    return remote_step(x) + 1


@durably.step("otel.prepare")
def prepare(x: int) -> int:
    return x * 3


@durably.step("otel.finish")
def finish(x: int) -> int:
    if stall := os.environ.get("OTEL_TEST_STALL"):
        open(stall, "w").close()
        time.sleep(60)
    return x + 1


@durably.workflow(name="otel.recovered")  # test_otel.py has it too, the hang left out
def recovered(x: int) -> int:
    return finish(prepare(x))


def main(store: str, run_id: str, spans_file: str, lease: str = "30") -> None:
    open(spans_file, "a", encoding="utf-8").close()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLines(spans_file)))
    engine = durably.Engine(store, poll_interval=0.05, shutdown_grace=2, lease=float(lease))
    tracing = instrument(engine, provider)  # before launching: it may claim the run at once
    with engine:
        engine.handle(run_id).result(timeout=30)
        deadline = time.monotonic() + 10  # the run's span ends once its end is told
        while time.monotonic() < deadline:
            with open(spans_file, encoding="utf-8") as spans:
                if any(json.loads(line)["name"] == "run otel.remote" for line in spans):
                    break
            time.sleep(0.02)
        tracing.close()
    provider.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:5])
